// The page's own figures for `./build.sh bench` (not a test: it prints, it does not judge), as a
// Markdown section: time to ready and where it went, ms per training step, a whole default run,
// the time antonyms takes to reach 80% held-out, memory over a 1,000-step soak, and each
// experiment's wall time, on the CPU path; and a SmolLM2-135M-shaped model from a local Hub:
// header to ready, the page's peak memory while it loads, its step.
//   node tests/e2e/measure.mjs            CPU path
//   node tests/e2e/measure.mjs webgpu     adds the WebGPU path (SwiftShader here: a software adapter)
//   node tests/e2e/measure.mjs quick      leaves out the experiments (about 10 minutes)
//   node tests/e2e/measure.mjs real       only the SmolLM2-135M-shaped model
//   node tests/e2e/measure.mjs pool       only the default run and the experiments with 1 and 2 engines
//   node tests/e2e/measure.mjs pool-runs  only the default run with 1 and 2 engines
//   node tests/e2e/measure.mjs pool-experiments [NAME...]  only the experiments with 1 and 2 engines
//   node tests/e2e/measure.mjs webgpu-heap  only the wasm heap after a 135M-shaped model loads on WebGPU
//   node tests/e2e/measure.mjs lesson DIR  only the course link on a real SmolLM2-135M-Instruct in DIR
//                                          (tools/smollm2_from_gguf.py makes one): Load to ≥ 50% held-out
// Needs the built page (./build.sh) and Debian's Chromium.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { modelFolder, open, ready, start, text } from './harness.mjs';
import { startHub } from './hub-server.mjs';
import { smollm2Params, smollm2Shaped } from './random-models.mjs';

const env = await start();
const rows = [];
const row = (what, value) => rows.push(`| ${what} | ${value} |`);

/**
 * Median of the step times the page reports (the step alone: evaluations not included), read in
 * the page as each step's figures change (polling from here would load the page's thread).
 */
async function msPerStep(page, n) {
  const times = await page.evaluate((count) => new Promise((resolve) => {
    const times = [];
    const speed = document.querySelector('#f-speed');
    new MutationObserver((_, observer) => {
      const m = speed.title.match(/([\d.]+) ms/);
      if (m) times.push(Number(m[1]));
      if (times.length >= count) {
        observer.disconnect();
        resolve(times);
      }
    }).observe(speed, { attributeFilter: ['title'] });
  }), n);
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

async function cpu() {
  const t0 = performance.now();
  const t = await open(env, '?backend=cpu&task=antonyms');
  await ready(t.page);
  row('CPU: navigation to a prompt ready to train', `${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const status = await text(t.page, '#model-status');
  row('CPU: model load start to ready (the page\'s figure)', status.match(/ready in ([\d.]+ s)/)[1]);
  row('CPU: where the load went', await t.page.locator('#model-status').getAttribute('title'));

  // Default settings: 8 virtual tokens, class-label init, lr 0.03, batch 16, 200 steps.
  const started = performance.now();
  await t.page.click('#play');
  const handle = await t.page.waitForFunction(() => {
    const acc = Number.parseFloat(document.querySelector('#f-acc').textContent);
    return acc >= 80 ? document.querySelector('#f-step').textContent : false;
  }, null, { timeout: 900_000, polling: 50 });
  const reached = (performance.now() - started) / 1000;
  row('CPU: antonyms reaches 80% held-out', `${reached.toFixed(1)} s of training (at step ${(await handle.jsonValue()).split(' ')[0]}; evaluations included)`);
  row('CPU: ms per training step (median of 15)', (await msPerStep(t.page, 15)).toFixed(1));
  await t.page.waitForSelector('#f-fp-after[data-equal]', { timeout: 900_000 });
  const whole = (performance.now() - started) / 1000;
  row('CPU: the whole 200-step default run', `${whole.toFixed(1)} s, ${(200 / whole).toFixed(1)} steps/s`);
  const share = Number(await t.page.locator('#f-speed').getAttribute('data-overhead'));
  row('CPU: share of the run spent on held-out evaluations and views', `${(share * 100).toFixed(1)}%`);
  row('CPU: final held-out accuracy', await text(t.page, '#f-acc'));
  await t.context.close();
}

/** Memory at a step: the wasm heap the worker reports, and the browser's own measurement. */
async function memoryAt(page, step) {
  // The first step at or past `step`: training goes on while the previous sample waited for a GC.
  const reached = await page.waitForFunction((s) => {
    const n = Number.parseInt(document.querySelector('#f-step').textContent, 10);
    return n >= s ? n : false;
  }, step, { timeout: 1_800_000, polling: 20 });
  const at = await reached.jsonValue();
  const wasm = Number(await page.locator('#f-memory').getAttribute('data-bytes'));
  // Cross-origin isolated (tools/serve.mjs), so available; it waits for a garbage collection.
  const agent = await page.evaluate(() => Promise.race([
    performance.measureUserAgentSpecificMemory?.().then((m) => m.bytes),
    new Promise((r) => { setTimeout(() => r(null), 60_000); }),
  ]));
  return { at, wasm, agent };
}

/**
 * 1,000 steps on the CPU path: memory at steps 10, 500 and 1,000 (the target: < 5% growth; the
 * middle sample tells a leak, which keeps growing, from the run's own history filling up).
 */
async function soak() {
  const steps = 1000;
  const t = await open(env, `?backend=cpu&task=antonyms&steps=${steps}`);
  await ready(t.page);
  await t.page.click('#play');
  const at = [];
  for (const step of [10, 500, steps]) at.push(await memoryAt(t.page, step));
  const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const growth = (a, b) => `${(((b - a) / a) * 100).toFixed(1)}%`;
  const series = (key) => `${at.map((m) => mb(m[key])).join(' → ')} (${growth(at[0][key], at[2][key])} from step ${at[0].at} to ${at[2].at})`;
  const when = at.map((m) => m.at).join(' → ');
  row(`CPU soak: wasm heap at step ${when}`, series('wasm'));
  row(`CPU soak: measureUserAgentSpecificMemory (the page) at step ${when}`,
    at.every((m) => m.agent) ? series('agent') : 'not available');
  await t.context.close();
}

/** Each experiment on the CPU path, on `task`: wall time (the budget: under 2 minutes each; scale 5). */
async function experiments(task) {
  const t = await open(env, `?backend=cpu&task=${task}`);
  await ready(t.page);
  const names = await t.page.evaluate(() => [...document.querySelectorAll('#exp-select option')].map((o) => o.value));
  for (const name of names) {
    await t.page.selectOption('#exp-select', name);
    const started = performance.now();
    await t.page.click('#exp-run');
    await t.page.waitForSelector(`#exp-status[data-done="${name}"]`, { timeout: 1_800_000 });
    // The first table: every setting's mean (scale's other tables restate it by size).
    const rows = await t.page.locator('#exp-table table').first().locator('tbody tr').allInnerTexts();
    const means = rows.map((r) => r.split('\t').slice(0, 2).join(' ')).join('; ');
    row(`CPU experiment on ${task}: ${name}`, `${((performance.now() - started) / 1000).toFixed(0)} s (${means})`);
    await t.page.evaluate(() => { delete document.querySelector('#exp-status').dataset.done; });
  }
  await t.context.close();
}

/**
 * The default 200-step antonyms run with 1 and with 2 engines on the CPU path (the pool, once
 * every helper has joined), alternated twice: the whole run as the user feels it (evaluations
 * included), the step alone, and the time to 80% held-out.
 */
async function poolRuns() {
  const runs = { 1: [], 2: [] };
  for (const workers of [1, 2, 1, 2]) {
    const t = await open(env, `?backend=cpu&task=antonyms&workers=${workers}`);
    await ready(t.page);
    await t.page.waitForSelector(`#backend-badge[data-workers="${workers}"]`, { timeout: 120_000 });
    const busy = await mainThreadBusy(t);
    const started = performance.now();
    await t.page.click('#play');
    const handle = await t.page.waitForFunction(() => Number.parseFloat(document.querySelector('#f-acc').textContent) >= 80
      && document.querySelector('#f-step').textContent, null, { timeout: 900_000, polling: 50 });
    const reached = (performance.now() - started) / 1000;
    const step = await msPerStep(t.page, 15);
    await t.page.waitForSelector('#f-fp-after[data-equal]', { timeout: 900_000 });
    const whole = (performance.now() - started) / 1000;
    const memory = t.page.locator('#f-memory');
    const engines = [Number(await memory.getAttribute('data-bytes')), ...JSON.parse(await memory.getAttribute('data-helpers'))];
    runs[workers].push({ whole, reached, at: (await handle.jsonValue()).split(' ')[0], step, page: (await busy()) / whole, engines });
    await t.context.close();
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  for (const w of [1, 2]) {
    const r = runs[w];
    row(`CPU, ${w} engine${w > 1 ? 's (the pool)' : ''}: the whole default run`, `${med(r.map((x) => x.whole)).toFixed(1)} s, ${(200 / med(r.map((x) => x.whole))).toFixed(1)} steps/s, ${(1000 * med(r.map((x) => x.whole)) / 200).toFixed(1)} ms per step as felt (runs: ${r.map((x) => x.whole.toFixed(1)).join(', ')} s)`);
    row(`CPU, ${w} engine${w > 1 ? 's' : ''}: ms per step, the step alone (median of 15)`, med(r.map((x) => x.step)).toFixed(1));
    row(`CPU, ${w} engine${w > 1 ? 's' : ''}: each engine's wasm memory after the run (the coordinator first)`, r.at(-1).engines.map((b) => `${(b / 2 ** 20).toFixed(0)} MB`).join(', '));
    row(`CPU, ${w} engine${w > 1 ? 's' : ''}: the page's own thread during the run (drawing)`, `${(100 * med(r.map((x) => x.page))).toFixed(0)}% of a core`);
    row(`CPU, ${w} engine${w > 1 ? 's' : ''}: antonyms reaches 80% held-out`, `${med(r.map((x) => x.reached)).toFixed(1)} s (steps ${r.map((x) => x.at).join(', ')})`);
  }
  return { one: med(runs[1].map((x) => x.step)), two: med(runs[2].map((x) => x.step)) };
}

/** Starts counting the page thread's busy time (Chromium's own task total); the result reads the seconds since. */
async function mainThreadBusy(t) {
  const cdp = await t.context.newCDPSession(t.page);
  await cdp.send('Performance.enable');
  const read = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration').value;
  const before = await read();
  return async () => (await read()) - before;
}

/**
 * What pools of 4 and 8 engines would give on a machine with the cores: each engine's part of
 * a default step at that size, timed alone on one engine (the compute it would do), plus the
 * coordination the pool of 2 measured (its step less its part: messages, the prompt sent out,
 * gradients added), taken as the same for every size.
 */
async function poolProjection({ one, two }) {
  const t = await open(env, '?backend=cpu&task=antonyms&workers=1');
  await ready(t.page);
  const part = {};
  for (const k of [1, 2, 4, 8]) part[k] = await t.page.evaluate((n) => window.softPromptLab.timeParts(n), k);
  await t.context.close();
  const coordination = Math.max(0, two - part[2]);
  for (const k of [1, 2, 4, 8]) {
    const step = k === 1 ? one : part[k] + coordination;
    row(`CPU pool of ${k}: one engine's part of a step (timed alone) → the step${k > 2 ? ', projected' : ', measured'}`,
      `${part[k].toFixed(1)} ms → ${step.toFixed(1)} ms (${(one / step).toFixed(2)}× one engine; coordination ${coordination.toFixed(1)} ms)`);
  }
}

/**
 * Each experiment's wall time (defaults, sentiment) with 1 engine and with 2 (the pool's helper
 * takes whole trainings; scale's on the family member each names), alternated: `names`.
 */
async function poolExperiments(names) {
  for (const name of names) {
    const wall = {};
    for (const workers of [1, 2]) {
      const t = await open(env, `?backend=cpu&task=sentiment&workers=${workers}&exp=${name}`);
      await ready(t.page);
      await t.page.waitForSelector(`#backend-badge[data-workers="${workers}"]`, { timeout: 120_000 });
      const started = performance.now();
      await t.page.click('#exp-run');
      await t.page.waitForSelector(`#exp-status[data-done="${name}"]`, { timeout: 1_800_000 });
      wall[workers] = (performance.now() - started) / 1000;
      await t.context.close();
    }
    row(`CPU experiment on sentiment: ${name}, 1 engine → 2 engines`, `${wall[1].toFixed(0)} s → ${wall[2].toFixed(0)} s (${(wall[2] / wall[1]).toFixed(2)}×)`);
  }
}

/** Chromium's renderer processes (the page's worker runs in its renderer). */
function renderers() {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--type=renderer');
    } catch {
      return false;
    }
  });
}

/** A process's memory figure from /proc (VmRSS, VmHWM: the peak), in MB. */
function procMb(pid, field) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * A SmolLM2-shaped Llama (`size` '135m' or '360m', random bf16 weights) from a Hub on this
 * machine, on the CPU path with `workers` engines (0: as many as the page starts by itself):
 * header read to ready, the renderer's peak resident memory during the load (its peak is reset
 * first, through /proc/PID/clear_refs), the step, and each engine's memory against the estimate.
 */
async function realModel(workers, size = '135m', steps = 6) {
  const name = `SmolLM2-${size.toUpperCase()}-shaped`;
  const files = smollm2Shaped(size);
  const hub = await startHub({ [`shaped/smollm2-${size}`]: files });
  const link = `?backend=cpu&task=antonyms&hub=${encodeURIComponent(hub.url)}&model=shaped/smollm2-${size}&steps=${steps}`;
  const t = await open(env, workers ? `${link}&workers=${workers}` : link);
  await ready(t.page);
  await t.page.waitForSelector('#model-check:not([hidden])');
  const pids = renderers();
  for (const pid of pids) writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM
  const before = Math.max(...pids.map((p) => procMb(p, 'VmRSS')));
  const t0 = performance.now();
  await t.page.click('#model-load');
  await t.page.waitForFunction(() => document.querySelector('#model-status').textContent.startsWith('shaped/'), null, { timeout: 900_000 });
  const readyS = (performance.now() - t0) / 1000;
  const peak = Math.max(...pids.map((p) => procMb(p, 'VmHWM')));
  const f32 = smollm2Params(size) * 4 / 2 ** 20;
  const fileMb = (files['model.safetensors'].length / 1e6).toFixed(0);
  row(`${name} (random BF16, ${fileMb} MB file, local Hub), CPU: Load to ready`, `${readyS.toFixed(1)} s (${await t.page.locator('#model-status').getAttribute('title')})`);
  const wasm = Number(await t.page.locator('#model-status').getAttribute('data-wasm-bytes')) / 2 ** 20;
  row(`${name}, CPU: the renderer's peak resident memory during the load`, `${peak.toFixed(0)} MB, ${(peak - before).toFixed(0)} MB more than before it (f32 weights ${f32.toFixed(0)} MB, 2× = ${(2 * f32).toFixed(0)} MB); the engine's wasm memory after it ${wasm.toFixed(0)} MB`);
  await t.page.waitForSelector('#play:not([disabled])', { timeout: 900_000 });
  // Every engine the page wanted has joined.
  await t.page.waitForFunction(() => {
    const badge = document.querySelector('#backend-badge').dataset;
    return badge.wanted && badge.workers === badge.wanted;
  }, null, { timeout: 900_000 });
  const engines = Number(await t.page.locator('#backend-badge').getAttribute('data-workers'));
  const label = `${name}, CPU, ${engines} engine${engines > 1 ? 's' : ''}${workers ? '' : ' (as the page chose)'}`;
  await t.page.click('#play');
  await t.page.waitForFunction(() => document.querySelector('#f-step').textContent.startsWith('2 '), null, { timeout: 900_000 });
  row(`${label}: ms per training step (batch 16, 8 virtual tokens; median of 3)`, (await msPerStep(t.page, 3)).toFixed(0));
  // wasm memory never shrinks: after a few steps it holds the steps' peak.
  const mem = await t.page.locator('#f-memory').evaluate((el) => ({ engine: Number(el.dataset.bytes), helpers: JSON.parse(el.dataset.helpers) }));
  const mib = (b) => (b / 2 ** 20).toFixed(0);
  // Against the estimate shown before the download, engine by engine (the lab's first).
  const estimate = JSON.parse(await t.page.locator('#model-summary').getAttribute('data-engines'));
  const measured = [mem.engine, ...mem.helpers];
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const each = measured.map((b, i) => `${mib(b)} MB (estimate ${estimate[i] === undefined ? '-' : mib(estimate[i])})`).join(' + ');
  row(`${label}: wasm memory after 5 steps`, `${each}; in all ${mib(sum(measured))} MB, estimated ${mib(sum(estimate))} MB (measured / estimate ${(sum(measured) / sum(estimate)).toFixed(2)})`);
  if (steps > 6) {
    // The whole run, its held-out evaluations included (#35's figure is after 30 steps).
    await t.page.waitForFunction((n) => document.querySelector('#f-step').textContent.startsWith(`${n} `)
      && document.querySelector('#play').textContent === 'Train', steps, { timeout: 900_000 });
    const end = await t.page.locator('#f-memory').evaluate((el) => [Number(el.dataset.bytes), ...JSON.parse(el.dataset.helpers)]);
    row(`${label}: wasm memory after the ${steps}-step run`, `${end.map(mib).join(' + ')} = ${mib(sum(end))} MB (measured / estimate ${(sum(end) / sum(estimate)).toFixed(2)})`);
  }
  await t.context.close();
  await hub.close();
}

async function webgpu() {
  const t0 = performance.now();
  const t = await open(env, '?backend=webgpu&task=antonyms&steps=5');
  await ready(t.page, 600_000);
  row(`WebGPU (${await text(t.page, '#backend-badge')}): model ready`, `${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await t.page.click('#play');
  // The first step compiles the shaders; then the median of the next three.
  await t.page.waitForFunction(() => document.querySelector('#f-step').textContent.startsWith('2 '), null, { timeout: 900_000 });
  row('WebGPU: ms per training step (median of 3 after the first)', (await msPerStep(t.page, 3)).toFixed(0));
  await t.context.close();

  // burn's GPU allocator over 50 steps (SwiftShader is slow): buffers and bytes after warm-up.
  const g = await open(env, '?backend=webgpu&task=antonyms&steps=50');
  await ready(g.page, 600_000);
  await g.page.click('#play');
  const gpuAt = async (step) => {
    await g.page.waitForFunction((s) => document.querySelector('#f-step').textContent === `${s} / 50`, step, { timeout: 1_800_000, polling: 20 });
    return JSON.parse(await g.page.locator('#f-memory').getAttribute('data-gpu'));
  };
  const [early, late] = [await gpuAt(10), await gpuAt(50)];
  const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MB`;
  row('WebGPU soak: burn allocator at step 10 → 50', `${early.allocs} → ${late.allocs} allocations, `
    + `${mb(early.bytesInUse)} → ${mb(late.bytesInUse)} in use, ${mb(early.bytesReserved)} → ${mb(late.bytesReserved)} reserved`);
  await g.context.close();
  await webgpuHeap();
}

async function webgpuHeap() {
  // #34: on WebGPU the weights live on the GPU, so the engine's wasm heap after loading a 135M
  // model holds the tokenizer, the embedding copy the views read, and tables (target <= 300 MB).
  const id = 'shaped/smollm2-135m';
  const hub = await startHub({ [id]: smollm2Shaped() });
  const m = await open(env, `?backend=webgpu&task=antonyms&hub=${encodeURIComponent(hub.url)}&model=${encodeURIComponent(id)}`);
  await ready(m.page, 600_000);
  await m.page.waitForSelector('#model-check:not([hidden])');
  await m.page.click('#model-load');
  await m.page.waitForFunction((name) => document.querySelector('#model-status').textContent.startsWith(`${name}: `), id, { timeout: 900_000 });
  const loaded = await m.page.getAttribute('#model-status', 'title');
  row('WebGPU: the wasm heap after loading a SmolLM2-135M-shaped model (weights on the GPU; target ≤ 300 MB)', loaded.match(/engine memory ([\d.]+ MB)/)[1]);
  await m.context.close();
  await hub.close();
}

/**
 * A course link for the real SmolLM2-135M-Instruct (its files in `dir`, from a local Hub) on
 * antonyms with no step count: Load to the first held-out accuracy ≥ 50% shown, and the sized
 * run's end.
 */
async function lesson(dir) {
  const id = 'HuggingFaceTB/SmolLM2-135M-Instruct';
  const hub = await startHub({ [id]: modelFolder(dir) });
  // A profile on disk, as a visitor's: the first visit keeps the 269 MB file for the next.
  const t = await open(env, `?backend=cpu&task=antonyms&hub=${encodeURIComponent(hub.url)}&model=${encodeURIComponent(id)}`, { onDisk: true });
  await ready(t.page);
  await t.page.waitForSelector('#model-check:not([hidden])');
  // Where the time went: each held-out accuracy shown and each change of the engines training,
  // noted in the page as they happen (seconds after Load).
  await t.page.evaluate(() => {
    const t0 = performance.now();
    const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    const step = () => document.querySelector('#f-step').textContent.split(' ')[0];
    self.lessonTrace = [];
    new MutationObserver(() => self.lessonTrace.push(`${document.querySelector('#f-acc').textContent} at step ${step()} (${at()})`))
      .observe(document.querySelector('#f-acc'), { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => self.lessonTrace.push(`${document.querySelector('#backend-badge').dataset.workers} engines from step ${step()} (${at()})`))
      .observe(document.querySelector('#backend-badge'), { attributeFilter: ['data-workers'] });
  });
  const t0 = performance.now();
  const since = () => ((performance.now() - t0) / 1000).toFixed(1);
  await t.page.click('#model-load');
  await t.page.waitForFunction((m) => document.querySelector('#model-status').textContent.startsWith(`${m}: `), id, { timeout: 900_000 });
  const readyS = since();
  const loadParts = await t.page.getAttribute('#model-status', 'title');
  await t.page.waitForSelector('#play:not([disabled])', { timeout: 900_000 });
  await t.page.click('#play');
  // A run sized to fewer steps than 50% takes ends below it: then the end is what is shown.
  await t.page.waitForFunction(() => Number.parseFloat(document.querySelector('#f-acc').textContent) >= 50
    || document.querySelector('#f-fp-after').dataset.equal !== undefined, null, { timeout: 900_000 });
  const fiftyS = since();
  const at = await text(t.page, '#f-step');
  const reached = Number.parseFloat(await text(t.page, '#f-acc')) >= 50;
  await t.page.waitForSelector('#f-fp-after[data-equal]', { timeout: 900_000 });
  row(`${id} (real, 4-bit rounded), antonyms, no step count in the link: Load → ready`, `${readyS} s (${loadParts})`);
  row('… → held-out ≥ 50% first shown', reached ? `${fiftyS} s (at step ${at})` : `not reached: the run ended at step ${at}`);
  const endS = since();
  row('… → the sized run\'s end', `${endS} s: ${await text(t.page, '#f-acc')} held-out; ${await text(t.page, '#run-sized')}`);
  // The file's copy for the next visit is written once the engine is idle (www/engine/cache-later.js).
  await t.page.waitForFunction((m) => document.querySelector('#stored-list').textContent.includes(m), id, { timeout: 120_000 });
  row('… → its copy for the next visit kept', `${(since() - endS).toFixed(1)} s after the end`);
  const trace = (await t.page.evaluate(() => self.lessonTrace)).filter((e, i, all) => !e.startsWith('–') && all.indexOf(e) === i);
  row('… held-out accuracy shown, engines training', trace.join('; '));
  await t.context.close();
  await hub.close();
}

try {
  const lessonAt = process.argv.indexOf('lesson');
  const only = lessonAt > 0 ? 'lesson' : ['real', 'pool', 'pool-runs', 'pool-experiments', 'webgpu-heap'].find((a) => process.argv.includes(a));
  if (only === 'lesson') await lesson(process.argv[lessonAt + 1]);
  if (only === 'webgpu-heap') await webgpuHeap();
  const names = ['prompt-length', 'init', 'transfer', 'text-vs-soft', 'ensemble', 'scale'];
  const asked = names.filter((n) => process.argv.includes(n));
  if (only === 'pool-experiments') await poolExperiments(asked.length ? asked : names);
  if (!only) {
    await cpu();
    await soak();
    if (!process.argv.includes('quick')) for (const task of ['sentiment', 'antonyms']) await experiments(task);
  }
  if (!only || only === 'pool' || only === 'pool-runs') {
    const steps = await poolRuns();
    if (only !== 'pool-runs') {
      await poolProjection(steps);
      await poolExperiments(names);
    }
  }
  // The load's memory with one engine (helpers would load their copies after it); then the step with two.
  if (!only || only === 'real') {
    await realModel(1);
    await realModel(0, '135m', 30); // the pool the page chooses, a whole run
    await realModel(0, '360m');
  }
  if (process.argv.includes('webgpu')) await webgpu();
  console.log(only === 'lesson' ? '### A real model in the page (headless Chromium, CPU path)\n'
    : '### The page (headless Chromium, bundled model, antonyms, default settings)\n');
  console.log('| what | figure |\n| --- | --- |');
  console.log(rows.join('\n'));
} finally {
  await env.close();
}
