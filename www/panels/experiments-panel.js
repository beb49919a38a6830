// The experiments: the method's findings reproduced on the current task (src/experiments/),
// run by the worker one step at a time with their own prompts (the user's prompt is not touched).
// Progress with an ETA, the chart and a table as runs finish, the finding to compare with, and
// CSV / PNG downloads. The experiment and its source task are part of the URL.
import { REQUEST } from '../protocol.js';
import { $, download, showError } from '../dom.js';
import { trainSettings } from '../state.js';
import SETTINGS from '../settings.js';

const BY_NAME = Object.fromEntries(SETTINGS.experiments.map((e) => [e.name, e]));

export function experimentsPanel(ctx) {
  const { state, rt, ui } = ctx;
  let started = 0;
  let summary = null;

  /**
   * Steps per training and seeds per setting: the link's where it gives them (they always win),
   * else the bundled model's defaults on it (and on its family, for scale), else a size that fits
   * a few minutes on a real model.
   */
  function size() {
    const e = BY_NAME[state.experiment];
    const other = !e.needsFamily && ctx.otherModelLoaded();
    const pick = (field, otherSize) => (ctx.given.has(field) || !other ? state[field] : otherSize);
    return {
      steps: pick('expSteps', SETTINGS.otherModelExperiment.steps),
      seeds: pick('expSeeds', SETTINGS.otherModelExperiment.seeds),
      other,
    };
  }

  function describe() {
    const e = BY_NAME[state.experiment];
    const on = e.needsFamily
      ? `on the bundled model's family (${SETTINGS.family.join(', ')}; the smaller ones are fetched when the experiment reaches them), whatever model is loaded`
      : 'on the current model';
    const { steps, seeds, other } = size();
    const sized = other && (steps !== state.expSteps || seeds !== state.expSeeds)
      ? ` (fewer than the bundled model's ${state.expSeeds} × ${state.expSteps}, to fit a few minutes on this larger model)` : '';
    $('exp-finding').textContent = `${e.finding} Here: ${seeds} seed${seeds === 1 ? '' : 's'} per setting, `
      + `${steps} steps each${sized}, ${on}, on the current task with your other settings.`;
    $('exp-source-label').hidden = state.experiment !== 'transfer';
  }

  /** The task list is known once the task panel has read it. */
  function fillSources(names) {
    $('exp-source').replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(state.expSource)) $('exp-source').value = state.expSource;
  }

  function source() {
    const chosen = $('exp-source').value;
    // Transfer from the task itself means nothing: the first other task instead.
    if (chosen && chosen !== state.task) return chosen;
    return [...$('exp-source').options].map((o) => o.value).find((n) => n !== state.task);
  }

  async function run() {
    summary = null;
    ui.experiment.clear();
    $('exp-table').replaceChildren();
    $('exp-reading').textContent = '';
    showError($('exp-error'), null);
    $('exp-progress').value = 0;
    started = performance.now();
    rt.set({ experimenting: true });
    const { steps, seeds } = size();
    try {
      await rt.client.request(REQUEST.EXPERIMENT, {
        config: {
          name: state.experiment,
          steps,
          seeds,
          base: trainSettings(state),
          models: BY_NAME[state.experiment].needsFamily ? SETTINGS.family : [],
        },
        source: state.experiment === 'transfer' ? source() : undefined,
        base: ctx.tasksBase,
        modelsBase: ctx.modelsBase,
      });
      $('exp-status').textContent = 'Starting…';
    } catch (e) {
      rt.set({ experimenting: false });
      showError($('exp-error'), e);
    }
  }

  /** One of the engine's tables (src/report.rs: the command line prints the same ones). */
  function table({ caption, header, rows }) {
    const t = document.createElement('table');
    t.createCaption().textContent = caption;
    const row = (cells, tag) => {
      const tr = document.createElement('tr');
      for (const v of cells) {
        const cell = document.createElement(tag);
        cell.textContent = v;
        tr.append(cell);
      }
      return tr;
    };
    t.createTHead().append(row(header, 'th'));
    t.createTBody().append(...rows.map((r) => row(r, 'td')));
    return t;
  }

  function onModelLoad({ name, file, loaded, total }) {
    const mb = (n) => (n / 1e6).toFixed(1);
    $('exp-status').textContent = `Fetching ${name} (${file}${total ? `: ${mb(loaded)} of ${mb(total)} MB` : ''})…`;
  }

  function onProgress(p) {
    $('exp-progress').max = p.stepsTotal || 1;
    $('exp-progress').value = p.stepsDone;
    const elapsed = (performance.now() - started) / 1000;
    const left = p.stepsDone ? (elapsed / p.stepsDone) * (p.stepsTotal - p.stepsDone) : 0;
    $('exp-status').textContent = `Run ${Math.min(p.runsDone + 1, p.runs)} of ${p.runs}: ${p.arm}, seed ${p.seed}`
      + (p.runsAway ? ` · ${p.runsAway} more on helper engines` : '')
      + (p.stepsDone ? ` · about ${Math.ceil(left)} s left` : '');
    if (p.finished) ui.experiment.addRun(p.finished, p.arms, p.models);
    if (p.done) {
      summary = p.done;
      rt.set({ experimenting: false });
      $('exp-status').textContent = `Done in ${elapsed.toFixed(0)} s.`;
      $('exp-status').dataset.done = state.experiment;
      $('exp-table').replaceChildren(...summary.tables.map(table));
      $('exp-reading').textContent = summary.reading ?? '';
    }
  }

  function onError(e) {
    rt.set({ experimenting: false });
    showError($('exp-error'), e);
  }

  function csv() {
    const rows = [['experiment', 'task', 'model', 'parameters', 'setting', 'seed', 'step', 'accuracy', 'final_loss']];
    for (const r of summary.runs) {
      const arm = summary.arms[r.arm];
      // The family member it ran on (scale); the loaded model's runs leave both blank.
      const model = summary.models[arm.model];
      const points = r.curve.length ? r.curve : [[summary.steps, r.accuracy]];
      for (const [step, acc] of points) {
        rows.push([summary.name, summary.task, model?.name ?? '', model?.parameters ?? '', arm.label, r.seed, step, acc, r.loss ?? '']);
      }
    }
    const quote = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    return `${rows.map((r) => r.map(quote).join(',')).join('\n')}\n`;
  }

  for (const e of SETTINGS.experiments) $('exp-select').append(new Option(e.title, e.name));
  $('exp-select').value = state.experiment;
  $('exp-select').addEventListener('change', (e) => {
    state.experiment = e.target.value;
    ctx.saveUrl();
    describe();
  });
  $('exp-source').addEventListener('change', (e) => {
    state.expSource = e.target.value;
    ctx.saveUrl();
  });
  $('exp-run').addEventListener('click', () => {
    if (rt.experimenting) {
      rt.client.request(REQUEST.PAUSE).then(() => {
        rt.set({ experimenting: false });
        $('exp-status').textContent = 'Cancelled.';
      }).catch(onError);
      return;
    }
    rt.serial(run).catch(onError);
  });
  $('exp-csv').addEventListener('click', () => download(`${summary.name}-${summary.task}.csv`, csv(), 'text/csv'));
  $('exp-png').addEventListener('click', () => {
    const data = atob(ui.experiment.png().split(',')[1]);
    download(`${summary.name}-${summary.task}.png`, Uint8Array.from(data, (c) => c.charCodeAt(0)), 'image/png');
  });
  let describedFor = null;
  rt.onChange(() => {
    // The size depends on the model loaded.
    if (rt.modelSource !== describedFor) {
      describedFor = rt.modelSource;
      describe();
    }
    $('exp-run').textContent = rt.experimenting ? 'Cancel' : 'Run';
    $('exp-run').disabled = !rt.can().runExperiment;
    $('exp-csv').disabled = !summary || rt.experimenting;
    $('exp-png').disabled = !summary || rt.experimenting;
  });
  describe();
  return { fillSources, onProgress, onModelLoad, onError };
}
