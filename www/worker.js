// The lab worker: all model work happens here (the page only draws). Messages: see protocol.js.
import init, { Lab, inspectConfig } from './pkg/soft_prompt_lab.js';
import { fetchBytes, fileUrl } from './model-files.js';
import { MODEL_FILES } from './protocol.js';

/** Steps between prompt snapshots (cheap) and between held-out evaluations (a few forward passes). */
const PROMPT_EVERY = 5;
const EVAL_EVERY = 25;

let lab = null;
let playing = false;
let settings = null;
let lastStepAt = 0;
// No-prompt and text-prompt results depend on the model and task only: computed once per task.
let baselines = null;
// One call into the wasm session at a time: requests and training ticks queue here.
let queue = Promise.resolve();
const ready = init();

const post = (type, value = {}) => self.postMessage({ type, ...value });

function errorFields(e) {
  if (e && typeof e === 'object' && 'kind' in e && 'message' in e) {
    return { kind: e.kind, message: e.message, line: e.line, fatal: e.kind === 'Device' && /lost/.test(e.message) };
  }
  // A JavaScript error or a wasm panic: the instance may be broken, so the page restarts us.
  const message = e instanceof Error ? e.message : String(e);
  return { kind: 'Internal', message, fatal: e instanceof WebAssembly.RuntimeError };
}

async function modelFiles(source) {
  if (source.kind === 'files') {
    return [source.config, source.weights, source.tokenizer].map((b) => new Uint8Array(b));
  }
  const out = [];
  for (const name of MODEL_FILES) {
    out.push(await fetchBytes(fileUrl(source.base, name), (loaded, total) =>
      post('load-progress', { file: name, loaded, total })));
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

async function evaluateAll() {
  baselines ??= { noPrompt: await lab.evaluate('no-prompt'), textPrompt: await lab.evaluate('text-prompt') };
  return { ...baselines, softPrompt: await lab.evaluate('soft-prompt') };
}

async function trainStep() {
  const started = performance.now();
  const stats = await lab.step();
  const msPerStep = performance.now() - started;
  post('step', { ...stats, msPerStep, target: settings.steps });
  if (stats.step % PROMPT_EVERY === 0 || stats.step >= settings.steps) {
    post('prompt', await lab.promptView());
  }
  if (stats.step % EVAL_EVERY === 0 || stats.step >= settings.steps) {
    const e = await lab.evaluate('soft-prompt');
    post('eval', { step: stats.step, accuracy: e.accuracy });
  }
  if (stats.step >= settings.steps) {
    playing = false;
    post('done', { step: stats.step, fingerprint: await lab.fingerprint() });
  }
  lastStepAt = stats.step;
}

function tick() {
  if (!playing) return;
  enqueue(trainStep).catch((e) => {
    playing = false;
    post('error', errorFields(e));
  }).then(() => {
    // setTimeout yields to the message loop, so a pause or a request gets in between steps.
    if (playing) setTimeout(tick, 0);
  });
}

function enqueue(fn) {
  const run = queue.then(fn);
  queue = run.catch(() => {});
  return run;
}

const handlers = {
  async init({ backend }) {
    await ready;
    if (backend === 'webgpu') {
      if (!self.navigator.gpu) throw { kind: 'Device', message: 'this browser has no WebGPU (navigator.gpu is missing); using the CPU backend' };
      const adapter = await self.navigator.gpu.requestAdapter();
      if (!adapter) throw { kind: 'Device', message: 'WebGPU gave no adapter (no usable GPU); using the CPU backend' };
      const i = adapter.info || {};
      lab = await Lab.webgpu();
      return { backend: 'webgpu', adapter: [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unnamed adapter' };
    }
    lab = Lab.cpu();
    return { backend: 'cpu', adapter: 'WebAssembly SIMD' };
  },
  async inspect({ source }) {
    await ready;
    const { config, weightsSize } = await configBytes(source);
    return inspectConfig(config, weightsSize);
  },
  async 'load-model'({ source }) {
    const [config, weights, tokenizer] = await modelFiles(source);
    const loaded = await lab.load(config, weights, tokenizer);
    baselines = null;
    post('ready', loaded);
    return loaded;
  },
  async 'set-task'({ builtin, base, custom }) {
    playing = false;
    baselines = null;
    if (custom) return lab.setCustomTask(custom.name, custom.text);
    const folder = fileUrl(base, builtin);
    const spec = await fetchBytes(fileUrl(folder, 'task.json'), () => {});
    const parsed = JSON.parse(new TextDecoder().decode(spec));
    const text = async (name) => new TextDecoder().decode(await fetchBytes(fileUrl(folder, name), () => {}));
    return lab.setBuiltinTask(spec, await text(parsed.train), await text(parsed.test));
  },
  async reset({ settings: s }) {
    playing = false;
    settings = s;
    await lab.reset(s);
    lastStepAt = 0;
    return lab.promptView();
  },
  async step({ settings: s }) {
    settings = { ...s, steps: Math.max(s.steps, lastStepAt + 1) };
    await trainStep();
  },
  async evaluate() {
    return evaluateAll();
  },
  async tokenize({ text }) {
    return lab.tokenize(text);
  },
  async generate({ text }) {
    return lab.generate(text, 16);
  },
  async export({ baseModel }) {
    return lab.exportAdapter(baseModel);
  },
  async import({ config, weights, settings: s }) {
    playing = false;
    settings = s;
    const n = await lab.importAdapter(new Uint8Array(config), new Uint8Array(weights), s);
    lastStepAt = 0;
    post('prompt', await lab.promptView());
    return n;
  },
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  // Play and pause only flip the loop; they must not wait behind a queued step.
  if (type === 'pause') {
    playing = false;
    post('reply', { id });
    return;
  }
  if (type === 'play') {
    settings = data.settings;
    if (!playing && lastStepAt < settings.steps) {
      playing = true;
      tick();
    }
    post('reply', { id });
    return;
  }
  const handler = handlers[type];
  if (!handler) {
    post('error', { id, kind: 'Internal', message: `unknown request ${type}`, fatal: false });
    return;
  }
  try {
    const value = await enqueue(() => handler(data));
    post('reply', { id, value });
  } catch (e) {
    post('error', { id, ...errorFields(e) });
  }
};
