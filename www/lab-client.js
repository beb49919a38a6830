// The page's side of the worker protocol (protocol.js): requests as promises, events as callbacks.
// A fatal error (an engine crash or a lost GPU) ends the client once: every request waiting on it
// fails with that error (no page action waits forever), later ones fail at once, and `onFatal`
// hears of it one time; the page then starts a new client and replays its state into it.
//
// The same class drives a lab's helpers from inside the lab worker, over a `channel` that answers
// as a Worker does (./engine/helper-channel.js). The helpers' workers are the page's: it starts
// them when the lab asks (`spawn-helper`) and ends them with it.
import { EVENT, REQUEST } from './protocol.js';

const newWorker = () => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

export class LabClient {
  constructor({ onEvent, onFatal, channel = newWorker() }) {
    this.worker = channel;
    this.pending = new Map();
    this.nextId = 1;
    this.onFatal = onFatal;
    this.ended = null; // the error that ended this client
    /** The helper workers this page started for the lab, by the lab's number for each. */
    this.helpers = new Map();
    this.worker.onmessage = ({ data }) => {
      if (this.ended) return; // what a broken engine says after it ended is noise
      if (data.type === EVENT.ERROR && data.fatal) {
        this.end(data);
        return;
      }
      const waiting = data.id !== undefined && this.pending.get(data.id);
      if (waiting) {
        this.pending.delete(data.id);
        if (data.type === EVENT.ERROR) waiting.reject(data);
        else waiting.resolve(data.value);
      } else if (data.type === EVENT.SPAWN_HELPER) {
        this.spawnHelper(data.helper);
      } else if (data.type === EVENT.STOP_HELPER) {
        this.helpers.get(data.helper)?.terminate();
        this.helpers.delete(data.helper);
      } else {
        onEvent(data);
      }
    };
    // The worker script itself failed (it could not load, or an error escaped its handlers).
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.end({ kind: 'Panic', message: `the engine's worker failed (${e.message || 'it could not start'})`, fatal: true });
    };
  }

  request(type, payload = {}, transfer = []) {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  /** Starts the lab's helper `helper` and connects the two by a MessageChannel. */
  spawnHelper(helper) {
    let worker;
    try {
      worker = newWorker();
    } catch (e) {
      this.request(REQUEST.HELPER_FAILED, { helper, message: e.message || 'it could not start' }).catch(() => {});
      return;
    }
    this.helpers.set(helper, worker);
    const { port1, port2 } = new MessageChannel();
    worker.postMessage({ type: REQUEST.CONNECT }, [port1]);
    worker.onerror = (e) => {
      e.preventDefault();
      this.request(REQUEST.HELPER_FAILED, { helper, message: e.message || 'it could not start' }).catch(() => {});
    };
    this.request(REQUEST.HELPER_PORT, { helper }, [port2]).catch(() => {});
  }

  /** Fails every waiting request with `error`, once; `onFatal` hears of it unless the page ended it. */
  end(error, quiet = false) {
    if (this.ended) return;
    this.ended = error;
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
    if (!quiet) this.onFatal(error);
  }

  terminate() {
    this.end({ kind: 'Internal', message: 'the engine was restarted', fatal: false }, true);
    this.worker.terminate();
    for (const helper of this.helpers.values()) helper.terminate();
    this.helpers.clear();
  }
}
