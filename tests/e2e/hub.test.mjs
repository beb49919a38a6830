// Real models from "the Hub", with no network: a server on this machine answers like the Hugging
// Face Hub (tests/e2e/hub-server.mjs), and `?hub=` points the page's Hub ids at it, the same
// preset mechanism a visitor uses. Time limits bound a hang; they do not measure speed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, ROOT, open, ready, start, text } from './harness.mjs';
import { startHub } from './hub-server.mjs';

const FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];
const fixture = (name) => Object.fromEntries(FILES.map((f) => [f, readFileSync(join(ROOT, 'tests/reference/fixtures', name, f))]));

/** A safetensors file of the given tensors, values from a seeded generator (bf16: the top half of an f32). */
function safetensors(tensors, seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return ((state >>> 8) / 2 ** 24) * 0.04 - 0.02;
  };
  const header = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape, norm] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes], norm };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header, (k, v) => (k === 'norm' ? undefined : v)));
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  const f32 = new Float32Array(1);
  const u16 = new Uint16Array(f32.buffer);
  let at = 8 + json.length;
  for (const [, shape, norm] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let i = 0; i < n; i += 1) {
      f32[0] = norm ? 1 : next();
      out.writeUInt16LE(u16[1], at); // little-endian: the high half of the f32 is its bf16
      at += 2;
    }
  }
  return out;
}

/** A SmolLM2-135M-shaped Llama (its config.json's shape) with random bf16 weights, seeded. */
function smollm2Shaped() {
  const [d, layers, heads, kvHeads, ffn, vocab] = [576, 30, 9, 3, 1536, 49152];
  const kv = (d / heads) * kvHeads;
  const tensors = [['model.embed_tokens.weight', [vocab, d]], ['model.norm.weight', [d], true]];
  for (let i = 0; i < layers; i += 1) {
    const p = `model.layers.${i}.`;
    tensors.push([`${p}input_layernorm.weight`, [d], true], [`${p}post_attention_layernorm.weight`, [d], true],
      [`${p}self_attn.q_proj.weight`, [d, d]], [`${p}self_attn.k_proj.weight`, [kv, d]],
      [`${p}self_attn.v_proj.weight`, [kv, d]], [`${p}self_attn.o_proj.weight`, [d, d]],
      [`${p}mlp.gate_proj.weight`, [ffn, d]], [`${p}mlp.up_proj.weight`, [ffn, d]], [`${p}mlp.down_proj.weight`, [d, ffn]]);
  }
  const config = {
    model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: vocab, max_position_embeddings: 8192,
    hidden_size: d, intermediate_size: ffn, num_hidden_layers: layers, num_attention_heads: heads,
    num_key_value_heads: kvHeads, rms_norm_eps: 1e-5, rope_theta: 100000, hidden_act: 'silu',
    tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0,
  };
  return {
    'config.json': Buffer.from(JSON.stringify(config)),
    'model.safetensors': safetensors(tensors, 135),
    // The bundled tokenizer (4,096 tokens) fits the 49,152-row embedding.
    'tokenizer.json': readFileSync(join(ROOT, 'www/models/wordnet-gpt/tokenizer.json')),
  };
}

/** Qwen2.5-7B's shape (30 GB in f32): a config and a weights header, no weights behind it. */
function tooLarge() {
  const config = {
    model_type: 'qwen2', vocab_size: 152064, max_position_embeddings: 32768, hidden_size: 3584,
    intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4,
    rope_theta: 1e6, tie_word_embeddings: false,
  };
  const header = Buffer.from(JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [152064, 3584], data_offsets: [0, 1089404928] } }));
  const weights = Buffer.alloc(8 + header.length + 1024);
  weights.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(weights, 8);
  return { 'config.json': Buffer.from(JSON.stringify(config)), 'model.safetensors': weights, 'tokenizer.json': Buffer.from('{}') };
}

let env;
let hub;
before(async () => {
  env = await start({ webgpu: false });
  hub = await startHub({ 'tiny/llama': fixture('tiny-llama'), 'big/qwen': tooLarge() });
});
after(async () => {
  await hub?.close();
  await env?.close();
});

const weightRequests = (repo) => hub.log.filter((l) => l.includes(`/files/${repo}/model.safetensors`) && l.startsWith('GET'));

test('a Hub model: its cost before download, a cancelled and a dropped download, a few steps with the base unchanged, an adapter round trip', async () => {
  const t = await open(env, `?backend=cpu&task=antonyms&vt=2&batch=4&steps=3&hub=${encodeURIComponent(hub.url)}&model=tiny/llama`, { acceptDownloads: true });
  const { page } = t;
  try {
    // The bundled model loads at once; the linked Hub model is checked, not downloaded.
    await ready(page);
    assert.match(await text(page, '#model-status'), /^wordnet-gpt \(bundled\)/);
    await page.waitForSelector('#model-check:not([hidden])');
    assert.match(await text(page, '#model-summary'), /\(llama, 2 layers, d 64, vocabulary 320\); F32 weights; 0\.\d MB to download; needs about \d+ MB of memory/);
    assert.deepEqual(weightRequests('tiny/llama'), ['GET /files/tiny/llama/model.safetensors bytes=0-7', `GET /files/tiny/llama/model.safetensors bytes=8-${7 + Number(readFileSync(join(ROOT, "tests/reference/fixtures/tiny-llama/model.safetensors")).readBigUInt64LE(0))}`],
      'only the header was fetched before Load');

    // A slow download, cancelled: the bundled model stays.
    hub.mode.slowMs = 300;
    await page.click('#model-load');
    await page.waitForFunction(() => /^Fetching model\.safetensors: .* MB, about \d+ s left/.test(document.querySelector('#model-status').textContent));
    await page.click('#model-cancel');
    await page.waitForFunction(() => document.querySelector('#model-status').textContent.startsWith('Download cancelled. The previous model is still loaded.'));
    await page.waitForSelector('#play:not([disabled])');

    // Restarted by Hub id; the connection drops half-way and the download resumes from there.
    hub.mode.slowMs = 0;
    hub.mode.dropOnce = true;
    await page.fill('#model-url', 'tiny/llama');
    await page.click('#model-url-form button');
    await page.waitForSelector('#model-check:not([hidden])');
    await page.click('#model-load');
    await page.waitForFunction(() => document.querySelector('#model-status').textContent.startsWith('tiny/llama: '));
    const resumed = weightRequests('tiny/llama').filter((l) => /bytes=[1-9]\d*-$/.test(l));
    assert.equal(resumed.length, 1, `one Range request resumed the download: ${hub.log.join('\n')}`);
    assert.ok(page.url().includes('model=tiny%2Fllama'), 'the Hub id is part of the state');

    // Three steps on the CPU path; the base weights' fingerprint is unchanged at the end.
    await page.waitForSelector('#play:not([disabled])');
    await page.click('#play');
    await page.waitForSelector('#f-fp-after[data-equal]');
    assert.equal(await page.locator('#f-fp-after').getAttribute('data-equal'), 'true');

    // The adapter names its Hub model and loads back.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    const zip = join(ARTIFACTS, 'hub-adapter.zip');
    await download.saveAs(zip);
    await page.setInputFiles('#import-files', zip);
    await page.waitForFunction(() => /antonyms: 2 virtual tokens/.test(document.querySelector('#shelf-list').textContent));
    assert.equal(await page.locator('#shelf-error').isHidden(), true);

    // A model too large for the page is refused before its weights are fetched.
    await page.fill('#model-url', 'big/qwen');
    await page.click('#model-url-form button');
    await page.waitForSelector('#model-check:not([hidden])');
    assert.match(await text(page, '#model-summary'), /It cannot load here: it needs about \d+\.\d GiB, more than the 4 GiB a WebAssembly page can address/);
    assert.equal(await page.locator('#model-load').isHidden(), true);
    assert.ok(weightRequests('big/qwen').every((l) => /bytes=\d+-\d+$/.test(l)), `no weight download: ${weightRequests('big/qwen')}`);
    assert.deepEqual(t.errors, []);
  } finally {
    await t.context.close();
  }
});

test('a SmolLM2-135M-shaped model (random bf16 weights) loads from the Hub on the CPU path and takes a training step', async () => {
  hub.log.length = 0;
  const files = smollm2Shaped();
  const local = await startHub({ 'shaped/smollm2-135m': files });
  const t = await open(env, `?backend=cpu&task=antonyms&vt=2&batch=2&hub=${encodeURIComponent(local.url)}&model=shaped/smollm2-135m`);
  const { page } = t;
  try {
    await ready(page);
    await page.waitForSelector('#model-check:not([hidden])');
    assert.match(await text(page, '#model-summary'), /134\.5 M parameters \(llama, 30 layers, d 576, vocabulary 49,152\); BF16 weights; 269 MB to download/);
    await page.click('#model-load');
    await page.waitForFunction(() => document.querySelector('#model-status').textContent.startsWith('shaped/smollm2-135m: '), null, { timeout: 600_000 });
    await page.waitForSelector('#step:not([disabled])', { timeout: 600_000 });
    await page.click('#step');
    await page.waitForFunction(() => document.querySelector('#f-step').textContent.startsWith('1 /'), null, { timeout: 600_000 });
    assert.match(await text(page, '#f-loss'), /^\d+\.\d{4}$/);
    assert.deepEqual(t.errors, []);
  } finally {
    await t.context.close();
    await local.close();
  }
});
