// The page's main thread: reads the state from the URL, starts the lab worker, and wires the
// panels (www/panels/) and views (www/components/) to it. All model work runs in the worker.
import { EVENT, MODEL_FILES, REQUEST } from './protocol.js';
import { LabClient } from './lab-client.js';
import { chosenBackend, timeBoth } from './backend-choice.js';
import { $ } from './dom.js';
import { Runtime } from './runtime.js';
import { fromUrl, givenFields, toQuery } from './state.js';
import { layout } from './layout.js';
import { HUB, LESSON_MODEL, sourceFor } from './hub.js';
import { isStored } from './stored-models.js';
import { TrainingChart } from './components/training-chart.js';
import { EmbeddingMap } from './components/embedding-map.js';
import { PromptHeatmap } from './components/prompt-heatmap.js';
import { NearestTokens } from './components/nearest-tokens.js';
import { OutputsTable } from './components/outputs-table.js';
import { PromptShelf } from './components/prompt-shelf.js';
import { ExperimentChart } from './components/experiment-chart.js';
import { Tour } from './components/tour.js';
import { modelPanel } from './panels/model-panel.js';
import { taskPanel } from './panels/task-panel.js';
import { trainingPanel } from './panels/training-panel.js';
import { outputsPanel } from './panels/outputs-panel.js';
import { adapters } from './panels/adapters.js';
import { experimentsPanel } from './panels/experiments-panel.js';
import { hostLink } from './host-link.js';
import { offline } from './offline.js';

/** The bundled model's name in exported adapters (its address changes with where the page is served). */
const BUNDLED_NAME = 'wordnet-gpt';
/** How long a restart waits for the old worker to hand over its prompt. */
const CARRY_TIMEOUT_MS = 3000;

const state = fromUrl(location.search);
const rt = new Runtime();
const ctx = {
  state,
  /** The fields the page's own link gave (`givenFields`). */
  given: givenFields(location.search),
  rt,
  bundled: new URL(`./models/${BUNDLED_NAME}/`, import.meta.url).href,
  /** Where the bundled model's family lives (scale: src/experiments/mod.rs FAMILY). */
  modelsBase: new URL('./models/', import.meta.url).href,
  tasksBase: new URL('./tasks/', import.meta.url).href,
  /** The source a model reference (a Hub id or a folder URL) names, Hub ids under `?hub=`. */
  sourceFor: (ref) => sourceFor(ref, state.hub || HUB),
  /** The model to (re)load: the one loaded, else the URL's, else the bundled one. */
  modelSource() {
    return rt.modelSource ?? (state.model ? ctx.sourceFor(state.model) : { kind: 'url', base: ctx.bundled });
  },
  /**
   * The loaded model's name for adapters (`base_model_name_or_path`): its Hub id, the bundled
   * model's name, a folder's address; none for local files.
   */
  modelName() {
    const source = rt.modelSource;
    if (!source || source.kind === 'files') return '';
    return source.base === ctx.bundled ? BUNDLED_NAME : source.id ?? source.base;
  },
  /** A model other than the bundled one is loaded: runs and experiments are sized to it. */
  otherModelLoaded() {
    return Boolean(rt.modelSource) && rt.modelSource.base !== ctx.bundled;
  },
  /** Whether the model the URL names (the bundled one when none) is the one loaded. */
  linkedModelLoaded() {
    const named = state.model ? ctx.sourceFor(state.model) : { base: ctx.bundled };
    return rt.modelSource?.base === named.base;
  },
  /** Starts the engine again on `backend` (a model too large for the GPU's buffers). */
  startOn: (backend) => start(backend),
  saveUrl() {
    history.replaceState(null, '', `${location.pathname}${toQuery(state)}${location.hash}`);
  },
  ui: {
    chart: new TrainingChart($('loss-chart')),
    map: new EmbeddingMap($('map-chart')),
    heatmap: new PromptHeatmap($('heatmap-chart')),
    nearest: new NearestTokens($('nearest')),
    outputs: new OutputsTable($('outputs-table'), $('accuracies')),
    shelf: new PromptShelf($('shelf-list'), (task) => ctx.tasks.selectQueued(task)),
    experiment: new ExperimentChart($('exp-chart')),
  },
};
ctx.model = modelPanel(ctx);
ctx.tasks = taskPanel(ctx);
ctx.training = trainingPanel(ctx);
ctx.outputs = outputsPanel(ctx);
ctx.adapters = adapters(ctx);
ctx.experiments = experimentsPanel(ctx);
const host = hostLink(ctx);

function onEvent(msg) {
  if (msg.type === EVENT.LOAD_PROGRESS) ctx.model.onLoadProgress(msg);
  else if (msg.type === EVENT.PROGRESS) {
    ctx.training.onProgress(msg);
    host.onProgress(msg);
  }
  else if (msg.type === EVENT.EXPERIMENT_PROGRESS) ctx.experiments.onProgress(msg);
  else if (msg.type === EVENT.EXPERIMENT_MODEL) ctx.experiments.onModelLoad(msg);
  else if (msg.type === EVENT.POOL) showPool(msg);
  else if (msg.type === EVENT.BASELINE) ctx.tasks.onBaseline(msg);
  else if (msg.type === EVENT.CACHE_WRITTEN) ctx.model.onCacheWritten(msg);
  else if (msg.type === EVENT.ERROR && msg.experiment) ctx.experiments.onError(msg);
  else if (msg.type === EVENT.ERROR) ctx.training.onError(msg);
}

/** A restart in progress: `crashed` holds a fatal error that came during it. */
let restart = null;

const BACKEND_NAMES = { cpu: 'the CPU backend', webgpu: 'WebGPU' };

/**
 * The engine stopped for good (a lost GPU, or a crash: a panic in the engine). The activity it
 * stopped fails visibly in its own panel; the engine starts again with the model, the task, the
 * settings and the prompt: on the CPU after a lost GPU, on the same backend after a crash.
 */
function onFatal(err) {
  if (rt.training) ctx.training.onError(err);
  if (rt.experimenting) ctx.experiments.onError(err);
  if (restart) {
    restart.crashed = err;
    return;
  }
  const backend = err.kind === 'GpuLost' ? 'cpu' : rt.backend ?? 'cpu';
  note(err.kind === 'GpuLost' ? `${err.message} — switched to the CPU backend.`
    : `${err.message} (on ${BACKEND_NAMES[backend]}).`);
  restartOn(backend, false);
}

/**
 * Starts the engine again on `backend`. A crash during the restart itself (a model that crashes
 * the engine as it loads) starts once more with the bundled model; a third gives up, saying so.
 */
function restartOn(backend, bundled) {
  restart = { crashed: null };
  if (bundled) {
    state.model = '';
    ctx.saveUrl();
    rt.set({ modelSource: null });
  }
  rt.serial(() => start(backend)).catch(ctx.training.onError).finally(() => {
    const { crashed } = restart;
    restart = null;
    if (!crashed) return;
    if (bundled) {
      note(`${crashed.message} The engine could not be restarted: reload the page.`);
    } else {
      note(`${crashed.message} It happened again while restarting: restarted with the bundled model.`);
      restartOn(backend, true);
    }
  });
}

function showBackend(used) {
  $('backend-badge').textContent = `${used.backend === 'webgpu' ? 'WebGPU' : 'CPU'} · ${used.adapter}`;
  $('backend-badge').dataset.backend = used.backend;
  $('backend-badge').dataset.base = $('backend-badge').textContent;
  delete $('backend-badge').dataset.workers;
}

/**
 * The engines training together on the CPU path (this worker and its helpers), on the badge; a
 * helper that stops (the count falls while as many were wanted) is said in a note.
 */
function showPool({ workers, wanted, why, failed, helperBytes }) {
  const badge = $('backend-badge');
  if (failed > Number(badge.dataset.failed ?? 0)) {
    note(`A helper engine stopped: training goes on with ${workers} worker${workers === 1 ? '' : 's'}.`);
  }
  badge.dataset.failed = failed;
  badge.dataset.workers = workers;
  badge.dataset.wanted = wanted;
  badge.textContent = wanted > 1 ? `${badge.dataset.base} · ${workers} workers` : badge.dataset.base;
  // How many engines the CPU path runs, and why (asked for in the link, or what the device allows).
  $('pool-note').hidden = !why;
  $('pool-note').textContent = why ? `Engines: ${why}.` : '';
  rt.set({ helperBytes });
}

/**
 * A new worker on `backend` with the model and the current prompt: `carried` adapter files, else
 * the old worker's (when it still answers), else the page's host copy of the prompt's last view
 * (after a crash or a lost GPU). Returns the backend it runs on (the CPU when WebGPU would not start).
 */
async function start(backend, carriedIn) {
  const copy = rt.promptCopy;
  const carried = carriedIn ?? (rt.client && rt.hasPrompt
    ? await Promise.race([
      rt.client.request(REQUEST.EXPORT, { baseModel: '' }).catch(() => undefined),
      new Promise((r) => { setTimeout(r, CARRY_TIMEOUT_MS); }),
    ])
    : undefined);
  rt.client?.terminate();
  rt.set({ client: new LabClient({ onEvent, onFatal }), training: false, experimenting: false, hasPrompt: false });
  let used;
  try {
    used = await rt.client.request(REQUEST.INIT, { backend, workers: state.workers });
  } catch (e) {
    if (backend === 'cpu') throw e;
    note(`${e.message}.`);
    return start('cpu', carried);
  }
  rt.set({ backend: used.backend });
  showBackend(used);
  await loadFirst();
  if (!rt.task) return used.backend;
  if (carried) await ctx.adapters.use(carried);
  else if (copy?.task === rt.task.name && copy.model === rt.modelSource) await ctx.adapters.restore(copy);
  return used.backend;
}

/**
 * The model at start: the one loaded before a restart, else the URL's when its files are stored
 * (nothing to download), else the bundled one, instantly — and the URL's model is checked, its
 * cost shown, for the visitor to load. A model that fails leaves the bundled one loaded.
 */
async function loadFirst() {
  let source = ctx.modelSource();
  let deferred = null;
  if (!rt.modelSource && state.model && !(await isStored(source.base, MODEL_FILES))) {
    deferred = state.model;
    source = { kind: 'url', base: ctx.bundled };
  }
  if (!(await ctx.model.load(source)) && !rt.modelInfo && source.base !== ctx.bundled) {
    await ctx.model.load({ kind: 'url', base: ctx.bundled }, { keepError: true });
  }
  if (deferred) {
    $('model-more').open = true;
    ctx.model.check(deferred);
  }
}

function note(text) {
  $('backend-note').hidden = false;
  $('backend-note').textContent = text;
}

/**
 * "Auto" on a GPU: times a training step there and on the CPU and keeps the faster backend; both
 * figures go next to the badge.
 */
async function keepFaster() {
  let timed;
  try {
    timed = await timeBoth(rt.client, ctx.modelSource());
  } catch (e) {
    note(`Auto could not time both backends (${e.message}); kept WebGPU.`);
    return;
  }
  const kept = timed.cpu < timed.webgpu ? 'cpu' : 'webgpu';
  if (kept === 'cpu') await start('cpu');
  const figures = `WebGPU ${timed.webgpu.toFixed(0)} ms, CPU ${timed.cpu.toFixed(0)} ms per step`;
  note(`Auto timed both: ${figures}; kept ${kept === 'cpu' ? 'the CPU' : 'WebGPU'}.`);
  $('backend-note').dataset.timed = JSON.stringify({ ...timed, kept });
}

/** Starts the chosen backend; "auto" on a GPU then keeps the faster of GPU and CPU. */
async function startChosen() {
  const used = await start(await chosenBackend(state.backend, note));
  if (state.backend === 'auto' && used === 'webgpu') await keepFaster();
}

offline();
layout(state, () => ctx.saveUrl());
const tour = new Tour($('tour'), (step) => {
  state.tour = step;
  ctx.saveUrl();
  host.onTour(step);
}, {
  // The real model's cost, to be loaded with one click, on the task the step trains.
  'real-model': () => {
    ctx.tasks.selectQueued('antonyms');
    $('model-more').open = true;
    ctx.model.check(LESSON_MODEL);
  },
});
$('tour-start').addEventListener('click', () => tour.show(1));
if (state.tour) tour.show(state.tour);
$('backend-select').value = state.backend;
$('backend-select').addEventListener('change', (e) => {
  state.backend = e.target.value;
  ctx.saveUrl();
  $('backend-note').hidden = true;
  rt.serial(startChosen).catch(ctx.training.onError);
});
// For tests, and for trying the recovery path by hand from the console.
window.softPromptLab = {
  simulateGpuLoss: () => rt.client.request(REQUEST.SIMULATE_GPU_LOSS),
  /** Makes the engine panic (`how` 'out-of-memory': run out of memory) at its next 'load', 'train' or 'experiment' step. */
  crashNext: (point, how = 'panic') => rt.client.request(REQUEST.CRASH_NEXT, { point, how }),
  /** Ends one helper engine of the CPU pool abruptly, as a crash would. */
  killHelper: () => rt.client.request(REQUEST.KILL_HELPER),
  /** One engine's share of a default step when `parts` engines share it (the bench). */
  timeParts: (parts) => rt.client.request(REQUEST.TIME_PARTS, { parts, steps: 15 }),
};
await ctx.tasks.fillList();
rt.serial(startChosen).catch((e) => {
  $('model-status').textContent = 'The lab could not start.';
  ctx.training.onError(e);
});
