// The native fuzz corpus (tests/fuzz.rs writes a subset, with each case's native outcome, to
// tests/e2e/artifacts/fuzz-corpus/) through the page's own release wasm in Chromium: a panic there
// would kill the worker, so each case must end as it did natively — loaded, or the same kind of
// named error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, launch } from './harness.mjs';
import { serve } from '../../tools/serve.mjs';
import { defaults, trainSettings } from '../../www/state.js';

const CORPUS = join(ROOT, 'tests', 'e2e', 'artifacts', 'fuzz-corpus');
let browser;
let server;
before(async () => { browser = await launch({ webgpu: false }); });
after(async () => {
  await browser?.close();
  server?.server.close();
});

test('the fuzz corpus ends in the page\'s wasm as it does natively, with no panic', async () => {
  assert.ok(existsSync(join(CORPUS, 'corpus.json')), 'no corpus: run `cargo test --test fuzz` first (./build.sh test does)');
  const corpus = JSON.parse(readFileSync(join(CORPUS, 'corpus.json'), 'utf8'));
  assert.ok(corpus.length >= 40, `${corpus.length} cases`);
  assert.ok(new Set(corpus.map((c) => c.slot)).size >= 5, 'every kind of file is represented');
  // The repository root, so the page can fetch the wasm bundle, the fixtures and the corpus.
  server = await serve(ROOT, 0);
  const page = await browser.newPage();
  await page.goto(`${server.url}README.md`);
  const settings = { ...trainSettings(defaults()), virtualTokens: 2, batch: 4 };
  const results = await page.evaluate(async ({ corpus, settings }) => {
    const wasm = await import('/www/pkg/soft_prompt_lab.js');
    await wasm.default();
    const get = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());
    const fixtures = {};
    for (const m of new Set(corpus.map((c) => c.model))) {
      const f = (name) => get(`/tests/reference/fixtures/${m}/${name}`);
      fixtures[m] = {
        'config.json': await f('config.json'),
        'model.safetensors': await f('model.safetensors'),
        'tokenizer.json': await f('tokenizer.json'),
        'adapter_config.json': await f('adapter_init/adapter_config.json'),
        'adapter_model.safetensors': await f('adapter_init/adapter_model.safetensors'),
      };
    }
    const examples = 'hot => cold\nbig => small\nup => down\nwet => dry\nold => new\n';
    const out = [];
    for (const c of corpus) {
      const bytes = await get(`/tests/e2e/artifacts/fuzz-corpus/${c.file}`);
      const files = { ...fixtures[c.model], [c.slot]: bytes };
      const lab = wasm.Lab.cpu();
      let outcome = 'ok';
      try {
        if (c.slot === 'task') {
          await lab.load(files['config.json'], files['model.safetensors'], files['tokenizer.json']);
          await lab.handle({ op: 'set-custom-task', name: 'custom', text: new TextDecoder().decode(bytes) });
          await lab.handle({ op: 'reset', settings });
          await lab.handle({ op: 'advance' });
        } else if (c.slot.startsWith('adapter')) {
          await lab.load(files['config.json'], files['model.safetensors'], files['tokenizer.json']);
          await lab.handle({ op: 'set-custom-task', name: 'custom', text: examples });
          await lab.importAdapter(files['adapter_config.json'], files['adapter_model.safetensors'], settings, '');
        } else {
          // As natively: the header read as the page reads it before a download, then the cost.
          const weights = files['model.safetensors'];
          const header = c.slot === 'model.safetensors' ? weights.subarray(8, 8 + wasm.headerLength(weights.subarray(0, 8))) : null;
          lab.inspect(files['config.json'], header, weights.length, 16, 8);
          await lab.load(files['config.json'], files['model.safetensors'], files['tokenizer.json']);
          if (c.slot === 'tokenizer.json') for (const text of ['hot -> cold', '', '\u0000é😀 <|endoftext|>']) await lab.handle({ op: 'tokenize', text });
          if (c.slot === 'config.json') {
            // As natively (tests/fuzz.rs train_and_generate): a config that loads trains and generates.
            await lab.handle({ op: 'set-custom-task', name: 'custom', text: examples });
            await lab.handle({ op: 'reset', settings });
            await lab.handle({ op: 'advance' });
            await lab.handle({ op: 'generate', text: 'hot ->', maxNewTokens: 3 });
          }
        }
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError || !e?.kind) {
          out.push({ case: c.case, want: c.outcome, got: `crashed: ${e?.message ?? e}` });
          break; // a panic leaves the instance unusable
        }
        outcome = e.kind;
      } finally {
        lab.free();
      }
      out.push({ case: c.case, want: c.outcome, got: outcome });
    }
    return out;
  }, { corpus, settings });
  assert.equal(results.length, corpus.length, 'every case ran');
  // An adapter the engine reads may still be refused by the page's settings bounds (say, more
  // virtual tokens than the page allows): that is a named Setting error, not a disagreement.
  const disagree = results.filter((r) => r.got !== r.want && !(r.want === 'ok' && r.got === 'Setting'));
  assert.deepEqual(disagree, []);
  await page.close();
});
