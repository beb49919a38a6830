// The lab engine's helpers on the CPU path: how many engines train together and why (said on
// the page), and the pool (../pool.js) started for the model just loaded.
import { EVENT } from '../protocol.js';
import { headOf } from './files.js';
import { Pool } from '../pool.js';
import { engine, enqueue, post } from './state.js';

const POOL_MAX = 2;
/**
 * A checkpoint at least this large starts its helpers beside the lab engine's own load (if all
 * the engines fit in memory while they load at once): its load takes seconds, and on a real
 * SmolLM2-135M a helper started after it loaded in 20-33 s beside the first training steps (7.7 s
 * beside an idle engine), joining at step 5-8. The bundled model loads in 0.4 s: its helpers wait
 * for the prompt (worker.js `afterPrompt`), so as not to delay a shared link's accuracy.
 */
const HELPERS_WITH_LOAD_BYTES = 64e6;
/** The page starts a helper's worker in milliseconds; a busy page must not hold up the load. */
const CONNECT_WAIT_MS = 2000;
const engines = (n) => (n === 1 ? 'one engine' : `${n} engines`);
/** Half the memory the device reports (navigator.deviceMemory, GiB, capped at 8 by browsers). */
const memoryBudget = () => ((self.navigator.deviceMemory || 4) * 2 ** 30) / 2;

/**
 * How many engines may train, and why: the page's number, else one per core the browser reports
 * while the engines fit in half the memory the device reports (`engineBytes`: the lab engine's
 * memory; `helperBytes`: each helper's, which holds the weights and its share of a step but not
 * the prompt's views; measured when the prompt is ready, the lab's standing in for both), at most
 * `POOL_MAX` (WebKit reports 4 cores on a 2-core machine, where 4 engines made a run 1.7 times
 * slower than one). A pool measured by timing (commit 22a3ea3) hung the engine's queue in the
 * restless-user page test (seed 7), so none is measured.
 */
function poolSize(engineBytes, helperBytes = engineBytes) {
  if (engine.workers > 0) {
    const n = engine.workers;
    return { size: n, why: `${engines(n)}, as the link's workers=${n} asks` };
  }
  const cores = self.navigator.hardwareConcurrency || 1;
  const fit = Math.max(1, 1 + Math.floor((memoryBudget() - engineBytes) / helperBytes));
  const size = Math.min(cores, fit);
  if (size > 1) {
    const n = Math.min(size, POOL_MAX);
    return { size: n, why: `${engines(n)} (the browser reports ${cores} cores; at most ${POOL_MAX} start: WebKit reports 4 on 2-core machines)` };
  }
  const mb = (helperBytes / 1e6).toFixed(0);
  const why = cores < 2 ? 'one engine: the browser reports one core' : `one engine: a second (${mb} MB) would not fit in half the memory the browser reports`;
  return { size, why };
}

/**
 * A checkpoint's cost for the engines the page would start for it, and why that many:
 * `estimate(engines)` is the engine's `inspect` for that many. `pool.withLoad`: the helpers load
 * beside the lab engine (`HELPERS_WITH_LOAD_BYTES`), and the memory's high-water mark is theirs
 * or the run's beside the file.
 */
export function costWithPool(estimate) {
  if (engine.backend !== 'cpu') return { ...estimate(1), pool: { size: 1, why: '', withLoad: false } };
  const asIfMost = estimate(POOL_MAX);
  const pool = poolSize(asIfMost.memory.engine, asIfMost.memory.helper);
  const cost = pool.size === POOL_MAX ? asIfMost : estimate(pool.size);
  const m = cost.memory;
  // The lab then holds a downloaded file until the cache has its copy, after the run
  // (./cache-later.js).
  const peak = Math.max(m.together, m.withFile);
  const withLoad = pool.size > 1 && m.file >= HELPERS_WITH_LOAD_BYTES && peak <= memoryBudget();
  if (!withLoad) return { ...cost, pool: { ...pool, withLoad } };
  const why = `${pool.why}; they load beside it, so that training starts with them`;
  return { ...cost, memory: { ...m, total: Math.max(m.total, peak) }, pool: { ...pool, why, withLoad } };
}

/** The pool's size and why: what the page says of it. */
let poolPlan = { wanted: 1, why: '' };

/** The engines training together and each helper's memory (this engine's comes with each step). */
function postPool() {
  const { pool } = engine;
  post(EVENT.POOL, { workers: (pool?.ready.length ?? 0) + 1, ...poolPlan, failed: pool?.failed ?? 0, helperBytes: pool?.memory() ?? [] });
}

/** Stops the helpers of the model loaded before. */
function stopPool() {
  const old = engine.pool;
  engine.pool = null;
  old?.stop();
}

/** The engine loaded another model: its helpers take no part until `startPool` gave them it. */
export function retirePool() {
  engine.pool?.retire();
}

/** A pool that tells the page how it stands while it is the engine's. */
function newPool() {
  const pool = new Pool(() => {
    if (engine.pool === pool) postPool();
  });
  return pool;
}

/** Makes `pool` (or none) the lab engine's, in place of the one before. */
function usePool(pool, plan) {
  if (engine.pool !== pool) stopPool();
  poolPlan = { wanted: plan.size, why: plan.why };
  engine.pool = pool;
  postPool();
  // The engine asks the pool how many helpers are free at each step (none until one joins).
  if (pool) enqueue(() => engine.lab.setHelpers(pool.compute, pool.evaluate, pool.idleCount)).catch(() => {});
}

/**
 * Helpers for the model just loaded, on the CPU path (the model before's, retired, load it);
 * they join as they finish loading.
 */
export function startPool(source) {
  const plan = engine.backend === 'cpu' ? poolSize(engine.memory.buffer.byteLength) : { size: 1, why: '' };
  const pool = plan.size > 1 ? engine.pool ?? newPool() : null;
  pool?.start(plan.size - 1, source);
  usePool(pool, plan);
}

/**
 * A large model's helpers, loading `files` (the checkpoint of `source`, copied to each) beside
 * the lab engine's own load: null where its cost says they wait for the prompt (`withLoad`).
 * `adopt()`, once the lab's load succeeded, makes them the engine's; `stop()` ends them when it
 * failed. Handed the bytes only after the lab's load (2.3-4 s, the vocabulary map's 2.3 of them
 * the lab's alone), a helper joined 2.6 s after "ready", during the first step; fetching the
 * file itself, at step 2-5. The bytes go once the page has started their workers (at most
 * `CONNECT_WAIT_MS`): posted before, they waited for the lab's load to end (`HelperChannel`).
 */
export async function helpersWithLoad(files, batch, nVirtual) {
  const [config, weights, tokenizer] = files;
  // A small file's helpers wait for the prompt whatever its cost says: skip inspecting it.
  if (engine.backend !== 'cpu' || weights.byteLength < HELPERS_WITH_LOAD_BYTES) return null;
  let cost;
  try {
    cost = costWithPool((n) => engine.lab.inspect(config, headOf(weights), weights.byteLength, batch, nVirtual, n));
  } catch {
    return null; // a file the load itself will refuse, by name
  }
  if (!cost.pool.withLoad) return null;
  const pool = newPool();
  const opened = pool.open(cost.pool.size - 1);
  await Promise.race([Promise.all(opened.map((o) => o.connected)), new Promise((resolve) => { setTimeout(resolve, CONNECT_WAIT_MS); })]);
  pool.load(opened, { kind: 'files', config, weights, tokenizer });
  return { adopt: () => usePool(pool, cost.pool), stop: () => pool.stop() };
}
