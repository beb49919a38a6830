// The engine worker: all model work happens here (the page only draws). Messages: protocol.js.
// One worker file, three roles sharing one small state (./engine/state.js): the lab's engine
// (this file: the training loop and the page's requests; its helpers in ./engine/lab-pool.js),
// an experiment's host (./engine/experiment.js), and a helper in another engine's pool
// (./engine/helper.js). The engine (src/session/) owns the schedule; this file loops and posts
// what it returns.
import init, { Lab } from './pkg/soft_prompt_lab.js';
import { AHEAD_OF_QUEUE, CALL, EVENT, REQUEST } from './protocol.js';
import { adapterName } from './backend-choice.js';
import { builtinTask, checkpointHead, modelFiles } from './engine/files.js';
import { engineActivity, keepWhenIdle } from './engine/cache-later.js';
import { costWithPool, helpersWithLoad, retirePool, startPool } from './engine/lab-pool.js';
import { cancelJobs, experimentStep, startExperiment } from './engine/experiment.js';
import { beHelper, cancelJob, helping, reportMemory, runJob } from './engine/helper.js';
import { helperFailed, helperPort } from './engine/helper-channel.js';
import { call, engine, enqueue, post, stopLoops } from './engine/state.js';

/** Cancels the model download in progress (`cancel-load`). */
let loadAbort = null;
/** Bumped by every pause: a play still waiting in the queue when the user paused does not start. */
let pauses = 0;
// Fetching and compiling the wasm (streaming: compiled while it downloads), timed for the page.
const started = performance.now();
const ready = init().then((exports) => {
  engine.memory = exports.memory;
  return performance.now() - started;
});

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

/**
 * Work that waits until a prompt is ready or training starts (a request of `PROMPT_READY`
 * answered), off the way to the page's "ready": the helpers for the model just loaded, and the
 * task's loss with no prompt (the chart's reference line). On few cores the helpers' loading, and
 * in WebKit that first forward pass (2.1 s there against 0.2-0.6 s in Chromium: JavaScriptCore's
 * first tier runs new wasm code slowly), had delayed "ready": 5.8 s against Chromium's 2.8 s.
 */
const afterPrompt = { pool: null, baseline: null, due: false };
const TRAINING = new Set([REQUEST.PLAY, REQUEST.STEP, REQUEST.EXPERIMENT]);
const PROMPT_READY = new Set([REQUEST.RESET, REQUEST.IMPORT, REQUEST.RESTORE_PROMPT, ...TRAINING]);
/** Bumped by every task set: a baseline computed for an earlier task is not sent. */
let tasksSet = 0;
/**
 * The page's requests come in runs (a linked prompt: reset, import, evaluate, compare, each sent
 * as the one before is answered); the work above waits until the page has asked nothing for this
 * long, so that it does not hold up the run: a shared prompt's accuracy came 0.5 s later when the
 * baseline ran between the prompt's import and its evaluation, and 0.3 s later when the helpers
 * started loading beside them. A run that starts training starts the helpers at once.
 */
const QUIET_MS = 100;
let requestsInFlight = 0;
let quietTimer = null;

/** The helpers for the model just loaded: the sooner they join, the faster each step. */
function startHelpersAfterPrompt() {
  const startHelpers = afterPrompt.pool;
  afterPrompt.pool = null;
  startHelpers?.();
}

function runWhenQuiet() {
  if (requestsInFlight > 0) return; // the reply that ends them starts the wait again
  const { baseline } = afterPrompt;
  afterPrompt.baseline = null;
  afterPrompt.due = false;
  startHelpersAfterPrompt();
  baseline?.();
}

/** A request came or was answered: the work after the prompt waits for a quiet moment again. */
function awaitQuiet() {
  clearTimeout(quietTimer);
  if (afterPrompt.due) quietTimer = setTimeout(runWhenQuiet, QUIET_MS);
  noteActivity();
}

/** A large model's copy for the next visit waits for an idle engine (./engine/cache-later.js). */
const noteActivity = () => engineActivity(requestsInFlight > 0 || engine.playing || engine.experimenting);

/** The task's loss with no prompt, as a `baseline` event (unless another task came first). */
function baselineOf(task) {
  const set = tasksSet;
  return () => enqueue(async () => {
    if (set !== tasksSet) return;
    post(EVENT.BASELINE, { task, loss: await call(CALL.LOSS_WITHOUT_PROMPT) });
  }).catch(() => {});
}

async function trainStep() {
  const progress = await call(CALL.ADVANCE);
  post(EVENT.PROGRESS, { ...progress, wasmBytes: engine.memory.buffer.byteLength });
  if (progress.done) engine.playing = false;
}

/** Runs `step` through the queue again and again while `going()`; an error stops it via `fail`. */
function repeat(step, going, fail) {
  if (!going()) return;
  enqueue(step).catch(fail).then(() => {
    // setTimeout yields to the message loop, so a pause or a request gets in between steps.
    if (going()) setTimeout(() => repeat(step, going, fail), 0);
    else noteActivity();
  });
}

const tick = () => repeat(trainStep, () => engine.playing, (e) => {
  engine.playing = false;
  post(EVENT.ERROR, errorFields(e));
});

const experimentTick = () => repeat(experimentStep, () => engine.experimenting, (e) => {
  engine.experimenting = false;
  post(EVENT.ERROR, { ...errorFields(e), experiment: true });
});

const handlers = {
  async [REQUEST.INIT]({ backend, helper = false, workers = 1 }) {
    await ready;
    beHelper(helper);
    engine.workers = helper ? 1 : workers;
    if (backend === 'webgpu') {
      if (!self.navigator.gpu) throw { kind: 'Device', message: 'this browser has no WebGPU (navigator.gpu is missing); using the CPU backend' };
      const adapter = await self.navigator.gpu.requestAdapter();
      if (!adapter) throw { kind: 'Device', message: 'WebGPU gave no adapter (no usable GPU); using the CPU backend' };
      engine.lab = await Lab.webgpu();
      engine.backend = 'webgpu';
      return { backend: 'webgpu', adapter: adapterName(adapter.info) || 'unnamed adapter' };
    }
    engine.lab = Lab.cpu();
    engine.backend = 'cpu';
    return { backend: 'cpu', adapter: 'WebAssembly SIMD' };
  },
  async [REQUEST.INSPECT]({ source, batch, nVirtual }) {
    await ready;
    const { config, header, size } = await checkpointHead(source);
    return costWithPool((engines) => engine.lab.inspect(config, header, size, batch, nVirtual, engines));
  },
  async [REQUEST.LOAD_MODEL]({ source, batch, nVirtual }) {
    const wasmMs = await ready;
    const fetchStarted = performance.now();
    loadAbort = new AbortController();
    const notes = [];
    let files;
    let keeps;
    try {
      ({ files, keeps } = await modelFiles(source, (p) => post(EVENT.LOAD_PROGRESS, p), { signal: loadAbort.signal, notes }));
    } catch (e) {
      if (e.kind === 'Cancelled') return { cancelled: true };
      throw e;
    } finally {
      loadAbort = null;
    }
    stopLoops();
    // A large model's helpers load beside this engine (the page's sizes: lab-pool.js), from a
    // copy of our bytes: nothing reads the cache's copy before the run, and it is written once
    // the engine is idle, if the engine could load the file. Other files are kept first, for
    // the helpers that start after the prompt.
    const early = batch && !helping() ? await helpersWithLoad(files, batch, nVirtual) : null;
    if (!early) for (const keep of keeps) await keep(notes);
    const fetchMs = performance.now() - fetchStarted;
    const loadStarted = performance.now();
    // The engine reads the weights from our copy one tensor at a time (the file never enters its
    // memory, which never shrinks); ours are freed as soon as it is done (transfer(0) detaches a
    // buffer and releases its bytes), not whenever the collector runs. The lab's copy of a local
    // file stays: the page's source may start helpers from it; so does one that waits for the
    // cache (freed once written).
    const oursStay = (source.kind === 'files' && !helping()) || (early && keeps.length > 0);
    let loaded;
    try {
      loaded = await engine.lab.load(...files, helping());
      // A large model's helpers, loading beside us, replace the old model's; else the old
      // model's stay, taking no part, to load this one after the first prompt (`afterPrompt`).
      if (early) {
        early.adopt();
        keepWhenIdle(keeps, files);
      } else retirePool();
    } catch (e) {
      early?.stop();
      throw e;
    } finally {
      if (!oursStay) for (const f of files) if (!f.buffer.detached) f.buffer.transfer?.(0);
    }
    const engineMs = performance.now() - loadStarted;
    afterPrompt.pool = early ? null : () => startPool(source);
    return {
      ...loaded, downloadNotes: notes, wasmBytes: engine.memory.buffer.byteLength, timings: { wasmMs, fetchMs, engineMs, ...loaded.timings },
    };
  },
  async [REQUEST.SET_TASK]({ builtin, base, custom }) {
    stopLoops();
    const summary = custom
      ? await call(CALL.SET_CUSTOM_TASK, { name: custom.name, text: custom.text })
      : await call(CALL.SET_BUILTIN_TASK, await builtinTask(base, builtin));
    tasksSet += 1;
    afterPrompt.baseline = baselineOf(summary.name);
    return summary;
  },
  async [REQUEST.EXPERIMENT](request) {
    engine.playing = false;
    await startExperiment(request);
    if (!engine.experimenting) {
      engine.experimenting = true;
      setTimeout(experimentTick, 0);
    }
  },
  async [REQUEST.RESET]({ settings }) {
    engine.playing = false;
    return call(CALL.RESET, { settings });
  },
  async [REQUEST.PLAY]({ steps, pausesSeen }) {
    if (pausesSeen !== pauses) return { started: false, finished: false };
    engine.experimenting = false;
    await call(CALL.SET_STEPS, { steps });
    if (await call(CALL.FINISHED)) return { started: false, finished: true };
    if (!engine.playing) {
      engine.playing = true;
      setTimeout(tick, 0);
    }
    return { started: true, finished: false };
  },
  async [REQUEST.STEP]({ steps }) {
    await call(CALL.SET_STEPS, { steps });
    await trainStep();
  },
  [REQUEST.SET_STEPS]: ({ steps }) => call(CALL.SET_STEPS, { steps }),
  [REQUEST.COMPARE]: () => call(CALL.COMPARE),
  [REQUEST.EVALUATE]: () => call(CALL.EVALUATE),
  [REQUEST.TOKENIZE]: ({ text }) => call(CALL.TOKENIZE, { text }),
  [REQUEST.GENERATE]: ({ text }) => call(CALL.GENERATE, { text, maxNewTokens: 16 }),
  [REQUEST.EXPORT]: ({ baseModel, precision }) => call(CALL.EXPORT, { baseModel, precision }),
  [REQUEST.RESTORE_PROMPT]: ({ values, nVirtual, settings }) => engine.lab.restorePrompt(Float32Array.from(values), nVirtual, settings),
  [REQUEST.SIMULATE_GPU_LOSS]: () => engine.lab.testHook({ hook: 'simulate-gpu-loss' }),
  [REQUEST.CRASH_NEXT]: ({ point, how }) => engine.lab.testHook({ hook: 'crash-next', point, how }),
  [REQUEST.TIME_STEPS]: ({ steps }) => call(CALL.TIME_STEPS, { steps }),
  [REQUEST.TIME_PARTS]: ({ parts, steps }) => engine.lab.testHook({ hook: 'time-parts', parts, steps }),
  [REQUEST.PART]: ({ prompt, shape, rows }) => engine.lab.partGradient(prompt, shape, rows),
  [REQUEST.EVAL_PART]: ({ prompt, nVirtual, kind, examples }) => engine.lab.evalPart(prompt, nVirtual, kind, examples),
  [REQUEST.JOB]: runJob,
  async [REQUEST.IMPORT]({ config, weights, settings, modelName }) {
    engine.playing = false;
    return engine.lab.importAdapter(new Uint8Array(config), new Uint8Array(weights), settings, modelName);
  },
};

/** Requests handled as they arrive (protocol.js AHEAD_OF_QUEUE): they act on the one in progress. */
const ahead = {
  [REQUEST.PAUSE]() {
    // A pause must not wait behind the step in progress.
    if (engine.experimenting) cancelJobs();
    stopLoops();
    pauses += 1;
  },
  [REQUEST.CANCEL_JOB]: cancelJob,
  [REQUEST.KILL_HELPER]: () => engine.pool?.kill(),
  // The download it cancels is the request in progress.
  [REQUEST.CANCEL_LOAD]: () => loadAbort?.abort(),
  [REQUEST.HELPER_PORT]: ({ helper }, [port]) => helperPort(helper, port),
  [REQUEST.HELPER_FAILED]: ({ helper, message }) => helperFailed(helper, message),
};

/** One request, from the page (the lab) or over a helper's port (its lab). */
async function handle({ data, ports }) {
  const { id, type } = data;
  if (AHEAD_OF_QUEUE.includes(type)) {
    ahead[type](data, ports);
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
  requestsInFlight += 1;
  awaitQuiet();
  try {
    const value = await enqueue(() => handler(request));
    // Before the reply: the pool knows a helper's memory by the time its model-load answer lands.
    reportMemory();
    post(EVENT.REPLY, { id, value });
    if (PROMPT_READY.has(type)) afterPrompt.due = true;
    // Training keeps this thread busy from now on: a quiet moment would come after its first step.
    if (TRAINING.has(type)) startHelpersAfterPrompt();
  } catch (e) {
    post(EVENT.ERROR, { id, ...errorFields(e) });
  } finally {
    requestsInFlight -= 1;
    awaitQuiet();
  }
}

self.onmessage = (event) => {
  // A helper the page started: its lab speaks over the port from now on (./engine/helper-channel.js).
  if (event.data.type === REQUEST.CONNECT) {
    engine.out = event.ports[0];
    engine.out.onmessage = handle;
    return;
  }
  handle(event);
};
