// The lab engine's helpers on the CPU path: how many engines train together and why (said on
// the page), and the pool (../pool.js) started for the model just loaded.
import { EVENT } from '../protocol.js';
import { Pool } from '../pool.js';
import { engine, enqueue, post } from './state.js';

const POOL_MAX = 2;
const engines = (n) => (n === 1 ? 'one engine' : `${n} engines`);

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
  const memory = ((self.navigator.deviceMemory || 4) * 2 ** 30) / 2;
  const fit = Math.max(1, 1 + Math.floor((memory - engineBytes) / helperBytes));
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
 * `estimate(engines)` is the engine's `inspect` for that many.
 */
export function costWithPool(estimate) {
  if (engine.backend !== 'cpu') return { ...estimate(1), pool: { size: 1, why: '' } };
  const asIfMost = estimate(POOL_MAX).memory;
  const pool = poolSize(asIfMost.engine, asIfMost.helper);
  return { ...estimate(pool.size), pool };
}

/** The pool's size and why: what the page says of it. */
let poolPlan = { wanted: 1, why: '' };

/** The engines training together and each helper's memory (this engine's comes with each step). */
function postPool() {
  const { pool } = engine;
  post(EVENT.POOL, { workers: (pool?.ready.length ?? 0) + 1, ...poolPlan, failed: pool?.failed ?? 0, helperBytes: pool?.memory() ?? [] });
}

/** Stops the helpers of the model loaded before. */
export function stopPool() {
  const old = engine.pool;
  engine.pool = null;
  old?.stop();
}

/** Helpers for the model just loaded, on the CPU path; they join as they finish loading. */
export function startPool(source) {
  stopPool();
  const { size, why } = engine.backend === 'cpu' ? poolSize(engine.memory.buffer.byteLength) : { size: 1, why: '' };
  poolPlan = { wanted: size, why };
  postPool();
  if (size < 2) return;
  const current = new Pool(() => {
    if (engine.pool === current) postPool();
  });
  engine.pool = current;
  // The engine asks the pool how many helpers are free at each step (none until one joins).
  enqueue(() => engine.lab.setHelpers(current.compute, current.evaluate, current.idleCount)).catch(() => {});
  current.start(size - 1, source);
}
