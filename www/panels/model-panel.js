// The model: the bundled one, another GPT-2 checkpoint by folder URL or from local files
// (checked and sized before it loads), and its status.
import { $, fmtCount, showError } from '../dom.js';
import { MODEL_FILES, REQUEST } from '../protocol.js';
import { parseField } from '../state.js';

export function modelPanel(ctx) {
  const { state, rt, ui } = ctx;
  let pending = null; // a checked model waiting for "Load this model"

  const label = (source) => (source.base === ctx.bundled ? 'wordnet-gpt (bundled)' : source.base ?? 'local files');

  /** Loads `source` into the worker, then sets the task again on it. */
  async function load(source) {
    const started = performance.now();
    $('model-error').hidden = true;
    rt.set({ hasPrompt: false });
    try {
      const loaded = await rt.client.request(REQUEST.LOAD_MODEL, { source });
      if (source !== rt.modelSource) {
        ui.shelf.clear(); // prompts belong to the model they were trained on
        rt.set({ task: null });
      }
      const i = loaded.info;
      rt.set({ modelSource: source, modelInfo: i, step: 0 });
      $('model-status').textContent = `${label(source)}: ${fmtCount(i.params)} parameters, ${i.family}, ${i.nLayer} layers, d ${i.dModel}, `
        + `vocabulary ${i.vocabSize.toLocaleString('en')} · ready in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      $('model-status').dataset.ready = 'true';
      $('model-status').title = Object.entries(loaded.timings).map(([k, v]) => `${k.replace(/Ms$/, '')} ${v.toFixed(0)} ms`).join(', ');
      $('model-progress').value = $('model-progress').max;
      $('model-notes').hidden = i.notes.length === 0;
      $('model-notes').textContent = i.notes.map((n) => `Note: ${n}.`).join(' ');
      ui.map.setVocabulary(loaded.mapPoints, loaded.mapLabels, loaded.explained);
      await ctx.tasks.select(state.task);
    } catch (e) {
      showError($('model-error'), e);
      $('model-status').textContent = rt.modelInfo ? 'The previous model is still loaded.' : 'No model loaded.';
      // The worker keeps the previous model and its prompt when a load fails.
      rt.set({ hasPrompt: Boolean(rt.task) });
    }
  }

  async function inspect(source) {
    $('model-error').hidden = true;
    $('model-check').hidden = true;
    try {
      const s = await rt.client.request(REQUEST.INSPECT, { source });
      pending = source;
      // navigator.deviceMemory: the device's memory in GiB, rounded (and capped at 8) by the browser.
      const device = navigator.deviceMemory ? navigator.deviceMemory * 2 ** 30 : Infinity;
      const tooBig = s.estimatedBytes > device / 2;
      $('model-summary').textContent = `${fmtCount(s.params)} parameters (${s.family}, ${s.nLayer} layers, d ${s.dModel}, vocabulary `
        + `${s.vocabSize.toLocaleString('en')}); needs about ${(s.estimatedBytes / 2 ** 20).toFixed(0)} MB of memory`
        + (tooBig ? `, more than half of what this device reports (${navigator.deviceMemory} GB): the tab may run out of memory.` : '.');
      $('model-load').textContent = tooBig ? 'Load it anyway' : 'Load this model';
      $('model-check').hidden = false;
    } catch (e) {
      showError($('model-error'), e);
    }
  }

  async function useFiles(files) {
    const byName = Object.fromEntries([...files].map((f) => [f.name, f]));
    const missing = MODEL_FILES.filter((n) => !byName[n]);
    if (missing.length) {
      showError($('model-error'), { message: `missing ${missing.join(', ')}: choose all three files of the model (config.json, model.safetensors, tokenizer.json)` });
      return;
    }
    const [config, weights, tokenizer] = await Promise.all(MODEL_FILES.map((n) => byName[n].arrayBuffer()));
    await inspect({ kind: 'files', config, weights, tokenizer });
  }

  function onLoadProgress(msg) {
    const p = $('model-progress');
    p.max = msg.total || 1;
    p.value = msg.total ? msg.loaded : 0;
    $('model-status').textContent = `Fetching ${msg.file}: ${(msg.loaded / 1e6).toFixed(1)}`
      + (msg.total ? ` of ${(msg.total / 1e6).toFixed(1)} MB` : ' MB');
  }

  rt.onChange(() => {
    for (const id of ['model-load', 'model-bundled']) $(id).disabled = !rt.can().switchTaskOrModel;
  });
  $('model-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const base = $('model-url').value.trim();
    if (parseField('model', base) === undefined) {
      showError($('model-error'), { message: `“${base}” is not a web address: give the model folder's http:// or https:// URL` });
      return;
    }
    inspect({ kind: 'url', base });
  });
  $('model-files').addEventListener('change', (e) => useFiles(e.target.files));
  const drop = $('model-drop');
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('model-files').click();
    }
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    useFiles(e.dataTransfer.files);
  });
  $('model-load').addEventListener('click', () => {
    $('model-check').hidden = true;
    const source = pending;
    if (source.kind === 'url') {
      state.model = source.base;
      ctx.saveUrl();
    }
    rt.serial(() => load(source));
  });
  $('model-bundled').addEventListener('click', () => {
    state.model = '';
    ctx.saveUrl();
    rt.serial(() => load({ kind: 'url', base: ctx.bundled }));
  });
  return { load, onLoadProgress };
}
