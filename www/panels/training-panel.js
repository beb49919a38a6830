// The training controls: the settings (built from the engine's table), Train/Pause, Step, Reset,
// the run's figures, and the prompt views.
import { REQUEST } from '../protocol.js';
import { $, fmtCount, percent, showError } from '../dom.js';
import { NUMBERS, TRAIN_FIELDS, parseField, trainSettings } from '../state.js';
import SETTINGS from '../settings.js';

/** Settings whose change needs a new prompt (the step count applies to the run in progress). */
const RESTART_ON = TRAIN_FIELDS.filter((name) => name !== 'steps');
/** Steps/s is measured over this window. */
const SPEED_WINDOW_MS = 5000;
/**
 * A run whose step count nobody chose is sized to about a minute once its step time is known (at
 * its third step: the first ones pay for warming up), and never below ten steps: on a real model
 * the default 200 steps take minutes; on the bundled one they take seconds and stay.
 */
const SIZED_RUN_MS = 60_000;
const SIZE_AT_STEP = 3;
const SIZED_MIN_STEPS = 10;

export function trainingPanel(ctx) {
  const { state, rt, ui } = ctx;
  let stepTimes = [];
  /** The last step's memory figures ({wasmBytes, gpu}); none before a step. */
  let memory = null;
  /** Whether the user chose the step count (in the link, or in its field): then it always wins. */
  let chosenSteps = ctx.given.has('steps');
  /** The current run's step count where it was sized to a minute. */
  let sizedSteps = null;
  const runSteps = () => sizedSteps ?? state.steps;

  /** The numeric inputs, with bounds and help from the engine's table (virtual tokens first, as it lists them). */
  function buildSettings() {
    const rows = Object.values(NUMBERS).map((s) => {
      const label = document.createElement('label');
      label.title = s.help;
      const input = document.createElement('input');
      Object.assign(input, { id: `s-${s.name}`, type: 'number', min: s.min, max: s.max, step: s.integer ? 1 : 'any' });
      label.append(`${s.label} `, input);
      return label;
    });
    $('init-label').before(rows[0]);
    $('settings-fields').append(...rows.slice(1));
    $('s-init').replaceChildren(...SETTINGS.inits.map((i) => new Option(i.label, i.name)));
  }

  function bindSettings() {
    for (const name of TRAIN_FIELDS) {
      const el = $(`s-${name}`);
      el.value = state[name];
      el.addEventListener('change', () => {
        const v = parseField(name, el.value);
        if (v === undefined) {
          el.value = state[name];
          return;
        }
        state[name] = v;
        el.value = v;
        if (name === 'steps') {
          chosenSteps = true;
          sizedSteps = null;
          $('run-sized').hidden = true;
        }
        ctx.saveUrl();
        $('init-text-label').hidden = state.init !== 'text';
        if (RESTART_ON.includes(name) && rt.task && !rt.training) rt.serial(reset).catch(() => {});
      });
    }
    $('init-text-label').hidden = state.init !== 'text';
  }

  function clearRun() {
    ui.chart.clear();
    ui.map.clearPrompt();
    ui.outputs.clear();
    stepTimes = [];
    memory = null;
    $('train-progress').value = 0;
    sizedSteps = null;
    $('run-sized').hidden = true;
    for (const id of ['f-step', 'f-loss', 'f-acc', 'f-speed', 'f-grad', 'f-memory']) $(id).textContent = '–';
    $('f-fp-after').firstChild.textContent = '–';
    delete $('f-fp-after').dataset.equal;
    rt.set({ step: 0, target: state.steps, finished: false, accuracy: undefined });
  }

  function drawPrompt(view) {
    rt.promptCopy = { task: rt.task?.name, model: rt.modelSource, values: view.values, nVirtual: view.nVirtual };
    ui.map.addPrompt(view.points);
    ui.nearest.update(view.nearest);
    ui.heatmap.update(view);
    const n = view.nVirtual * view.dModel;
    $('f-trainable').textContent = `${view.nVirtual} × ${view.dModel} = ${n.toLocaleString('en')} of `
      + `${fmtCount(rt.modelInfo.params)}, ${((100 * n) / rt.modelInfo.params).toFixed(2)}%`;
  }

  /** A new prompt from the settings. */
  async function reset() {
    showError($('train-error'), null);
    clearRun();
    try {
      drawPrompt(await rt.client.request(REQUEST.RESET, { settings: trainSettings(state) }));
      rt.set({ hasPrompt: true, training: false });
      ctx.outputs.showTokens();
    } catch (e) {
      showError($('train-error'), e);
      rt.set({ hasPrompt: false });
    }
  }

  function showAccuracy(accuracy) {
    $('f-acc').textContent = accuracy === undefined ? '–' : percent(accuracy);
  }

  /** What the rest of the run will take on this backend, from the last step's time. */
  function showEstimate(p) {
    const left = (p.target - p.step) * p.msPerStep / 1000;
    const el = $('run-estimate');
    el.hidden = p.done !== undefined || left < 10;
    const time = left < 90 ? `${Math.round(left)} s` : `${Math.round(left / 60)} min`;
    const gpu = rt.backend === 'cpu' ? '; WebGPU would be faster if your browser has it (Backend, above)' : '';
    el.textContent = `The rest of this run (${p.target - p.step} steps at ${(p.msPerStep / 1000).toFixed(1)} s) takes about ${time} on the ${rt.backend === 'cpu' ? 'CPU' : 'GPU'}${gpu}.`;
  }

  /** Sizes the run in progress to about a minute from its step time (see SIZED_RUN_MS). */
  function sizeRun(p) {
    const steps = Math.max(SIZED_MIN_STEPS, Math.round(SIZED_RUN_MS / p.msPerStep));
    if (steps >= p.target) return;
    sizedSteps = steps;
    rt.client.request(REQUEST.SET_STEPS, { steps }).catch(onError);
    const minutes = (n) => `${Math.max(1, Math.round((n * p.msPerStep) / 60_000))} min`;
    $('run-sized').hidden = false;
    $('run-sized').textContent = `${steps} steps, about ${minutes(steps)} here at ${(p.msPerStep / 1000).toFixed(1)} s a step; `
      + `${p.target} would take ${minutes(p.target)}. Set Steps to choose your own.`;
  }

  function onProgress(p) {
    // Only a real model's runs: the bundled model's 200 steps take seconds (see SIZED_RUN_MS).
    if (p.step === SIZE_AT_STEP && rt.training && !chosenSteps && sizedSteps === null
      && ctx.otherModelLoaded()) sizeRun(p);
    const patch = { step: p.step, target: p.target };
    ui.chart.addLoss(p.step, p.loss);
    const now = performance.now();
    stepTimes = [...stepTimes.filter((t) => now - t < SPEED_WINDOW_MS), now];
    $('f-step').textContent = `${p.step} / ${p.target}`;
    $('f-loss').textContent = p.loss.toFixed(4);
    $('f-grad').textContent = p.gradNorm.toFixed(4);
    memory = { wasmBytes: p.wasmBytes, gpu: p.deviceMemory }; // drawn by render, with the helpers'
    $('f-speed').title = `the last step took ${p.msPerStep.toFixed(0)} ms`;
    if (stepTimes.length > 1) {
      $('f-speed').textContent = ((stepTimes.length - 1) / ((now - stepTimes[0]) / 1000)).toFixed(1);
    }
    showEstimate(p);
    $('train-progress').max = p.target;
    $('train-progress').value = p.step;
    if (p.prompt) drawPrompt(p.prompt);
    if (p.accuracy != null) {
      ui.chart.addAccuracy(p.step, p.accuracy);
      patch.accuracy = p.accuracy;
      showAccuracy(p.accuracy);
    }
    if (p.done) Object.assign(patch, { training: false, finished: true });
    rt.set(patch);
    if (p.done) {
      $('f-fp-after').firstChild.textContent = p.done.fingerprint;
      $('f-fp-after').dataset.equal = String(p.done.unchanged);
      $('f-fp-after').title = p.done.unchanged ? 'unchanged' : 'CHANGED';
      $('f-speed').dataset.overhead = p.done.overheadShare.toFixed(3);
      $('f-speed').title += `; held-out evaluations and views took ${percent(p.done.overheadShare)} of the run`;
      rt.serial(async () => {
        await ctx.adapters.shelve();
        await ctx.outputs.compare();
      }).catch((e) => showError($('train-error'), e));
    }
  }

  function onError(e) {
    rt.set({ training: false });
    showError($('train-error'), e);
  }

  /** Trains to the step count; a run already there (or past a lowered count) starts over. */
  async function play() {
    if (!rt.hasPrompt) return;
    if (rt.finished) await reset();
    rt.set({ training: true });
    let reply = await rt.client.request(REQUEST.PLAY, { steps: runSteps() });
    if (reply.finished) {
      await reset();
      rt.set({ training: true });
      reply = await rt.client.request(REQUEST.PLAY, { steps: runSteps() });
    }
    if (!reply.started) rt.set({ training: false });
  }

  function wire() {
    $('play').addEventListener('click', () => {
      showError($('train-error'), null);
      if (rt.training) {
        // The worker answers at once; the step in progress still reports after the answer.
        rt.client.request(REQUEST.PAUSE).then(() => rt.set({ training: false })).catch(onError);
        return;
      }
      rt.serial(play).catch(onError);
    });
    $('step').addEventListener('click', () => {
      showError($('train-error'), null);
      rt.serial(() => rt.client.request(REQUEST.STEP, { steps: runSteps() })).catch(onError);
    });
    $('reset').addEventListener('click', () => rt.serial(reset).catch(onError));
  }

  /** This engine's memory (its last step's), each helper's, and burn's GPU allocator's. */
  function showMemory() {
    if (!memory) return;
    const { wasmBytes, gpu } = memory;
    const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
    const helpers = rt.helperBytes;
    const el = $('f-memory');
    el.textContent = mb(wasmBytes)
      + (helpers.length ? ` + ${helpers.map(mb).join(', ')} in ${helpers.length} helper${helpers.length > 1 ? 's' : ''}` : '')
      + (gpu ? `; GPU ${mb(gpu.bytesReserved)} in ${gpu.allocs} buffers` : '');
    el.dataset.bytes = wasmBytes;
    el.dataset.helpers = JSON.stringify(helpers);
    if (gpu) el.dataset.gpu = JSON.stringify(gpu);
  }

  /** The controls' state, from the runtime only. */
  function render() {
    const can = rt.can();
    $('play').textContent = rt.training ? 'Pause' : 'Train';
    $('play').disabled = !can.trainOrPause;
    for (const id of ['step', 'reset']) $(id).disabled = !can.usePrompt;
    $('train-status').textContent = rt.pending > 0 ? 'Working…' : '';
    $('f-fp-before').firstChild.textContent = rt.modelInfo?.fingerprint ?? '–';
    showMemory();
  }

  /** The prompt length the engine settled on (an imported or restored prompt's). */
  function showVirtualTokens(n) {
    state.virtualTokens = n;
    $('s-virtualTokens').value = n;
    ctx.saveUrl();
  }

  buildSettings();
  bindSettings();
  wire();
  rt.onChange(render);
  return { reset, clearRun, drawPrompt, showAccuracy, showVirtualTokens, onProgress, onError };
}
