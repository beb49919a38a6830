// The page's main thread: reads the state from the URL, drives the lab worker, and draws.
import { LabClient } from './lab-client.js';
import { MODEL_FILES } from './protocol.js';
import { CUSTOM_TASK, FIELDS, PANELS, fromUrl, toQuery, trainSettings } from './state.js';
import { TrainingChart } from './components/training-chart.js';
import { EmbeddingMap } from './components/embedding-map.js';
import { PromptHeatmap } from './components/prompt-heatmap.js';
import { NearestTokens } from './components/nearest-tokens.js';
import { OutputsTable } from './components/outputs-table.js';
import { PromptShelf } from './components/prompt-shelf.js';
import { zipSync, unzipSync } from './vendor/fflate.js';

const $ = (id) => document.getElementById(id);
const BUNDLED = new URL('./models/wordnet-gpt/', import.meta.url).href;
const TASKS = new URL('./tasks/', import.meta.url).href;
const SETTING_NAMES = ['virtualTokens', 'init', 'initText', 'lr', 'steps', 'batch', 'seed'];
/** Settings whose change needs a new prompt (the others apply to the next steps). */
const RESTART_ON = ['virtualTokens', 'init', 'initText', 'seed', 'lr', 'batch'];

const state = fromUrl(location.search);
const ui = {
  chart: new TrainingChart($('loss-chart')),
  map: new EmbeddingMap($('map-chart')),
  heatmap: new PromptHeatmap($('heatmap-chart')),
  nearest: new NearestTokens($('nearest')),
  outputs: new OutputsTable($('outputs-table'), $('accuracies')),
  shelf: new PromptShelf($('shelf-list'), (task) => selectTask(task)),
};
let client = null;
let modelSource = null; // what to (re)load after a worker restart
let modelInfo = null;
let task = null; // the worker's task summary
let training = false;
let steps = 0;
let lastStep = null;
let stepTimes = [];

// ---------- small helpers ----------

function saveUrl() {
  history.replaceState(null, '', `${location.pathname}${toQuery(state)}${location.hash}`);
}

function showError(el, e) {
  el.hidden = !e;
  el.textContent = e ? (e.line ? `Line ${e.line}: ${e.message}` : e.message) : '';
}

function fmtCount(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

function setBusy(on) {
  training = on;
  $('play').textContent = on ? 'Pause' : 'Train';
  for (const id of ['step', 'reset', 'evaluate', 'try-go', 'export', 'export-files']) $(id).disabled = on || !task;
}

function download(name, bytes, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---------- the worker ----------

function onEvent(msg) {
  switch (msg.type) {
    case 'load-progress': {
      const p = $('model-progress');
      p.max = msg.total || 1;
      p.value = msg.total ? msg.loaded : 0;
      $('model-status').textContent = `Fetching ${msg.file}: ${(msg.loaded / 1e6).toFixed(1)}`
        + (msg.total ? ` of ${(msg.total / 1e6).toFixed(1)} MB` : ' MB');
      break;
    }
    case 'step': {
      steps = msg.step;
      ui.chart.addLoss(msg.step, msg.loss);
      const now = performance.now();
      stepTimes.push(now);
      stepTimes = stepTimes.filter((t) => now - t < 5000);
      $('f-step').textContent = `${msg.step} / ${msg.target}`;
      $('f-loss').textContent = msg.loss.toFixed(4);
      $('f-grad').textContent = msg.gradNorm.toFixed(4);
      $('f-speed').title = `the last step took ${msg.msPerStep.toFixed(0)} ms`;
      if (stepTimes.length > 1) {
        $('f-speed').textContent = ((stepTimes.length - 1) / ((now - stepTimes[0]) / 1000)).toFixed(1);
      }
      $('train-progress').max = msg.target;
      $('train-progress').value = msg.step;
      lastStep = msg;
      break;
    }
    case 'prompt':
      drawPrompt(msg);
      break;
    case 'eval':
      ui.chart.addAccuracy(msg.step, msg.accuracy);
      $('f-acc').textContent = `${(msg.accuracy * 100).toFixed(1)}%`;
      break;
    case 'done':
      setBusy(false);
      $('f-fp-after').firstChild.textContent = msg.fingerprint;
      $('f-fp-after').dataset.equal = String(msg.fingerprint === modelInfo.fingerprint);
      $('f-fp-after').title = msg.fingerprint === modelInfo.fingerprint ? 'unchanged' : 'CHANGED';
      shelve().then(compare).catch((e) => showError($('train-error'), e));
      break;
    case 'error':
      setBusy(false);
      showError($('train-error'), msg);
      break;
    default:
  }
}

function drawPrompt(view) {
  ui.map.addPrompt(view.points);
  ui.nearest.update(view.nearest);
  ui.heatmap.update(view);
  const n = view.nVirtual * view.dModel;
  $('f-trainable').textContent = `${view.nVirtual} × ${view.dModel} = ${n.toLocaleString('en')} of `
    + `${fmtCount(modelInfo.params)}, ${((100 * n) / modelInfo.params).toFixed(2)}%`;
}

async function onFatal(err) {
  // A lost GPU or a broken wasm instance: start again on the CPU, keeping everything the user set.
  $('backend-note').hidden = false;
  $('backend-note').textContent = `${err.message} — switched to the CPU backend.`;
  await start('cpu');
}

async function start(backend, carriedIn) {
  // Carry the current prompt over when the old worker can still export it.
  const carried = carriedIn ?? (client && task
    ? await Promise.race([
      client.request('export', { baseModel: '' }).catch(() => undefined),
      new Promise((r) => { setTimeout(r, 3000); }),
    ])
    : undefined);
  client?.terminate();
  setBusy(false);
  $('play').disabled = true;
  client = new LabClient({ onEvent, onFatal });
  let used;
  try {
    used = await client.request('init', { backend });
  } catch (e) {
    if (backend === 'cpu') throw e;
    $('backend-note').hidden = false;
    $('backend-note').textContent = `${e.message}.`;
    return start('cpu', carried);
  }
  $('backend-badge').textContent = `${used.backend === 'webgpu' ? 'WebGPU' : 'CPU'} · ${used.adapter}`;
  $('backend-badge').dataset.backend = used.backend;
  const prompt = carried ?? (task ? ui.shelf.get(task.name) : undefined);
  await loadModel(modelSource ?? (state.model ? { kind: 'url', base: state.model } : { kind: 'url', base: BUNDLED }));
  if (prompt && task) await client.request('import', { ...prompt, settings: trainSettings(state) });
}

// ---------- model ----------

async function loadModel(source) {
  const started = performance.now();
  $('model-error').hidden = true;
  $('play').disabled = true;
  try {
    const loaded = await client.request('load-model', { source });
    if (source !== modelSource) {
      ui.shelf.clear(); // prompts belong to the model they were trained on
      task = null;
    }
    modelSource = source;
    modelInfo = loaded.info;
    const i = loaded.info;
    $('model-status').textContent = `${source.base === BUNDLED ? 'wordnet-gpt (bundled)' : source.base ?? 'local files'}: `
      + `${fmtCount(i.params)} parameters, ${i.nLayer} layers, d ${i.nEmbd}, vocabulary ${i.vocabSize.toLocaleString('en')} · ready in ${((performance.now() - started) / 1000).toFixed(1)} s`;
    $('model-status').dataset.ready = 'true';
    $('model-progress').value = $('model-progress').max;
    $('f-fp-before').firstChild.textContent = i.fingerprint;
    $('f-fp-after').firstChild.textContent = '–';
    ui.map.setVocabulary(loaded.mapPoints, loaded.mapLabels, loaded.explained);
    await selectTask(state.task);
  } catch (e) {
    showError($('model-error'), e);
    $('model-status').textContent = modelInfo ? 'The previous model is still loaded.' : 'No model loaded.';
    $('play').disabled = !task;
  }
}

let pendingModel = null;

async function inspect(source) {
  $('model-error').hidden = true;
  $('model-check').hidden = true;
  try {
    const s = await client.request('inspect', { source });
    pendingModel = source;
    $('model-summary').textContent = `${fmtCount(s.params)} parameters (${s.nLayer} layers, d ${s.nEmbd}, vocabulary `
      + `${s.vocabSize.toLocaleString('en')}); needs about ${(s.estimatedBytes / 2 ** 20).toFixed(0)} MB of memory.`;
    $('model-check').hidden = false;
  } catch (e) {
    showError($('model-error'), e);
  }
}

function filesSource(files) {
  const byName = Object.fromEntries([...files].map((f) => [f.name, f]));
  const missing = MODEL_FILES.filter((n) => !byName[n]);
  if (missing.length) {
    throw { message: `missing ${missing.join(', ')}: choose all three files of the model (config.json, model.safetensors, tokenizer.json)` };
  }
  return Promise.all(MODEL_FILES.map((n) => byName[n].arrayBuffer()))
    .then(([config, weights, tokenizer]) => ({ kind: 'files', config, weights, tokenizer }));
}

async function useFiles(files) {
  try {
    await inspect(await filesSource(files));
  } catch (e) {
    showError($('model-error'), e);
  }
}

// ---------- task ----------

async function fillTaskList() {
  const index = await (await fetch(new URL('index.json', TASKS))).json();
  const select = $('task-select');
  for (const name of [...index.tasks, CUSTOM_TASK]) {
    const o = document.createElement('option');
    o.value = name;
    o.textContent = name === CUSTOM_TASK ? 'your own examples…' : name;
    select.append(o);
  }
  select.value = state.task;
  if (select.value !== state.task) select.value = index.tasks[0];
}

async function selectTask(name) {
  // The prompt trained so far stays on the shelf for when the user comes back to its task.
  if (task && task.name !== name && steps > 0) await shelve().catch(() => {});
  state.task = name;
  $('task-select').value = name;
  saveUrl();
  const custom = name === CUSTOM_TASK;
  $('custom-box').hidden = !custom;
  showError($('custom-error'), null);
  if (custom && !state.custom.trim()) {
    task = null;
    setBusy(false);
    $('play').disabled = true;
    $('task-about').textContent = 'Type or upload examples, then press “Use these examples”.';
    return;
  }
  try {
    const request = custom ? { custom: { name, text: state.custom } } : { builtin: name, base: TASKS };
    task = await client.request('set-task', request);
  } catch (e) {
    task = null;
    showError(custom ? $('custom-error') : $('train-error'), e);
    $('play').disabled = true;
    return;
  }
  $('task-about').textContent = `${task.kind === 'classify' ? `Classification (${task.labels.map((l) => l.trim()).join(', ')})` : 'Exact-match generation'}; `
    + `${task.trainSize} training and ${task.testSize} held-out examples; always giving the most common answer scores ${(task.chance * 100).toFixed(1)}%.`;
  const shelved = ui.shelf.get(name);
  if (shelved) await usePrompt(shelved);
  else await resetPrompt();
}

// ---------- training ----------

async function resetPrompt() {
  showError($('train-error'), null);
  ui.chart.clear();
  ui.map.clearPrompt();
  ui.outputs.clear();
  steps = 0;
  $('train-progress').value = 0;
  for (const id of ['f-step', 'f-loss', 'f-acc', 'f-speed', 'f-grad']) $(id).textContent = '–';
  $('f-fp-after').firstChild.textContent = '–';
  try {
    drawPrompt(await client.request('reset', { settings: trainSettings(state) }));
    setBusy(false);
    $('play').disabled = false;
    showTokens();
  } catch (e) {
    showError($('train-error'), e);
    $('play').disabled = true;
  }
}

async function usePrompt(item) {
  ui.chart.clear();
  ui.map.clearPrompt();
  ui.outputs.clear();
  try {
    await client.request('import', { config: item.config, weights: item.weights, settings: trainSettings(state) });
    setBusy(false);
    $('play').disabled = false;
    $('f-acc').textContent = item.accuracy === undefined ? '–' : `${(item.accuracy * 100).toFixed(1)}%`;
  } catch (e) {
    showError($('shelf-error'), e);
  }
}

async function shelve() {
  const files = await client.request('export', { baseModel: modelSource?.base ?? '' });
  const acc = $('f-acc').textContent;
  ui.shelf.put(task.name, {
    ...files,
    nVirtual: state.virtualTokens,
    steps,
    accuracy: acc.endsWith('%') ? Number.parseFloat(acc) / 100 : undefined,
  });
  return files;
}

async function compare() {
  $('evaluate').disabled = true;
  try {
    const evals = await client.request('evaluate');
    ui.outputs.update(evals, task.textPrompt);
  } catch (e) {
    showError($('train-error'), e);
  } finally {
    $('evaluate').disabled = training;
  }
}

// ---------- wiring ----------

function bindSettings() {
  for (const name of SETTING_NAMES) {
    const el = $(`s-${name}`);
    el.value = state[name];
    el.addEventListener('change', () => {
      const [, codec] = FIELDS[name];
      const v = codec.parse(el.value);
      if (v === undefined) {
        el.value = state[name];
        return;
      }
      state[name] = v;
      el.value = v;
      saveUrl();
      $('init-text-label').hidden = state.init !== 'text';
      if (RESTART_ON.includes(name) && task && !training) resetPrompt();
    });
  }
  $('init-text-label').hidden = state.init !== 'text';
}

function applyLayout() {
  document.body.classList.toggle('embed', state.embed);
  for (const p of PANELS) $(p).hidden = !state.panels.includes(p);
}

/** One checkbox per view; the choice is part of the URL (and of the embed code). */
function panelToggles() {
  for (const p of PANELS) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = state.panels.includes(p);
    box.addEventListener('change', () => {
      state.panels = PANELS.filter((q) => (q === p ? box.checked : state.panels.includes(q)));
      saveUrl();
      applyLayout();
    });
    label.append(box, ` ${$(`${p}-title`).textContent}`);
    $('panel-toggles').append(label);
  }
}

async function copyEmbed() {
  const src = `${location.origin}${location.pathname}${toQuery({ ...state, embed: true })}`;
  const code = `<iframe src="${src.replace(/"/g, '&quot;')}" title="Soft Prompt Lab" width="100%" height="760" style="border:0"></iframe>`;
  try {
    await navigator.clipboard.writeText(code);
    $('copy-status').textContent = 'Embed code copied.';
  } catch {
    $('copy-status').textContent = code;
  }
}

/** The try-it input as the model reads it: the virtual tokens, then the text's tokens. */
async function showTokens() {
  const chips = [];
  const chip = (label, title) => {
    const s = document.createElement('span');
    s.className = 'token';
    s.textContent = label;
    s.title = title;
    chips.push(s);
  };
  chip(`P1…P${state.virtualTokens}`, 'the soft prompt\'s virtual tokens');
  try {
    for (const t of await client.request('tokenize', { text: $('try-input').value })) {
      chip(JSON.stringify(t.text).slice(1, -1), `token ${t.id}`);
    }
  } catch (e) {
    chip(e.message, 'error');
  }
  $('try-tokens').replaceChildren(...chips);
}

async function importAdapter(files) {
  showError($('shelf-error'), null);
  try {
    let config;
    let weights;
    const list = [...files];
    if (list.length === 1 && list[0].name.endsWith('.zip')) {
      const entries = unzipSync(new Uint8Array(await list[0].arrayBuffer()));
      const find = (n) => Object.entries(entries).find(([k]) => k.split('/').pop() === n)?.[1];
      config = find('adapter_config.json');
      weights = find('adapter_model.safetensors');
    } else {
      config = await list.find((f) => f.name === 'adapter_config.json')?.arrayBuffer();
      weights = await list.find((f) => f.name === 'adapter_model.safetensors')?.arrayBuffer();
    }
    if (!config || !weights) {
      throw { message: 'an adapter is two files, adapter_config.json and adapter_model.safetensors (or a .zip holding both): choose both' };
    }
    const n = await client.request('import', { config, weights, settings: trainSettings(state) });
    state.virtualTokens = n;
    $('s-virtualTokens').value = n;
    saveUrl();
    ui.chart.clear();
    await compare();
  } catch (e) {
    showError($('shelf-error'), e);
  }
}

function wire() {
  $('task-select').addEventListener('change', (e) => selectTask(e.target.value));
  $('custom-text').value = state.custom;
  $('custom-text').addEventListener('input', (e) => {
    state.custom = e.target.value;
    saveUrl();
  });
  $('custom-apply').addEventListener('click', () => selectTask(CUSTOM_TASK));
  $('custom-file').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    state.custom = await f.text();
    $('custom-text').value = state.custom;
    saveUrl();
    selectTask(CUSTOM_TASK);
  });
  $('play').addEventListener('click', async () => {
    showError($('train-error'), null);
    if (training) {
      await client.request('pause');
      setBusy(false);
      return;
    }
    if (steps >= state.steps) await resetPrompt();
    setBusy(true);
    await client.request('play', { settings: trainSettings(state) });
  });
  $('step').addEventListener('click', async () => {
    showError($('train-error'), null);
    try {
      await client.request('step', { settings: trainSettings(state) });
    } catch (e) {
      showError($('train-error'), e);
    }
  });
  $('reset').addEventListener('click', resetPrompt);
  $('evaluate').addEventListener('click', compare);
  $('try-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      $('try-output').textContent = await client.request('generate', { text: $('try-input').value });
    } catch (err) {
      $('try-output').textContent = err.message;
    }
  });
  let tokenizing = null;
  $('try-input').addEventListener('input', () => {
    clearTimeout(tokenizing);
    tokenizing = setTimeout(showTokens, 150);
  });
  $('export').addEventListener('click', async () => {
    const f = await shelve();
    download(`soft-prompt-${task.name}.zip`, zipSync({ 'adapter_config.json': f.config, 'adapter_model.safetensors': f.weights }), 'application/zip');
  });
  $('export-files').addEventListener('click', async () => {
    const f = await shelve();
    download('adapter_config.json', f.config, 'application/json');
    download('adapter_model.safetensors', f.weights, 'application/octet-stream');
  });
  $('import-files').addEventListener('change', (e) => importAdapter(e.target.files));
  $('copy-embed').addEventListener('click', copyEmbed);
  $('backend-select').value = state.backend;
  $('backend-select').addEventListener('change', async (e) => {
    state.backend = e.target.value;
    saveUrl();
    $('backend-note').hidden = true;
    await start(chosenBackend());
  });
  $('model-url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    inspect({ kind: 'url', base: $('model-url').value });
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
  $('model-load').addEventListener('click', async () => {
    $('model-check').hidden = true;
    if (pendingModel.kind === 'url') {
      state.model = pendingModel.base;
      saveUrl();
    }
    await loadModel(pendingModel);
  });
  $('model-bundled').addEventListener('click', async () => {
    state.model = '';
    saveUrl();
    await loadModel({ kind: 'url', base: BUNDLED });
  });
}

function chosenBackend() {
  if (state.backend !== 'auto') return state.backend;
  return navigator.gpu ? 'webgpu' : 'cpu';
}

applyLayout();
panelToggles();
bindSettings();
wire();
await fillTaskList();
await start(chosenBackend());
