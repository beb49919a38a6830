// Real models from "the Hub", with no network: a server on this machine answers like the Hugging
// Face Hub (tests/e2e/hub-server.mjs), and `?hub=` points the page's Hub ids at it, the same
// preset mechanism a visitor uses. Time limits bound a hang; they do not measure speed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, ROOT, modelFolder, open, ready, start, text } from './harness.mjs';
import { startHub } from './hub-server.mjs';
import { smollm2Shaped, tooLarge } from './random-models.mjs';
import { unzipSync } from '../../www/vendor/fflate.js';

const fixture = (name) => modelFolder(join(ROOT, 'tests/reference/fixtures', name));

let env;
let hub;
before(async () => {
  env = await start({ webgpu: false });
  const sharded = { 'config.json': fixture('tiny-llama')['config.json'], 'model.safetensors.index.json': Buffer.from('{"weight_map":{}}') };
  // Adapters (`prompts/…`) are added by the test that makes them: the server reads this object.
  hub = await startHub({ 'tiny/llama': fixture('tiny-llama'), 'big/qwen': tooLarge(), 'sharded/llama': sharded });
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
    assert.match(await text(page, '#model-summary'), /\(llama, 2 layers, d 64, vocabulary 320\); F32 weights; 0\.\d MB to download; needs about [\d.]+ MB of memory/);
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
    assert.match(await text(page, '#model-summary'), /It cannot load here: at batch 4 it needs about \d+\.\d GiB, more than the 4 GiB a WebAssembly page can address: choose a smaller model/);
    assert.equal(await page.locator('#model-load').isHidden(), true);
    assert.ok(weightRequests('big/qwen').every((l) => /bytes=\d+-\d+$/.test(l)), `no weight download: ${weightRequests('big/qwen')}`);

    // A sharded checkpoint and a repository that is not there: named, and the model stays.
    const refused = async (ref, pattern) => {
      await page.fill('#model-url', ref);
      await page.click('#model-url-form button');
      await page.waitForFunction((r) => !document.querySelector('#model-error').hidden && document.querySelector('#model-error').textContent.includes(r.split('/')[0]), ref);
      assert.match(await text(page, '#model-error'), pattern);
      assert.match(await text(page, '#model-status'), /^tiny\/llama: /);
    };
    await refused('sharded/llama', /split into several weight files \(model\.safetensors\.index\.json: a sharded checkpoint\)/);
    await refused('missing/model', /could not fetch .*missing\/model\/resolve\/main\/config\.json: the server answered 404/);
    assert.deepEqual(t.errors, []);
  } finally {
    await t.context.close();
  }
});

test('the tour\'s real-model step: a SmolLM2-135M-shaped model (random bf16 weights) shows its cost, loads from the Hub on the CPU path with one click, and its run (no step count in the link) is sized to about a minute', async (testContext) => {
  // Served under the preset's own id: the tour resolves it under ?hub=, as it would on the Hub.
  const id = 'HuggingFaceTB/SmolLM2-135M-Instruct';
  const local = await startHub({ [id]: smollm2Shaped() });
  // A device that reports 1 GB (navigator.deviceMemory): more than half of it is a warning, not a refusal.
  // On another task at first: the tour's step trains antonyms.
  const t = await open(env, `?backend=cpu&task=sentiment&vt=2&batch=2&hub=${encodeURIComponent(local.url)}&tour=8`, {
    initScript: () => Object.defineProperty(Navigator.prototype, 'deviceMemory', { get: () => 1 }),
  });
  const { page } = t;
  try {
    await ready(page);
    assert.match(await page.locator('#model-preset').textContent(), /SmolLM2-135M-Instruct · 134\.5 M parameters · 269 MB download \(BF16\)/);
    // The tour's real-model step: its cost first, then one click loads it.
    assert.match(await text(page, '#tour-title'), /real language model/);
    await page.click('#tour .tour-action');
    await page.waitForSelector('#model-check:not([hidden])');
    assert.equal(await page.locator('#task-select').inputValue(), 'antonyms');
    assert.ok(local.log.every((l) => !l.includes('model.safetensors') || l.includes('bytes=')), 'only the header before Load');
    assert.match(await text(page, '#model-summary'), /more than half of what this device reports \(1 GB\): the tab may run out of memory/);
    assert.equal(await text(page, '#model-load'), 'Load it anyway');
    assert.match(await text(page, '#model-summary'), /134\.5 M parameters \(llama, 30 layers, d 576, vocabulary 49,152\); BF16 weights; 269 MB to download/);
    await page.click('#model-load');
    await page.waitForFunction((m) => document.querySelector('#model-status').textContent.startsWith(`${m}: `), id, { timeout: 600_000 });
    assert.ok(page.url().includes(`model=${encodeURIComponent(id)}`));
    assert.ok(page.url().includes('task=antonyms') || !page.url().includes('task='), 'antonyms in the URL');
    // No step count in the link: the run is sized to about a minute at its third step.
    await page.waitForSelector('#play:not([disabled])', { timeout: 600_000 });
    await page.click('#play');
    await page.waitForSelector('#run-sized:not([hidden])', { timeout: 600_000 });
    const sized = await text(page, '#run-sized');
    const [, steps] = sized.match(/^(\d+) steps, about \d+ min here at \d+\.\d s a step; 200 would take \d+ min\. Set Steps to choose your own\.$/) ?? [];
    assert.ok(steps && Number(steps) < 200, sized);
    testContext.diagnostic(sized);
    await page.waitForFunction((n) => document.querySelector('#f-step').textContent.endsWith(`/ ${n}`), steps, { timeout: 600_000 });
    await page.click('#play');
    assert.match(await text(page, '#f-loss'), /^\d+\.\d{4}$/);
    // Experiments on it are sized to a few minutes too, and say so.
    assert.match(await page.locator('#exp-finding').textContent(), /Here: 1 seed per setting, 30 steps each \(fewer than the bundled model's 3 × 60, to fit a few minutes on this larger model\), on the current model/);
    assert.deepEqual(t.errors, []);
  } finally {
    await t.context.close();
    await local.close();
  }
});

test('a large model\'s helper engine loads from the bytes the lab engine fetched: its weights are downloaded once, a run trains on two engines, and the copy for the next visit is written when the engine is idle', async () => {
  const id = 'big/smollm2';
  const files = smollm2Shaped();
  const local = await startHub({ [id]: files });
  // A profile on disk, as a visitor's (harness.mjs `open`): in memory the cache refuses 269 MB.
  const t = await open(env, `?backend=cpu&task=antonyms&vt=2&batch=2&steps=2&workers=2&hub=${encodeURIComponent(local.url)}&model=${encodeURIComponent(id)}`, { onDisk: true });
  const { page } = t;
  /** The cached copy's size in bytes, or null (www/model-files.js keeps it). */
  const cached = () => page.evaluate(async (m) => {
    const { openCache } = await import('/model-files.js');
    const keys = await (await openCache()).keys();
    const key = keys.find((r) => r.url.includes(m) && r.url.endsWith('/model.safetensors'));
    return key ? (await (await caches.match(key)).arrayBuffer()).byteLength : null;
  }, id);
  try {
    await ready(page);
    await page.waitForSelector('#model-check:not([hidden])');
    await page.click('#model-load');
    await page.waitForFunction((m) => document.querySelector('#model-status').textContent.startsWith(`${m}: `), id, { timeout: 600_000 });
    // Ready before the cache's copy is written (it waits for 2 s without work: cache-later.js).
    assert.equal(await cached(), null, 'not written before ready');
    await page.waitForSelector('#backend-badge[data-workers="2"]', { timeout: 600_000 });
    // The lab's one download, and nothing from the helper: neither a second download nor the
    // cache's freshness check (a HEAD) of a copy it would have read.
    const whole = local.log.filter((l) => l.includes(`/files/${id}/model.safetensors`) && !l.includes('bytes='));
    assert.deepEqual(whole, [`GET /files/${id}/model.safetensors`]);
    // Idle now (no run started): the copy is written, whole (the bytes stayed the lab's, copied
    // to the helper, until then).
    await page.waitForFunction((m) => document.querySelector('#stored-list').textContent.includes(m), id, { timeout: 60_000 });
    assert.equal(await cached(), files['model.safetensors'].length);
    assert.doesNotMatch(await page.locator('#model-notes').textContent(), /not kept/);
    await page.click('#play');
    await page.waitForSelector('#f-fp-after[data-equal]', { timeout: 600_000 });
    assert.equal(await text(page, '#f-step'), '2 / 2');
    assert.deepEqual(t.errors, []);
  } finally {
    await t.context.close();
    await local.close();
  }
});

/** The adapter files in a share link's fragment (`#prompt=`: a zip, base64url). */
function linkedAdapter(link) {
  const value = new URL(link).hash.replace(/^#prompt=/, '');
  const zip = unzipSync(new Uint8Array(Buffer.from(value, 'base64url')));
  return { config: JSON.parse(Buffer.from(zip['adapter_config.json'])), weights: Buffer.from(zip['adapter_model.safetensors']) };
}

/** A prompt-tuning adapter's two files, `config` edited, `weights` a safetensors file. */
const adapterRepo = (config, weights) => ({ 'adapter_config.json': Buffer.from(JSON.stringify(config)), 'adapter_model.safetensors': weights });

/** An f16 `prompt_embeddings` of `shape`, zeros. */
function zeroPrompt(shape) {
  const bytes = shape[0] * shape[1] * 2;
  const header = Buffer.from(JSON.stringify({ prompt_embeddings: { dtype: 'F16', shape, data_offsets: [0, bytes] } }));
  const out = Buffer.alloc(8 + header.length + bytes);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(out, 8);
  return out;
}

test('a trained prompt in a link: the same values and accuracy on another page without training; adapters from the Hub, a wrong base or shape refused by name', async (t) => {
  const query = `?backend=cpu&task=antonyms&steps=4&hub=${encodeURIComponent(hub.url)}`;
  const a = await open(env, query);
  const softAccuracy = (page) => page.locator('#accuracies .acc[data-key="softPrompt"]').innerText();
  const shareLink = async (page) => {
    await page.click('#share');
    await page.waitForSelector('#share-link:not([hidden])');
    return page.locator('#share-link').inputValue();
  };
  try {
    await ready(a.page);
    await a.page.click('#play');
    await a.page.waitForSelector('#accuracies .acc[data-key="softPrompt"]');
    const accuracy = await softAccuracy(a.page);
    const link = await shareLink(a.page);
    assert.ok(/\?steps=4&backend=cpu&hub=[^#]+#prompt=[\w-]+$/.test(link), `the link: ${link.slice(0, 120)}…`);
    const note = await text(a.page, '#share-note');
    assert.match(note, /link of \d+\.\d KB with this prompt \(in f16\)/);
    t.diagnostic(note);

    // Opened elsewhere: the prompt is shown with its outputs and accuracy, no step trained; its
    // own link is the same, so the values arrived bit for bit (f16 -> f32 -> f16 is exact).
    const started = Date.now();
    const b = await open(env, link.slice(env.url.length));
    await b.page.waitForFunction(() => document.querySelector('#f-acc').textContent.endsWith('%'));
    const shownS = (Date.now() - started) / 1000;
    await b.page.waitForSelector('#accuracies .acc[data-key="softPrompt"]');
    assert.equal(await softAccuracy(b.page), accuracy);
    assert.equal(await text(b.page, '#f-acc'), (await softAccuracy(b.page)).replace('Soft prompt: ', ''));
    assert.equal(await shareLink(b.page), link);
    t.diagnostic(`a shared prompt's accuracy shown ${shownS.toFixed(1)} s after navigation (target 3 s)`);

    // A damaged link is named; the page still trains.
    await b.page.goto('about:blank'); // else only the fragment changes: no new page
    await b.page.goto(link.slice(0, -40));
    await b.page.waitForSelector('#shelf-error:not([hidden])');
    assert.match(await text(b.page, '#shelf-error'), /^The prompt in this link was not loaded: the link is damaged/);
    await ready(b.page);

    // The same prompt as a PEFT adapter on the Hub, by URL; then two that do not fit, by the form.
    const { config, weights } = linkedAdapter(link);
    hub.repos['prompts/antonyms'] = adapterRepo(config, weights);
    hub.repos['prompts/other-base'] = adapterRepo({ ...config, base_model_name_or_path: 'someone/another-model' }, weights);
    hub.repos['prompts/narrow'] = adapterRepo({ ...config, token_dim: 64 }, zeroPrompt([config.num_virtual_tokens, 64]));
    await b.page.goto(`${env.url}${query}&adapter=prompts/antonyms`);
    await b.page.waitForSelector('#accuracies .acc[data-key="softPrompt"]');
    assert.equal(await softAccuracy(b.page), accuracy);
    const refused = async (id, pattern) => {
      await b.page.fill('#hub-adapter', id);
      await b.page.click('#hub-adapter-form button');
      await b.page.waitForFunction((r) => document.querySelector('#shelf-error').textContent.includes(r), id);
      assert.match(await text(b.page, '#shelf-error'), pattern);
    };
    await refused('prompts/other-base', /^The adapter prompts\/other-base was not loaded: this adapter was trained on someone\/another-model, but the loaded model is wordnet-gpt/);
    await refused('prompts/narrow', /^The adapter prompts\/narrow was not loaded: adapter was trained for token_dim 64, but this model's embeddings have \d+ dimensions/);
    assert.equal(await softAccuracy(b.page), accuracy, 'a refused adapter leaves the prompt shown');
    assert.deepEqual([...a.errors, ...b.errors], []);
    await b.context.close();
  } finally {
    await a.context.close();
  }
});
