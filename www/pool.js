// Helper engines for the CPU path, run by the lab worker: each is another worker.js with its own
// copy of the frozen model, taking a part of every training step's batch (src/pool.rs). No shared
// memory and no cross-origin isolation: parts and gradients travel as messages. Helpers join when
// their model has loaded (training starts without them) and leave when they die; the engine
// computes a dead helper's part itself. Held-out evaluations split the same way, by example.
// During an experiment each helper runs whole trainings (jobs) instead, one at a time, handed
// back to the engine if the helper dies; a helper with no job to take shares the engine's own
// training steps (parts go to free helpers only).
import { LabClient } from './lab-client.js';
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
  }

  /**
   * Starts `count` helpers on the model `source` (the Cache API makes their fetch local): resolves
   * once each has joined or failed.
   */
  start(count, source) {
    return this.load(this.open(count), source);
  }

  /**
   * Starts `count` helpers without a model: their wasm compiles while the lab engine loads, and
   * `load` gives them one. Each is sent INIT now.
   */
  open(count) {
    return Array.from({ length: count }, () => {
      const client = new LabClient({ onEvent: (msg) => this.heard(client, msg), onFatal: () => this.drop(client, true) });
      this.all.add(client);
      return { client, init: client.request(REQUEST.INIT, { backend: 'cpu', helper: true }) };
    });
  }

  /**
   * Sends each opened helper LOAD_MODEL of `source` before returning (a `files` source's bytes
   * are copied into each message as it is posted); resolves once each has joined or failed.
   */
  load(opened, source) {
    return Promise.all(opened.map(({ client, init }) => this.join(client, init, client.request(REQUEST.LOAD_MODEL, { source }))));
  }

  async join(client, init, loaded) {
    try {
      // Both at once: a helper stopped while it starts fails both, and neither may go unhandled.
      await Promise.all([init, loaded]);
      if (!this.all.has(client)) return; // stopped while it loaded
      this.ready.push(client);
      this.onChange();
    } catch {
      this.drop(client, true);
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

  stop() {
    for (const client of [...this.all]) this.drop(client);
  }
}
