// The page's state, declared once: every field, its type and default, kept in the URL so a link
// (or a teacher's iframe) reproduces the same task, settings, seed and panels. The training
// settings' bounds and defaults come from the engine's table (settings.js, made from Rust).
import SETTINGS from './settings.js';
import { STEPS } from './components/tour.js';
import { isHubId } from './hub.js';

export const PANELS = ['training', 'embedding', 'outputs', 'shelf', 'experiments'];
export const EXPERIMENTS = SETTINGS.experiments.map((e) => e.name);
export const INITS = SETTINGS.inits.map((i) => i.name);
export const CUSTOM_TASK = 'custom';

const int = (min, max) => ({ parse: (s) => clampInt(s, min, max), show: String });
const float = (min, max) => ({ parse: (s) => clampFloat(s, min, max), show: String });
const oneOf = (values) => ({ parse: (s) => (values.includes(s) ? s : undefined), show: String });
const text = { parse: (s) => s, show: String };
const flag = { parse: (s) => s === '1' || s === 'true', show: (v) => (v ? '1' : '0') };
function httpUrl(s) {
  try {
    const u = new URL(s);
    return /^https?:$/.test(u.protocol) ? u : undefined;
  } catch {
    return undefined;
  }
}
/** An http(s) address (a model folder): anything else (javascript:, data:, garbage) is ignored. */
const webAddress = { parse: (s) => (httpUrl(s) ? s : undefined), show: String };
/** A model: a Hugging Face Hub id (owner/name) or a model folder's http(s) address. */
const modelRef = { parse: (s) => (isHubId(s) || httpUrl(s) ? s : undefined), show: String };
/** A web origin (scheme://host[:port]) exactly. */
const origin = { parse: (s) => (httpUrl(s)?.origin === s ? s : undefined), show: String };
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

/** The numeric training settings by name: {name, url, label, min, max, default, integer, help}. */
export const NUMBERS = Object.fromEntries(SETTINGS.numbers.map((s) => [s.name, s]));
const number = (name) => {
  const s = NUMBERS[name];
  return [s.url, s.integer ? int(s.min, s.max) : float(s.min, s.max), s.default];
};

/** name -> [URL key, codec, default] */
export const FIELDS = {
  task: ['task', text, 'antonyms'],
  custom: ['examples', text, ''],
  virtualTokens: number('virtualTokens'),
  init: ['init', oneOf(INITS), SETTINGS.initDefault],
  initText: ['init_text', text, ''],
  lr: number('lr'),
  steps: number('steps'),
  batch: number('batch'),
  seed: number('seed'),
  backend: ['backend', oneOf(['auto', 'webgpu', 'cpu']), 'auto'],
  workers: ['workers', int(0, 16), 0], // engines on the CPU path (worker.js poolSize); 0: as cores and memory allow
  model: ['model', modelRef, ''],
  hub: ['hub', webAddress, ''], // where Hub ids resolve (hub.js HUB when empty); the page tests' local Hub
  adapter: ['adapter', modelRef, ''], // a prompt-tuning adapter to show: a Hub id or a folder's address
  panels: ['panels', list(PANELS), PANELS],
  experiment: ['exp', oneOf(EXPERIMENTS), EXPERIMENTS[0]],
  expSource: ['exp_source', text, ''],
  // An experiment's size: steps per training (the training steps' bounds) and seeds per setting.
  expSteps: ['exp_steps', int(NUMBERS.steps.min, NUMBERS.steps.max), SETTINGS.experimentSteps],
  expSeeds: ['exp_seeds', int(1, SETTINGS.experimentSeedsMax), SETTINGS.experimentSeeds],
  tour: ['tour', int(0, STEPS.length), 0], // the guided tour's step; 0: closed
  embed: ['embed', flag, false],
  host: ['host', origin, ''], // the embedding page's origin, for the postMessage API (host-link.js)
};

/** The fields the engine reads as its settings (src/settings.rs `Settings`). */
export const TRAIN_FIELDS = SETTINGS.trainFields;

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

/**
 * The fields a query string gives (its key present, whatever the value), by name: what a link
 * chose, which wins over what the page would pick (a run's or an experiment's size).
 */
export function givenFields(search) {
  const q = new URLSearchParams(search);
  return new Set(Object.keys(FIELDS).filter((name) => q.has(FIELDS[name][0])));
}

/** A value typed into a field, parsed and clamped as the URL's value would be (undefined: invalid). */
export function parseField(name, value) {
  return FIELDS[name][1].parse(value);
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

/** This page's address with `state` in its query (a link to share, an iframe's source). */
export const linkTo = (state) => `${location.origin}${location.pathname}${toQuery(state)}`;

/** The subset the engine needs (session::Settings). */
export function trainSettings(state) {
  return Object.fromEntries(TRAIN_FIELDS.map((k) => [k, state[k]]));
}
