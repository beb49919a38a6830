// What the engine worker's roles share (worker.js, ./lab-pool.js, ./experiment.js, ./helper.js):
// the wasm engine, its loops' flags, the lab's helper pool, one queue into the engine, and the
// way out to whoever started this worker.

export const engine = {
  /** The wasm `Lab` (src/web/), once INIT made it. */
  lab: null,
  /** The backend INIT started: 'cpu' or 'webgpu'. */
  backend: null,
  /** The wasm instance's linear memory: its size is reported with each step. */
  memory: null,
  /** The training loop is running (a pause stops it after the step in progress). */
  playing: false,
  /** An experiment is running (its steps loop like training's; a pause cancels it). */
  experimenting: false,
  /** Helper engines sharing the training steps on the CPU path (pool.js); none in a helper. */
  pool: null,
  /** Engines the page asked for (0: as many as cores and memory allow); a helper's own is 1. */
  workers: 1,
  /** Where answers and events go: the page, or a helper's port to its lab (`connect`). */
  out: self,
};

export const post = (type, value = {}) => engine.out.postMessage({ type, ...value });

/** One engine call of protocol.js' CALL table: `call(CALL.SET_STEPS, {steps})`. */
export const call = (op, fields = {}) => engine.lab.handle({ op, ...fields });

/** Stops the training and the experiment loops after the step in progress. */
export function stopLoops() {
  engine.playing = false;
  engine.experimenting = false;
}

// One call into the wasm engine at a time: requests and training steps queue here.
let queue = Promise.resolve();

export function enqueue(fn) {
  const run = queue.then(fn);
  queue = run.catch(() => {});
  return run;
}
