// The lab worker: all model work happens here (the page only draws). Messages: see protocol.js.
// The session (src/session.rs) owns the schedule; this file loops and posts what it returns.
import init, { Lab, inspectConfig, taskSplits } from './pkg/soft_prompt_lab.js';
import { fetchBytes, fileUrl } from './model-files.js';
import { EVENT, MODEL_FILES, REQUEST, adapterName } from './protocol.js';

let lab = null;
let playing = false;
/** An experiment is running (its steps loop like training's; a pause cancels it). */
let experimenting = false;
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

/** The engine's own words for its panic: src/web.rs sends them just before the instance traps. */
let crash = null;
self.softPromptLabPanic = (json) => { crash = JSON.parse(json); };

/** A crashed engine (a trap, or an error that escaped this file): fatal, the page restarts us. */
function crashError(e) {
  stopLoops();
  return crash ?? { kind: 'Panic', message: `the engine crashed (${e?.message ?? e})`, fatal: true };
}

function errorFields(e) {
  // The engine's errors arrive as {kind, message, line?, fatal} (src/error.rs ErrorView).
  if (e && typeof e === 'object' && 'kind' in e && 'message' in e) {
    return { kind: e.kind, message: e.message, line: e.line, fatal: Boolean(e.fatal) };
  }
  if (e instanceof WebAssembly.RuntimeError) return crashError(e);
  return { kind: 'Internal', message: e instanceof Error ? e.message : String(e), fatal: false };
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

async function modelFiles(source) {
  if (source.kind === 'files') {
    return [source.config, source.weights, source.tokenizer].map((b) => new Uint8Array(b));
  }
  const out = [];
  for (const name of MODEL_FILES) {
    out.push(await fetchBytes(fileUrl(source.base, name), (loaded, total) =>
      post(EVENT.LOAD_PROGRESS, { file: name, loaded, total })));
  }
  return out;
}

async function configBytes(source) {
  if (source.kind === 'files') return { config: new Uint8Array(source.config), weightsSize: source.weights.byteLength };
  const url = fileUrl(source.base, 'config.json');
  const config = await fetchBytes(url, () => {});
  // The weights' size from a HEAD request, when the server tells it.
  let weightsSize = 0;
  try {
    const head = await fetch(fileUrl(source.base, 'model.safetensors'), { method: 'HEAD' });
    weightsSize = Number(head.headers.get('content-length')) || 0;
  } catch { /* size unknown: the estimate leaves the file out */ }
  return { config, weightsSize };
}

async function trainStep() {
  const progress = await lab.advance();
  post(EVENT.PROGRESS, { ...progress, wasmBytes: memory.buffer.byteLength });
  if (progress.done) playing = false;
}

async function experimentStep() {
  const progress = await lab.experimentStep();
  post(EVENT.EXPERIMENT_PROGRESS, progress);
  if (progress.done) experimenting = false;
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
  async [REQUEST.INIT]({ backend }) {
    await ready;
    if (backend === 'webgpu') {
      if (!self.navigator.gpu) throw { kind: 'Device', message: 'this browser has no WebGPU (navigator.gpu is missing); using the CPU backend' };
      const adapter = await self.navigator.gpu.requestAdapter();
      if (!adapter) throw { kind: 'Device', message: 'WebGPU gave no adapter (no usable GPU); using the CPU backend' };
      lab = await Lab.webgpu();
      return { backend: 'webgpu', adapter: adapterName(adapter.info) || 'unnamed adapter' };
    }
    lab = Lab.cpu();
    return { backend: 'cpu', adapter: 'WebAssembly SIMD' };
  },
  async [REQUEST.INSPECT]({ source }) {
    await ready;
    const { config, weightsSize } = await configBytes(source);
    return inspectConfig(config, weightsSize);
  },
  async [REQUEST.LOAD_MODEL]({ source }) {
    const wasmMs = await ready;
    const fetchStarted = performance.now();
    const [config, weights, tokenizer] = await modelFiles(source);
    const fetchMs = performance.now() - fetchStarted;
    stopLoops();
    const loadStarted = performance.now();
    const loaded = await lab.load(config, weights, tokenizer);
    const engineMs = performance.now() - loadStarted;
    return { ...loaded, timings: { wasmMs, fetchMs, engineMs, ...loaded.timings } };
  },
  async [REQUEST.SET_TASK]({ builtin, base, custom }) {
    stopLoops();
    const summary = custom ? lab.setCustomTask(custom.name, custom.text) : lab.setBuiltinTask(...(await builtinTask(base, builtin)));
    return { ...summary, lossWithoutPrompt: await lab.lossWithoutPrompt() };
  },
  async [REQUEST.EXPERIMENT]({ config, source, base }) {
    playing = false;
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
  async [REQUEST.IMPORT]({ config, weights, settings }) {
    playing = false;
    return lab.importAdapter(new Uint8Array(config), new Uint8Array(weights), settings);
  },
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  if (type === REQUEST.PAUSE) {
    // Ahead of the queue: a pause must not wait behind the step in progress.
    stopLoops();
    pauses += 1;
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
    post(EVENT.REPLY, { id, value });
  } catch (e) {
    post(EVENT.ERROR, { id, ...errorFields(e) });
  }
};
