// The task: a built-in task or the user's own examples (typed or uploaded; kept in the URL).
import { REQUEST } from '../protocol.js';
import { $, percent, showError } from '../dom.js';
import { CUSTOM_TASK } from '../state.js';

export function taskPanel(ctx) {
  const { state, rt, ui } = ctx;

  async function fillList() {
    const index = await (await fetch(new URL('index.json', ctx.tasksBase))).json();
    const select = $('task-select');
    for (const name of [...index.tasks, CUSTOM_TASK]) {
      select.append(new Option(name === CUSTOM_TASK ? 'your own examples…' : name, name));
    }
    ctx.experiments.fillSources(index.tasks);
    // A task name from the URL that is not one of them (a typo, garbage): the first task.
    if (![...index.tasks, CUSTOM_TASK].includes(state.task)) state.task = index.tasks[0];
    select.value = state.task;
  }

  function describe(task) {
    const kind = task.kind === 'classify'
      ? `Classification (${task.labels.map((l) => l.trim()).join(', ')})`
      : 'Exact-match generation';
    return `${kind}; ${task.trainSize} training and ${task.testSize} held-out examples; always giving the most common answer scores ${percent(task.chance)}.`;
  }

  /** Makes `name` the task, with its shelved prompt or a fresh one. */
  async function select(name) {
    // The prompt trained so far stays on the shelf for when the user comes back to its task.
    if (rt.task && rt.task.name !== name && rt.step > 0) await ctx.adapters.shelve().catch(() => {});
    state.task = name;
    $('task-select').value = name;
    ctx.saveUrl();
    const custom = name === CUSTOM_TASK;
    $('custom-box').hidden = !custom;
    showError($('custom-error'), null);
    showError($('task-error'), null);
    if (custom && !state.custom.trim()) {
      rt.set({ task: null, hasPrompt: false, training: false });
      $('task-about').textContent = 'Type or upload examples, then press “Use these examples”.';
      return;
    }
    let task;
    try {
      const request = custom ? { custom: { name, text: state.custom } } : { builtin: name, base: ctx.tasksBase };
      task = await rt.client.request(REQUEST.SET_TASK, request);
    } catch (e) {
      rt.set({ task: null, hasPrompt: false, training: false });
      showError(custom ? $('custom-error') : $('task-error'), e);
      return;
    }
    rt.set({ task, hasPrompt: false, training: false });
    $('task-about').textContent = describe(task);
    ui.chart.setReference(null); // the engine's baseline event brings the new task's
    const shelved = ui.shelf.get(name);
    if (shelved) {
      await ctx.adapters.use(shelved).catch(ctx.adapters.onError);
    } else {
      await ctx.training.reset();
    }
  }

  const selectQueued = (name) => rt.serial(() => select(name));
  rt.onChange(() => {
    for (const id of ['task-select', 'custom-apply']) $(id).disabled = !rt.can().switchTaskOrModel;
  });
  $('task-select').addEventListener('change', (e) => selectQueued(e.target.value));
  $('custom-text').value = state.custom;
  $('custom-text').addEventListener('input', (e) => {
    state.custom = e.target.value;
    ctx.saveUrl();
  });
  $('custom-apply').addEventListener('click', () => selectQueued(CUSTOM_TASK));
  $('custom-file').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    state.custom = await f.text();
    $('custom-text').value = state.custom;
    ctx.saveUrl();
    selectQueued(CUSTOM_TASK);
  });
  /** The engine's `baseline` event: the task's loss with no prompt, if it is still the task. */
  function onBaseline({ task, loss }) {
    if (rt.task?.name === task) ui.chart.setReference(loss);
  }

  return { fillList, select, selectQueued, onBaseline };
}
