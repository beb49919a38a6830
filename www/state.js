// The page's state, declared once: every field, its type and default, kept in the URL so a link
// (or a teacher's iframe) reproduces the same task, settings, seed and panels.

export const PANELS = ['training', 'embedding', 'outputs', 'shelf'];
export const INITS = ['class-labels', 'sample-vocab', 'random', 'text'];

const int = (min, max) => ({ parse: (s) => clampInt(s, min, max), show: String });
const float = (min, max) => ({ parse: (s) => clampFloat(s, min, max), show: String });
const oneOf = (values) => ({ parse: (s) => (values.includes(s) ? s : undefined), show: String });
const text = { parse: (s) => s, show: String };
const flag = { parse: (s) => s === '1' || s === 'true', show: (v) => (v ? '1' : '0') };
const list = (values) => ({
  parse: (s) => s.split(',').filter((v) => values.includes(v)),
  show: (v) => v.join(','),
});

function clampInt(s, min, max) {
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : undefined;
}
function clampFloat(s, min, max) {
  const n = Number.parseFloat(s);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : undefined;
}

/** name -> [URL key, codec, default] */
export const FIELDS = {
  task: ['task', text, 'antonyms'],
  custom: ['examples', text, ''],
  virtualTokens: ['vt', int(1, 32), 8],
  init: ['init', oneOf(INITS), 'class-labels'],
  initText: ['init_text', text, ''],
  lr: ['lr', float(1e-5, 1), 0.03],
  steps: ['steps', int(1, 10000), 200],
  batch: ['batch', int(1, 128), 16],
  seed: ['seed', int(0, 2 ** 31 - 1), 0],
  backend: ['backend', oneOf(['auto', 'webgpu', 'cpu']), 'auto'],
  model: ['model', text, ''],
  panels: ['panels', list(PANELS), PANELS],
  embed: ['embed', flag, false],
};

export const CUSTOM_TASK = 'custom';

export function defaults() {
  return Object.fromEntries(Object.entries(FIELDS).map(([k, [, , d]]) => [k, d]));
}

export function fromUrl(search) {
  const q = new URLSearchParams(search);
  const state = defaults();
  for (const [name, [key, codec]] of Object.entries(FIELDS)) {
    if (!q.has(key)) continue;
    const v = codec.parse(q.get(key));
    if (v !== undefined) state[name] = v;
  }
  return state;
}

/** Query string of the fields that differ from their defaults. */
export function toQuery(state) {
  const q = new URLSearchParams();
  for (const [name, [key, codec, d]] of Object.entries(FIELDS)) {
    const shown = codec.show(state[name]);
    if (shown !== codec.show(d)) q.set(key, shown);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The subset the engine needs (session::Settings). */
export function trainSettings(state) {
  const { virtualTokens, init, initText, lr, steps, batch, seed } = state;
  return { virtualTokens, init, initText, lr, steps, batch, seed };
}
