// The page's side of the worker protocol (protocol.js): requests as promises, events as callbacks.
// A fatal error (a wasm panic or a lost GPU) is passed to `onFatal`; the page then starts a new
// client, on the CPU, and replays its state into it.

export class LabClient {
  constructor({ onEvent, onFatal }) {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.nextId = 1;
    this.worker.onmessage = ({ data }) => {
      const waiting = data.id !== undefined && this.pending.get(data.id);
      if (data.type === 'error' && data.fatal) onFatal(data);
      if (waiting) {
        this.pending.delete(data.id);
        if (data.type === 'error') waiting.reject(data);
        else waiting.resolve(data.value);
      } else {
        onEvent(data);
      }
    };
    this.worker.onerror = (e) => onFatal({ kind: 'Internal', message: e.message || 'the worker failed to start' });
  }

  request(type, payload = {}, transfer = []) {
    if (this.terminated) return Promise.reject({ kind: 'Internal', message: 'worker restarted' });
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  terminate() {
    this.terminated = true;
    this.worker.terminate();
    for (const { reject } of this.pending.values()) reject({ kind: 'Internal', message: 'worker restarted' });
    this.pending.clear();
  }
}
