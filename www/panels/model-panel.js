// The model: the bundled one, a real one from the Hugging Face Hub (presets or any `owner/name`),
// another checkpoint by folder URL or from local files — each checked and sized before any weight
// is fetched — its download (progress, time left, Cancel), the stored copies, and its status.
import { $, fmtCount, showError } from '../dom.js';
import { BUNDLED_PARAMS, PRESETS } from '../hub.js';
import { removeStored, storedModels } from '../stored-models.js';
import { MODEL_FILES, REQUEST } from '../protocol.js';
import { parseField } from '../state.js';

const MB = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;

/** "about 40 s left" / "about 3 min left". */
function timeLeft(seconds) {
  if (!Number.isFinite(seconds)) return '';
  return seconds < 90 ? `, about ${Math.ceil(seconds)} s left` : `, about ${Math.ceil(seconds / 60)} min left`;
}

export function modelPanel(ctx) {
  const { state, rt, ui } = ctx;
  let pending = null; // a checked model waiting for "Load this model": {source, cpuOnly}

  const label = (source) => {
    if (source.base === ctx.bundled) return 'wordnet-gpt (bundled)';
    return source.id ?? source.base ?? 'local files';
  };

  function fillPresets() {
    const select = $('model-preset');
    const option = (value, text) => select.append(new Option(text, value));
    option('', 'wordnet-gpt (bundled, 2.6 M parameters, instant)');
    for (const p of PRESETS) {
      const step = Math.round(p.params / BUNDLED_PARAMS);
      option(p.id, `${p.id.split('/')[1]} · ${fmtCount(p.params)} parameters · ${MB(p.download)} download (${p.dtype}) · a step ≈ ${step}× the bundled model's`);
    }
    option('other', 'Other: a Hub id or folder URL below');
  }

  async function showStored() {
    const list = $('stored-list');
    list.replaceChildren();
    const stored = await storedModels();
    $('stored-empty').hidden = stored.length > 0;
    for (const { base, bytes } of stored) {
      const item = document.createElement('li');
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.addEventListener('click', async () => {
        await removeStored(base);
        showStored();
      });
      item.append(`${base} · ${MB(bytes)} `, remove);
      list.append(item);
    }
  }

  /**
   * Loads `source` into the worker, then sets the task again on it. Returns whether it loaded.
   * `keepError`: the error of the load that failed before this one stays shown.
   */
  async function load(source, { keepError = false } = {}) {
    const started = performance.now();
    if (!keepError) $('model-error').hidden = true;
    $('model-cancel').hidden = source.kind !== 'url';
    rt.set({ hasPrompt: false });
    try {
      const loaded = await rt.client.request(REQUEST.LOAD_MODEL, { source, batch: state.batch, nVirtual: state.virtualTokens });
      if (loaded.cancelled) {
        $('model-status').textContent = `Download cancelled. ${rt.modelInfo ? 'The previous model is still loaded.' : 'No model loaded.'}`;
        rt.set({ hasPrompt: Boolean(rt.task) });
        return false;
      }
      if (source !== rt.modelSource) {
        ui.shelf.clear(); // prompts belong to the model they were trained on
        rt.set({ task: null });
      }
      const i = loaded.info;
      rt.set({ modelSource: source, modelInfo: i, step: 0 });
      $('model-status').textContent = `${label(source)}: ${fmtCount(i.params)} parameters, ${i.family}, ${i.nLayer} layers, d ${i.dModel}, `
        + `vocabulary ${i.vocabSize.toLocaleString('en')} · ready in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      $('model-status').dataset.ready = 'true';
      $('model-status').title = Object.entries(loaded.timings).map(([k, v]) => `${k.replace(/Ms$/, '')} ${v.toFixed(0)} ms`).join(', ')
        + `; engine memory ${MB(loaded.wasmBytes)}`;
      $('model-status').dataset.wasmBytes = loaded.wasmBytes;
      $('model-progress').value = $('model-progress').max;
      const notes = [...i.notes, ...loaded.downloadNotes];
      $('model-notes').hidden = notes.length === 0;
      $('model-notes').textContent = notes.map((n) => `Note: ${n}.`).join(' ');
      ui.map.setVocabulary(loaded.mapPoints, loaded.mapLabels, loaded.explained);
      await ctx.tasks.select(state.task);
      await ctx.adapters.showLinked();
      return true;
    } catch (e) {
      showError($('model-error'), e);
      $('model-status').textContent = rt.modelInfo ? 'The previous model is still loaded.' : 'No model loaded.';
      // The worker keeps the previous model and its prompt when a load fails.
      rt.set({ hasPrompt: Boolean(rt.task) });
      return false;
    } finally {
      $('model-cancel').hidden = true;
    }
  }

  /** What the checked model will cost, in words, and whether (and where) it can run. */
  function describe(s) {
    const m = s.memory;
    const parts = [`${fmtCount(s.params)} parameters (${s.family}, ${s.nLayer} layers, d ${s.dModel}, vocabulary ${s.vocabSize.toLocaleString('en')})`];
    if (s.header) parts.push(`${s.header.dtype} weights`);
    if (s.downloadBytes) parts.push(`${MB(s.downloadBytes)} to download`);
    const helpers = m.engines - 1;
    const pool = helpers > 0 ? `; ${helpers} helper engine${helpers > 1 ? 's' : ''} of ${MB(m.helper)}${helpers > 1 ? ' each' : ''}, `
      + `holding the weights and its share of a step (${s.pool.why})` : '';
    const needs = `needs about ${MB(m.total)} of memory (the engine: weights ${MB(m.weights)}, the embedding copy `
      + `${MB(m.embeddingCopy)}, a step's activations at batch ${state.batch} ${MB(m.activations)}, prompt and optimizer ${MB(m.optimizer)}, `
      + `its tables ${MB(m.base)}, ${MB(m.engine)} in all${pool}; while it loads, the file ${MB(m.file)} beside the weights`
      + `${s.pool.withLoad ? ', kept until a copy is stored for your next visit, once the engine is idle' : ''})`;
    // navigator.deviceMemory: the device's memory in GiB, rounded (and capped at 8) by the browser.
    const device = navigator.deviceMemory ? navigator.deviceMemory * 2 ** 30 : Infinity;
    const tooBig = m.total > device / 2;
    const cpuOnly = rt.backend === 'webgpu' && s.gpuBufferLimit !== null && s.largestMatrixBytes > s.gpuBufferLimit;
    let text = `${parts.join('; ')}; ${needs}`;
    if (s.refusal) text += `. It cannot load here: ${s.refusal}.`;
    else if (tooBig) text += `, more than half of what this device reports (${navigator.deviceMemory} GB): the tab may run out of memory.`;
    else text += '.';
    if (cpuOnly && !s.refusal) {
      text += ` Its largest weight matrix (${MB(s.largestMatrixBytes)} in f32) is more than one of this GPU's buffers holds (${MB(s.gpuBufferLimit)}): it will run on the CPU backend.`;
    }
    return { text, tooBig, cpuOnly, refused: Boolean(s.refusal) };
  }

  async function inspect(source) {
    $('model-error').hidden = true;
    $('model-check').hidden = true;
    try {
      const s = await rt.client.request(REQUEST.INSPECT, { source, batch: state.batch, nVirtual: state.virtualTokens });
      const d = describe(s);
      pending = d.refused ? null : { source, cpuOnly: d.cpuOnly };
      $('model-summary').textContent = d.text;
      // Each engine's estimate, for the measurements that set it beside each engine's memory.
      $('model-summary').dataset.engines = JSON.stringify([s.memory.engine, ...Array(s.memory.engines - 1).fill(s.memory.helper)]);
      $('model-load').hidden = d.refused;
      $('model-load').textContent = d.tooBig ? 'Load it anyway' : 'Load this model';
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
      + (msg.total ? ` of ${(msg.total / 1e6).toFixed(1)} MB${timeLeft(msg.secondsLeft)}` : ' MB');
  }

  /** Checks a model named in the URL field or the preset list (a Hub id or a folder URL). */
  function check(ref) {
    if (parseField('model', ref) === undefined) {
      showError($('model-error'), { message: `“${ref}” is neither a Hub id (owner/name) nor a web address: give a model such as HuggingFaceTB/SmolLM2-135M, or the model folder's http:// or https:// URL` });
      return;
    }
    inspect(ctx.sourceFor(ref));
  }

  rt.onChange(() => {
    for (const id of ['model-load', 'model-bundled', 'model-preset']) $(id).disabled = !rt.can().switchTaskOrModel;
  });
  fillPresets();
  $('model-preset').value = PRESETS.some((p) => p.id === state.model) ? state.model : '';
  $('model-preset').addEventListener('change', (e) => {
    const ref = e.target.value;
    if (ref === 'other') $('model-url').focus();
    else if (ref === '') $('model-bundled').click();
    else check(ref);
  });
  $('model-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    check($('model-url').value.trim());
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
    const { source, cpuOnly } = pending;
    if (source.kind === 'url') {
      state.model = source.id ?? source.base;
      ctx.saveUrl();
    }
    rt.serial(async () => {
      if (cpuOnly) await ctx.startOn('cpu');
      if (await load(source)) showStored();
    });
  });
  $('model-cancel').addEventListener('click', () => rt.client.request(REQUEST.CANCEL_LOAD));
  $('model-bundled').addEventListener('click', () => {
    state.model = '';
    ctx.saveUrl();
    rt.serial(() => load({ kind: 'url', base: ctx.bundled }));
  });
  $('stored-models').addEventListener('toggle', () => showStored());

  /** A large model's copy for the next visit, written once the engine was idle (or why not). */
  function onCacheWritten({ notes }) {
    showStored();
    if (notes.length === 0) return;
    $('model-notes').hidden = false;
    $('model-notes').textContent += `${$('model-notes').textContent ? ' ' : ''}${notes.map((n) => `Note: ${n}.`).join(' ')}`;
  }
  return { load, onLoadProgress, check, onCacheWritten };
}
