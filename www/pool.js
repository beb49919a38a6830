// Helper engines for the CPU path, run by the lab worker: each is another worker.js (started by
// the page, ./engine/helper-channel.js) with its own copy of the frozen model, taking a part of
// every training step's batch (src/pool.rs). No shared memory and no cross-origin isolation:
// parts and gradients travel as messages. Helpers join when their model has loaded (training
// starts without them) and leave when they die; the engine computes a dead helper's part itself.
// Held-out evaluations split the same way, by example. During an experiment each helper runs
// whole trainings (jobs) instead, one at a time, handed back to the engine if the helper dies; a
// helper with no job to take shares the engine's own training steps (parts go to free helpers
// only).
import { LabClient } from './lab-client.js';
import { HelperChannel } from './engine/helper-channel.js';
import { EVENT, REQUEST } from './protocol.js';

export class Pool {
  /**
   * `onChange()`: a helper joined or left, or its memory grew (`ready` and `memory()` say how
   * things stand).
   */
  constructor(onChange) {
    this.onChange = onChange;
    this.ready = [];
    /** Each helper's wasm memory in bytes, as it last reported. */
    this.bytes = new Map();
    this.all = new Set();
    /** Helpers running a job now. */
    this.busy = new Set();
    /** Helpers that failed (crashed, or could not load): the page says so. */
    this.failed = 0;
    /** Bumped by each `retire`: a load sent before it joins no one. */
    this.generation = 0;
  }

  /**
   * Starts `count` helpers without a model: their wasm compiles while the lab engine loads, and
   * `load` gives them one. Each is sent INIT now; `connected` settles once the page has started
   * its worker (./engine/helper-channel.js).
   */
  open(count) {
    return Array.from({ length: count }, () => {
      const channel = new HelperChannel();
      const client = new LabClient({ onEvent: (msg) => this.heard(client, msg), onFatal: () => this.drop(client, true), channel });
      this.all.add(client);
      return { client, init: client.request(REQUEST.INIT, { backend: 'cpu', helper: true }), connected: channel.connected };
    });
  }

  /**
   * Sends each opened helper LOAD_MODEL of `source` before returning (a `files` source's bytes
   * copied for each, `handedOver`); resolves once each has joined or failed.
   */
  load(opened, source) {
    const { generation } = this;
    return Promise.all(opened.map(({ client, init }) => {
      const { own, transfer } = handedOver(source);
      return this.join(client, init, client.request(REQUEST.LOAD_MODEL, { source: own }, transfer), generation);
    }));
  }

  async join(client, init, loaded, generation) {
    try {
      // Both at once: a helper stopped while it starts fails both, and neither may go unhandled.
      await Promise.all([init, loaded]);
      // Stopped while it loaded, or retired: its model is not the engine's now.
      if (!this.all.has(client) || generation !== this.generation || this.ready.includes(client)) return;
      this.ready.push(client);
      this.onChange();
    } catch {
      // A retired load's failure is the next one's to find (a crashed helper fails it at once).
      if (generation === this.generation) this.drop(client, true);
    }
  }

  /** A helper's events: its memory (reported before its answer to the model load, and as it grows). */
  heard(client, msg) {
    if (msg.type !== EVENT.MEMORY) return;
    this.bytes.set(client, msg.wasmBytes);
    if (this.ready.includes(client)) this.onChange();
  }

  /** The wasm memory of each helper taking parts, in bytes. */
  memory() {
    return this.ready.map((h) => this.bytes.get(h));
  }

  /** A helper that `failed`, or one the page stops: it takes no more parts. */
  drop(client, failed = false) {
    if (!this.all.delete(client)) return;
    if (failed) this.failed += 1;
    this.bytes.delete(client);
    client.terminate();
    const i = this.ready.indexOf(client);
    if (i >= 0) {
      this.ready.splice(i, 1);
      this.onChange();
    }
  }

  /**
   * Sends part i to helper i as a `type` request with `fields(part)`: resolves with each answer,
   * or null for a part whose helper failed (dropped; the engine computes that part).
   */
  send(type, parts, fields) {
    const helpers = this.idle().slice(0, parts.length);
    return Promise.all(parts.map((part, i) => {
      const helper = helpers[i];
      if (!helper) return null;
      return helper.request(type, fields(part)).catch(() => {
        this.drop(helper, true);
        return null;
      });
    }));
  }

  /** The engine's `Helpers::compute`: a training step's batch parts (rows of token ids). */
  compute = (prompt, shape, partsJson) => this.send(REQUEST.PART, JSON.parse(partsJson),
    (rows) => ({ prompt, shape, rows: JSON.stringify(rows) }));

  /** The engine's `Helpers::evaluate`: parts of the held-out examples, each one's answer back. */
  evaluate = (prompt, nVirtual, kind, partsJson) => this.send(REQUEST.EVAL_PART, JSON.parse(partsJson),
    (examples) => ({ prompt, nVirtual, kind, examples: JSON.stringify(examples) }));

  /** The engine's count of helpers to share a step with: those free now. */
  idleCount = () => this.idle().length;

  /** Helpers free to take a job or a part (not on a job). */
  idle() {
    return this.ready.filter((h) => !this.busy.has(h));
  }

  /**
   * Runs `job` on `task` on an idle helper (scale's: on a member of `family`, which it loads):
   * resolves with its result, `{cancelled: true}`, or null when the helper failed (dropped: the
   * engine runs the job again).
   */
  async runJob(helper, task, job, family) {
    this.busy.add(helper);
    try {
      return await helper.request(REQUEST.JOB, { task, job, family });
    } catch (e) {
      // A helper that crashed is gone; one whose run failed (its error) stays in the pool.
      if (e?.fatal) this.drop(helper, true);
      return null;
    } finally {
      this.busy.delete(helper);
    }
  }

  /** Stops every job in progress after its current step (a pause, or another experiment). */
  cancelJobs() {
    for (const helper of this.busy) helper.request(REQUEST.CANCEL_JOB).catch(() => {});
  }

  /** Ends one helper abruptly, as a crash would (tests, and trying the fault path by hand). */
  kill() {
    const helper = this.ready.at(-1);
    if (!helper) return;
    helper.worker.terminate();
    helper.end({ kind: 'Panic', message: 'a helper engine stopped', fatal: true });
  }

  /**
   * The engine loaded another model: no helper takes a part until `start` gave it that model.
   * A load or a job in progress is cut short; the helpers stay, their wasm compiled.
   */
  retire() {
    this.generation += 1;
    this.cancelJobs();
    for (const client of this.all) client.request(REQUEST.CANCEL_LOAD).catch(() => {});
    this.ready = [];
    this.onChange();
  }

  /**
   * `count` helpers on the model `source` (the Cache API makes their fetch local): the pool's
   * own (retired) load it, more are started if too few, the extra ones stopped: after a model
   * switch the helpers' wasm is compiled already (1.4-2.7 s of a helper's start in Firefox).
   * Resolves once each has joined or failed.
   */
  start(count, source) {
    const kept = [...this.all].slice(0, count);
    for (const client of [...this.all].slice(count)) this.drop(client);
    const opened = kept.map((client) => ({ client, init: null }));
    return this.load([...opened, ...this.open(count - kept.length)], source);
  }

  stop() {
    for (const client of [...this.all]) this.drop(client);
  }
}

/**
 * `source` as a helper is handed it: a `files` source's bytes (ArrayBuffers or views of them)
 * copied here into buffers of their own, moved (transferred) to the helper. Cloned by
 * postMessage instead, SmolLM2-135M's 269 MB took 1.3 s to post and 3.3 s more to reach the
 * helper over the page's MessageChannel, beside the lab's own load.
 */
function handedOver(source) {
  if (source.kind !== 'files') return { own: source, transfer: [] };
  const copy = (bytes) => (ArrayBuffer.isView(bytes) ? bytes.slice().buffer : bytes.slice(0));
  const own = { ...source, config: copy(source.config), weights: copy(source.weights), tokenizer: copy(source.tokenizer) };
  return { own, transfer: [own.config, own.weights, own.tokenizer] };
}
