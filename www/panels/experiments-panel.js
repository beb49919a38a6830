// The experiments: the method's findings reproduced on the current task (src/experiments.rs),
// run by the worker one step at a time with their own prompts (the user's prompt is not touched).
// Progress with an ETA, the chart and a table as runs finish, the finding to compare with, and
// CSV / PNG downloads. The experiment and its source task are part of the URL.
import { REQUEST } from '../protocol.js';
import { $, download, percent, showError } from '../dom.js';
import { trainSettings } from '../state.js';
import SETTINGS from '../settings.js';

const BY_NAME = Object.fromEntries(SETTINGS.experiments.map((e) => [e.name, e]));

export function experimentsPanel(ctx) {
  const { state, rt, ui } = ctx;
  let started = 0;
  let summary = null;

  function describe() {
    const e = BY_NAME[state.experiment];
    $('exp-finding').textContent = `${e.finding} Here: ${SETTINGS.experimentSeeds} seeds per setting, `
      + `${SETTINGS.experimentSteps} steps each, on the current task with your other settings.`;
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
    showError($('exp-error'), null);
    $('exp-progress').value = 0;
    started = performance.now();
    rt.set({ experimenting: true });
    try {
      await rt.client.request(REQUEST.EXPERIMENT, {
        config: { name: state.experiment, steps: SETTINGS.experimentSteps, seeds: SETTINGS.experimentSeeds, base: trainSettings(state) },
        source: state.experiment === 'transfer' ? source() : undefined,
        base: ctx.tasksBase,
      });
      $('exp-status').textContent = 'Starting…';
    } catch (e) {
      rt.set({ experimenting: false });
      showError($('exp-error'), e);
    }
  }

  function table(s) {
    const t = document.createElement('table');
    t.innerHTML = '<caption></caption><thead><tr><th>Setting</th><th>Mean</th><th>Min</th><th>Max</th><th>Runs</th></tr></thead><tbody></tbody>';
    t.querySelector('caption').textContent = `${s.title} on ${s.task}: held-out accuracy`;
    for (const a of s.arms) {
      const tr = document.createElement('tr');
      for (const v of [a.label, percent(a.mean), percent(a.min), percent(a.max), String(a.runs)]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.append(td);
      }
      t.tBodies[0].append(tr);
    }
    $('exp-table').replaceChildren(t);
  }

  function onProgress(p) {
    $('exp-progress').max = p.stepsTotal || 1;
    $('exp-progress').value = p.stepsDone;
    const elapsed = (performance.now() - started) / 1000;
    const left = p.stepsDone ? (elapsed / p.stepsDone) * (p.stepsTotal - p.stepsDone) : 0;
    $('exp-status').textContent = `Run ${Math.min(p.runsDone + 1, p.runs)} of ${p.runs}: ${p.arm}, seed ${p.seed}`
      + (p.stepsDone ? ` · about ${Math.ceil(left)} s left` : '');
    if (p.finished) ui.experiment.addRun(p.finished, p.arms);
    if (p.done) {
      summary = p.done;
      rt.set({ experimenting: false });
      $('exp-status').textContent = `Done in ${elapsed.toFixed(0)} s.`;
      $('exp-status').dataset.done = state.experiment;
      table(summary);
    }
  }

  function onError(e) {
    rt.set({ experimenting: false });
    showError($('exp-error'), e);
  }

  function csv() {
    const rows = [['experiment', 'task', 'setting', 'seed', 'step', 'accuracy', 'final_loss']];
    for (const r of summary.runs) {
      const arm = summary.arms[r.arm].label;
      const points = r.curve.length ? r.curve : [[summary.steps, r.accuracy]];
      for (const [step, acc] of points) rows.push([summary.name, summary.task, arm, r.seed, step, acc, r.loss ?? '']);
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
  rt.onChange(() => {
    $('exp-run').textContent = rt.experimenting ? 'Cancel' : 'Run';
    $('exp-run').disabled = !rt.can().runExperiment;
    $('exp-csv').disabled = !summary || rt.experimenting;
    $('exp-png').disabled = !summary || rt.experimenting;
  });
  describe();
  return { fillSources, onProgress, onError };
}
