// The page's own engine (its wasm as built for the page, WGSL kernels through wgpu's WebGPU
// backend) on Mesa's lavapipe, a second software adapter beside the page tests' SwiftShader, through
// Dawn's WebGPU for Node (npm `webgpu`): Chromium takes no Vulkan adapter but its own SwiftShader.
// Needs Mesa 25's lavapipe (Debian's bookworm-backports; `./build.sh test` installs it): Dawn
// refuses Debian 12's own Mesa 22.3 ("Vulkan shaderUniform*ArrayDynamicIndexing required").
// lavapipe binds at most 128 MiB, as WebGPU's default limit: the test of a vocabulary table in
// parts runs here, where SwiftShader's 1 GiB would hold it whole.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { ROOT } from './harness.mjs';
import { assertMatchesPeft, parityFixture, relativeError } from './fixtures.mjs';

let engine;
let gpuLab; // one per process: the wgpu runtime starts once

before(async () => {
  Object.assign(globalThis, globals);
  const gpu = create([]);
  const adapter = await gpu.requestAdapter();
  const name = adapter?.info.description ?? 'none';
  assert.match(name, /llvmpipe/, `the WebGPU adapter is ${name}, not lavapipe: install Mesa 25's mesa-vulkan-drivers from bookworm-backports (./build.sh test does)`);
  // wgpu finds `navigator.gpu` on a window (a global `Window`) or in a worker.
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  globalThis.Window ??= class Window {};
  engine = await import('../../www/pkg/soft_prompt_lab.js');
  await engine.default({ module_or_path: readFileSync(join(ROOT, 'www', 'pkg', 'soft_prompt_lab_bg.wasm')) });
  gpuLab = await engine.Lab.webgpu();
});
after(() => gpuLab?.free());

/** `lab`'s loss and prompt gradient on fixture `f`'s batch from its initial prompt. */
async function partGradient(lab, f, files = f.files) {
  await lab.load(...files.map((b) => new Uint8Array(b)), false);
  const part = await lab.partGradient(new Float32Array(f.prompt), f.batch.shape, JSON.stringify(f.batch.rows));
  return { loss: part.loss, grad: Array.from(part.grad) };
}

test('lavapipe: the page\'s GPU kernels give the fixtures\' first loss and prompt gradient as PEFT does', async () => {
  for (const name of ['tiny-a', 'tiny-llama']) {
    const f = parityFixture(name);
    assertMatchesPeft(f, await partGradient(gpuLab, f), 'WebGPU (lavapipe)');
  }
});

test('lavapipe: a token embedding larger than one binding is held in row parts and computes what the CPU path computes whole', async () => {
  const f = parityFixture('tiny-a'); // GPT-2: the head is the embedding, so the logits use the parts too
  const [config, weights, tokenizer] = f.files;
  const limit = gpuLab.inspect(config, null, weights.length, 1, 1, 1).gpuBufferLimit;
  const d = JSON.parse(config).n_embd;
  const rows = Math.floor(limit / (d * 4) * 1.5); // one and a half bindings
  const wide = widened(config, weights, 'wte.weight', rows);
  const files = [wide.config, wide.weights, tokenizer];
  const got = await partGradient(gpuLab, f, files);
  const want = await partGradient(engine.Lab.cpu(), f, files);
  // The gradient through the head sums ~800k products an element, in other orders on a GPU:
  // f32 rounding grows as its square root (~1e-4 observed natively on lavapipe).
  const lossErr = Math.abs(got.loss - want.loss) / want.loss;
  const gradErr = relativeError(got.grad, want.grad);
  console.log(`${rows}-row table (${limit >> 20} MiB bindings) on lavapipe against the CPU path: loss ${lossErr.toExponential(2)}, gradient ${gradErr.toExponential(2)} relative`);
  assert.ok(lossErr <= 1e-3, `loss ${got.loss} vs ${want.loss}`);
  assert.ok(gradErr <= 1e-3, `gradient relative error ${gradErr}`);
});

/**
 * A copy of a safetensors model whose `key` table `[vocab, d]` has `rows` rows (its own, then
 * small seeded values) and whose config says so.
 */
function widened(config, weights, key, rows) {
  const headerLength = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + headerLength).toString());
  const data = weights.subarray(8 + headerLength);
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__')
    .sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0]);
  const parts = [];
  let at = 0;
  for (const [k, entry] of entries) {
    let bytes = data.subarray(...entry.data_offsets);
    if (k === key) {
      const d = entry.shape[1];
      const grown = Buffer.alloc(rows * d * 4);
      bytes.copy(grown);
      let seed = 7;
      for (let o = bytes.length; o < grown.length; o += 4) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        grown.writeFloatLE(((seed >>> 8) / 2 ** 24) * 0.04 - 0.02, o);
      }
      bytes = grown;
      entry.shape = [rows, d];
    }
    entry.data_offsets = [at, at + bytes.length];
    at += bytes.length;
    parts.push(bytes);
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const wideConfig = { ...JSON.parse(config), vocab_size: rows };
  return { config: Buffer.from(JSON.stringify(wideConfig)), weights: Buffer.concat([length, json, ...parts]) };
}
