// The lab worker: all model work happens here (the page only draws). Messages: see protocol.js.
// The session (src/session.rs) owns the schedule; this file loops and posts what it returns.
import init, { Lab, headerLength, taskSplits } from './pkg/soft_prompt_lab.js';
import { fetchBytes, fetchRange, fileUrl } from './model-files.js';
import { EVENT, MODEL_FILES, REQUEST, adapterName } from './protocol.js';
import { Pool } from './pool.js';

let lab = null;
let playing = false;
/** Cancels the model download in progress (`cancel-load`). */
let loadAbort = null;
/** Helper engines sharing the training steps on the CPU path (pool.js); none in a helper. */
let pool = null;
/** Engines the page asked for (0: as many as cores and memory allow); a helper's own is 1. */
let requestedWorkers = 1;
/** This worker is a helper in another's pool: it reports its memory as it grows. */
let isHelper = false;
/** The wasm memory size a helper last reported. */
let reportedBytes = 0;
/** The backend INIT started: 'cpu' or 'webgpu'. */
let engineBackend = null;
/** An experiment is running (its steps loop like training's; a pause cancels it). */
let experimenting = false;
/** A helper's job was cancelled (`cancel-job`): it stops after its current step. */
let jobCancelled = false;
/** Bumped by every pause: a play still waiting in the queue when the user paused does not start. */
let pauses = 0;
// One call into the wasm session at a time: requests and training steps queue here.
let queue = Promise.resolve();
// Fetching and compiling the wasm (streaming: compiled while it downloads), timed for the page.
const started = performance.now();
let memory = null; // the wasm instance's linear memory: its size is reported with each step
const ready = init().then((exports) => {
  memory = exports.memory;
  return performance.now() - started;
});

const post = (type, value = {}) => self.postMessage({ type, ...value });

/** Stops the training and the experiment loops after the step in progress. */
function stopLoops() {
  playing = false;
  experimenting = false;
}

/** The engine's own words for its panic: src/web/mod.rs sends them just before the instance traps. */
let crash = null;
self.softPromptLabPanic = (json) => { crash = JSON.parse(json); };

/** A crashed engine (a trap, or an error that escaped this file): fatal, the page restarts us. */
function crashError(e) {
  stopLoops();
  return crash ?? { kind: 'Panic', message: `the engine crashed (${e?.message ?? e})`, fatal: true };
}

function errorFields(e) {
  // The engine's errors arrive as plain objects {kind, message, line?, fatal} (src/error.rs
  // ErrorView): only theirs name a task file's line.
  if (e && typeof e === 'object' && !(e instanceof Error) && 'kind' in e && 'message' in e) {
    return { kind: e.kind, message: e.message, line: e.line, fatal: Boolean(e.fatal) };
  }
  if (e instanceof WebAssembly.RuntimeError) return crashError(e);
  // model-files.js names a failed fetch's kind (File) on the Error. An Error's own `line` is not
  // passed on: JavaScriptCore puts the source line of `new Error` there.
  return { kind: e?.kind ?? 'Internal', message: e instanceof Error ? e.message : String(e), fatal: false };
}

// A panic inside an async engine call traps in wasm-bindgen's task queue, outside any handler
// here: the call's promise never settles. Report it, so the page restarts us instead of waiting.
self.addEventListener('error', (ev) => {
  ev.preventDefault();
  post(EVENT.ERROR, crashError(ev.error ?? ev.message));
});
self.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  post(EVENT.ERROR, crashError(ev.reason));
});

/** A model's three files, reporting `onProgress({file, loaded, total, secondsLeft})` as they come. */
async function modelFiles(source, onProgress, { signal, notes } = {}) {
  if (source.kind === 'files') {
    return [source.config, source.weights, source.tokenizer].map((b) => new Uint8Array(b));
  }
  const out = [];
  for (const file of MODEL_FILES) {
    out.push(await fetchBytes(fileUrl(source.base, file), (loaded, total, secondsLeft) =>
      onProgress({ file, loaded, total, secondsLeft }), { signal, notes }));
  }
  return out;
}

/** A sharded checkpoint is refused by name (its index is there, one model.safetensors is not). */
async function refuseSharded(base, error) {
  const index = await fetch(fileUrl(base, 'model.safetensors.index.json'), { method: 'HEAD' }).catch(() => null);
  if (!index?.ok) throw error;
  throw {
    kind: 'Weights',
    message: 'this model is split into several weight files (model.safetensors.index.json: a sharded checkpoint), and Soft Prompt Lab reads one model.safetensors. Choose a smaller model, or save this one as a single file (save_pretrained with max_shard_size larger than the model)',
  };
}

/**
 * `config.json`, the weights' safetensors header and the file's size, without the weights: two
 * Range requests (the 8-byte length, then the header).
 */
async function checkpointHead(source) {
  if (source.kind === 'files') {
    const weights = new Uint8Array(source.weights);
    const n = headerLength(weights.subarray(0, 8));
    return { config: new Uint8Array(source.config), header: weights.slice(8, 8 + n), size: weights.byteLength };
  }
  const config = await fetchBytes(fileUrl(source.base, 'config.json'));
  const url = fileUrl(source.base, 'model.safetensors');
  const first = await fetchRange(url, 0, 7).catch((e) => refuseSharded(source.base, e));
  const n = headerLength(first.bytes);
  const { bytes } = await fetchRange(url, 8, 8 + n - 1);
  return { config, header: bytes, size: first.size };
}

/**
 * How many engines may train, and why: the page's number, else one per core the browser reports
 * while the model copies fit in half the memory the device reports (each holds its weights in
 * f32, an embedding copy and a step's activations: about 2.5 times the f32 weights), at most
 * `POOL_MAX` (WebKit reports 4 cores on a 2-core machine, where 4 engines made a run 1.7 times
 * slower than one). A pool measured by timing (this session's first try, in git history) hung the
 * engine's queue in the restless-user page test (seed 7), so none is measured.
 */
function poolSize(params) {
  if (requestedWorkers > 0) {
    const n = requestedWorkers;
    return { size: n, why: `${engines(n)}, as the link's workers=${n} asks` };
  }
  const cores = self.navigator.hardwareConcurrency || 1;
  const memory = ((self.navigator.deviceMemory || 4) * 2 ** 30) / 2;
  const fit = Math.max(1, Math.floor(memory / (params * 4 * 2.5)));
  const size = Math.min(cores, fit);
  if (size > 1) {
    const n = Math.min(size, POOL_MAX);
    return { size: n, why: `${engines(n)} (the browser reports ${cores} cores; at most ${POOL_MAX} start: WebKit reports 4 on 2-core machines)` };
  }
  const why = cores < 2 ? 'one engine: the browser reports one core' : 'one engine: a second copy of the model would not fit in half the memory the browser reports';
  return { size, why };
}

const engines = (n) => (n === 1 ? 'one engine' : `${n} engines`);
const POOL_MAX = 2;

/**
 * Work that waits until a prompt is ready or training starts (a request of `PROMPT_READY`
 * answered), off the way to the page's "ready": the helpers for the model just loaded, and the
 * task's loss with no prompt (the chart's reference line). On few cores the helpers' loading, and
 * in WebKit that first forward pass (2.1 s there against 0.2-0.6 s in Chromium: JavaScriptCore's
 * first tier runs new wasm code slowly), had delayed "ready": 5.8 s against Chromium's 2.8 s.
 */
const afterPrompt = { pool: null, baseline: null };
const PROMPT_READY = new Set([REQUEST.RESET, REQUEST.IMPORT, REQUEST.RESTORE_PROMPT, REQUEST.PLAY, REQUEST.STEP, REQUEST.EXPERIMENT]);
/** Bumped by every task set: a baseline computed for an earlier task is not sent. */
let tasksSet = 0;

function runAfterPrompt() {
  const { pool: startHelpers, baseline } = afterPrompt;
  afterPrompt.pool = null;
  afterPrompt.baseline = null;
  startHelpers?.();
  baseline?.();
}

/** The task's loss with no prompt, as a `baseline` event (unless another task came first). */
function baselineOf(task) {
  const set = tasksSet;
  return () => enqueue(async () => {
    if (set !== tasksSet) return;
    post(EVENT.BASELINE, { task, loss: await lab.lossWithoutPrompt() });
  }).catch(() => {});
}

/** The pool's size and why: what the page says of it. */
let poolPlan = { wanted: 1, why: '' };

/** The engines training together and each helper's memory (this engine's comes with each step). */
function postPool() {
  post(EVENT.POOL, { workers: (pool?.ready.length ?? 0) + 1, ...poolPlan, failed: pool?.failed ?? 0, helperBytes: pool?.memory() ?? [] });
}

/** Helpers for the model just loaded, on the CPU path; they join as they finish loading. */
function startPool(source, params) {
  pool?.stop();
  pool = null;
  const { size, why } = engineBackend === 'cpu' ? poolSize(params) : { size: 1, why: '' };
  poolPlan = { wanted: size, why };
  postPool();
  if (size < 2) return;
  const current = new Pool(() => {
    if (pool === current) postPool();
  });
  pool = current;
  // The engine asks the pool how many helpers are free at each step (none until one joins).
  enqueue(() => lab.setHelpers(current.compute, current.evaluate, current.idleCount)).catch(() => {});
  current.start(size - 1, source);
}

async function trainStep() {
  const progress = await lab.advance();
  post(EVENT.PROGRESS, { ...progress, wasmBytes: memory.buffer.byteLength });
  if (progress.done) playing = false;
}

/** The family the scale experiment runs on: `{base, names}` (src/experiments.rs FAMILY). */
let family = null;

/**
 * A family member (scale), fetched through the model cache when the experiment (or a helper's
 * job) reaches it; `progress` hears its download.
 */
async function loadFamilyMember(index, progress) {
  const name = family.names[index];
  const source = { kind: 'url', base: fileUrl(family.base, name) };
  const files = await modelFiles(source, (p) => progress({ name, ...p }));
  lab.loadFamilyMember(index, ...files);
}

/**
 * The experiment's trainings on helper engines: each started experiment bumps `generation`, so
 * what a cancelled one's jobs answer later is ignored; `answers` wait for the next step to apply
 * them (one call into the session at a time), `away` are the jobs' promises.
 */
const jobs = { generation: 0, answers: [], away: new Set() };

/** Hands a training to every idle helper while the experiment has one to give. */
function handOutJobs() {
  for (const helper of pool?.idle() ?? []) {
    const taken = lab.experimentTakeJob();
    if (!taken) return;
    const { generation } = jobs;
    const away = pool.runJob(helper, taken.task, taken.job, family).then((result) => {
      jobs.answers.push({ generation, index: taken.job.index, result });
    });
    jobs.away.add(away);
    away.finally(() => jobs.away.delete(away));
  }
}

/** Applies the helpers' answers: a finished run is progress; a failed one runs again. */
function takeAnswers() {
  for (const { generation, index, result } of jobs.answers.splice(0)) {
    if (generation !== jobs.generation || !experimenting) continue;
    if (result && !result.cancelled) reportExperiment(lab.experimentJobDone(result));
    else lab.experimentJobFailed(index);
  }
}

function reportExperiment(progress) {
  post(EVENT.EXPERIMENT_PROGRESS, progress);
  if (progress.done) experimenting = false;
}

async function experimentStep() {
  takeAnswers();
  if (!experimenting) return;
  handOutJobs();
  const needed = lab.experimentModelNeeded();
  if (needed !== undefined) await loadFamilyMember(needed, (p) => post(EVENT.EXPERIMENT_MODEL, p));
  const progress = await lab.experimentStep();
  // Every run left is on a helper: wait for one to answer (unless one did meanwhile).
  if (!progress.waiting) reportExperiment(progress);
  else if (jobs.answers.length === 0) await Promise.race(jobs.away);
}

/** Stops the experiment's jobs on the helpers (a pause, or a new experiment). */
function cancelJobs() {
  jobs.generation += 1;
  pool?.cancelJobs();
}

/** Runs `step` through the queue again and again while `going()`; an error stops it via `fail`. */
function repeat(step, going, fail) {
  if (!going()) return;
  enqueue(step).catch(fail).then(() => {
    // setTimeout yields to the message loop, so a pause or a request gets in between steps.
    if (going()) setTimeout(() => repeat(step, going, fail), 0);
  });
}

const tick = () => repeat(trainStep, () => playing, (e) => {
  playing = false;
  post(EVENT.ERROR, errorFields(e));
});

const experimentTick = () => repeat(experimentStep, () => experimenting, (e) => {
  experimenting = false;
  post(EVENT.ERROR, { ...errorFields(e), experiment: true });
});

/** A built-in task's files: its task.json and the two splits' text. */
async function builtinTask(base, name) {
  const folder = fileUrl(base, name);
  const spec = await fetchBytes(fileUrl(folder, 'task.json'), () => {});
  const [train, test] = taskSplits(spec);
  const text = async (file) => new TextDecoder().decode(await fetchBytes(fileUrl(folder, file), () => {}));
  return [spec, await text(train), await text(test)];
}

function enqueue(fn) {
  const run = queue.then(fn);
  queue = run.catch(() => {});
  return run;
}

const handlers = {
  async [REQUEST.INIT]({ backend, helper = false, workers = 1 }) {
    await ready;
    isHelper = helper;
    requestedWorkers = helper ? 1 : workers;
    if (backend === 'webgpu') {
      if (!self.navigator.gpu) throw { kind: 'Device', message: 'this browser has no WebGPU (navigator.gpu is missing); using the CPU backend' };
      const adapter = await self.navigator.gpu.requestAdapter();
      if (!adapter) throw { kind: 'Device', message: 'WebGPU gave no adapter (no usable GPU); using the CPU backend' };
      lab = await Lab.webgpu();
      engineBackend = 'webgpu';
      return { backend: 'webgpu', adapter: adapterName(adapter.info) || 'unnamed adapter' };
    }
    lab = Lab.cpu();
    engineBackend = 'cpu';
    return { backend: 'cpu', adapter: 'WebAssembly SIMD' };
  },
  async [REQUEST.INSPECT]({ source, batch, nVirtual }) {
    await ready;
    const { config, header, size } = await checkpointHead(source);
    return lab.inspect(config, header, size, batch, nVirtual);
  },
  async [REQUEST.LOAD_MODEL]({ source }) {
    const wasmMs = await ready;
    const fetchStarted = performance.now();
    loadAbort = new AbortController();
    const notes = [];
    let files;
    try {
      files = await modelFiles(source, (p) => post(EVENT.LOAD_PROGRESS, p), { signal: loadAbort.signal, notes });
    } catch (e) {
      if (e.kind === 'Cancelled') return { cancelled: true };
      throw e;
    } finally {
      loadAbort = null;
    }
    const fetchMs = performance.now() - fetchStarted;
    stopLoops();
    const loadStarted = performance.now();
    // The engine copies the files into its memory before the call returns its promise: ours are
    // then freed at once (transfer(0) detaches a buffer and releases its bytes), not whenever the
    // collector runs, so a large model is not held twice while it loads.
    const loading = lab.load(...files);
    // A local file's bytes stay: the page's source may start helpers from them.
    if (source.kind !== 'files') for (const f of files) f.buffer.transfer?.(0);
    const loaded = await loading;
    const engineMs = performance.now() - loadStarted;
    // The old model's helpers go now; the new ones start after the first prompt (`afterPrompt`).
    const old = pool;
    pool = null;
    old?.stop();
    afterPrompt.pool = () => startPool(source, loaded.info.params);
    return {
      ...loaded, downloadNotes: notes, wasmBytes: memory.buffer.byteLength, timings: { wasmMs, fetchMs, engineMs, ...loaded.timings },
    };
  },
  async [REQUEST.SET_TASK]({ builtin, base, custom }) {
    stopLoops();
    const summary = custom ? lab.setCustomTask(custom.name, custom.text) : lab.setBuiltinTask(...(await builtinTask(base, builtin)));
    tasksSet += 1;
    afterPrompt.baseline = baselineOf(summary.name);
    return summary;
  },
  async [REQUEST.EXPERIMENT]({ config, source, base, modelsBase }) {
    playing = false;
    cancelJobs();
    family = { base: modelsBase, names: config.models ?? [] };
    const files = source ? await builtinTask(base, source) : [];
    lab.startExperiment(config, ...files);
    if (!experimenting) {
      experimenting = true;
      setTimeout(experimentTick, 0);
    }
  },
  async [REQUEST.RESET]({ settings }) {
    playing = false;
    return lab.reset(settings);
  },
  async [REQUEST.PLAY]({ steps, pausesSeen }) {
    if (pausesSeen !== pauses) return { started: false, finished: false };
    experimenting = false;
    lab.setSteps(steps);
    if (lab.finished()) return { started: false, finished: true };
    if (!playing) {
      playing = true;
      setTimeout(tick, 0);
    }
    return { started: true, finished: false };
  },
  async [REQUEST.STEP]({ steps }) {
    lab.setSteps(steps);
    await trainStep();
  },
  [REQUEST.COMPARE]: () => lab.compare(),
  [REQUEST.TOKENIZE]: ({ text }) => lab.tokenize(text),
  [REQUEST.GENERATE]: ({ text }) => lab.generate(text, 16),
  [REQUEST.EXPORT]: ({ baseModel }) => lab.exportAdapter(baseModel),
  [REQUEST.RESTORE_PROMPT]: ({ values, nVirtual, settings }) => lab.restorePrompt(Float32Array.from(values), nVirtual, settings),
  [REQUEST.SIMULATE_GPU_LOSS]: () => lab.simulateGpuLoss(),
  [REQUEST.CRASH_NEXT]: ({ point }) => lab.crashNext(point),
  [REQUEST.TIME_STEPS]: ({ steps }) => lab.timeSteps(steps),
  [REQUEST.TIME_PARTS]: ({ parts, steps }) => lab.timeParts(parts, steps),
  [REQUEST.PART]: ({ prompt, shape, rows }) => lab.partGradient(prompt, shape, rows),
  [REQUEST.EVAL_PART]: ({ prompt, nVirtual, kind, examples }) => lab.evalPart(prompt, nVirtual, kind, examples),
  async [REQUEST.JOB]({ task, job, family: jobFamily }) {
    jobCancelled = false;
    family = jobFamily;
    const needed = lab.jobModelNeeded(job);
    if (needed !== undefined) await loadFamilyMember(needed, () => {});
    lab.startJob(task, job);
    for (;;) {
      const result = await lab.jobStep();
      if (result) return result;
      // A macrotask between steps, so a cancel-job gets in.
      await new Promise((resolve) => { setTimeout(resolve, 0); });
      if (jobCancelled) return { cancelled: true };
    }
  },
  async [REQUEST.IMPORT]({ config, weights, settings, modelName }) {
    playing = false;
    return lab.importAdapter(new Uint8Array(config), new Uint8Array(weights), settings, modelName);
  },
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  if (type === REQUEST.PAUSE) {
    // Ahead of the queue: a pause must not wait behind the step in progress.
    if (experimenting) cancelJobs();
    stopLoops();
    pauses += 1;
    post(EVENT.REPLY, { id });
    return;
  }
  if (type === REQUEST.CANCEL_JOB) {
    jobCancelled = true;
    post(EVENT.REPLY, { id });
    return;
  }
  if (type === REQUEST.KILL_HELPER) {
    pool?.kill();
    post(EVENT.REPLY, { id });
    return;
  }
  if (type === REQUEST.CANCEL_LOAD) {
    // Ahead of the queue too: the download it cancels is the request in progress.
    loadAbort?.abort();
    post(EVENT.REPLY, { id });
    return;
  }
  const handler = handlers[type];
  if (!handler) {
    post(EVENT.ERROR, { id, kind: 'Internal', message: `unknown request ${type}`, fatal: false });
    return;
  }
  // A play remembers how many pauses came before it: one that arrives later cancels it.
  const request = type === REQUEST.PLAY ? { ...data, pausesSeen: pauses } : data;
  try {
    const value = await enqueue(() => handler(request));
    // Before the reply: the pool knows a helper's memory by the time its model-load answer lands.
    if (isHelper && memory.buffer.byteLength > reportedBytes) {
      reportedBytes = memory.buffer.byteLength;
      post(EVENT.MEMORY, { wasmBytes: reportedBytes });
    }
    post(EVENT.REPLY, { id, value });
    if (PROMPT_READY.has(type)) runAfterPrompt();
  } catch (e) {
    post(EVENT.ERROR, { id, ...errorFields(e) });
  }
};
