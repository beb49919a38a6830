// A helper engine's channel, from the lab worker: the page starts the helper's worker and hands
// the lab its end of a MessageChannel (protocol.js `spawn-helper`, `helper-port`). In Firefox
// driven over WebDriver BiDi (the tests' puppeteer) a `new Worker` inside a worker hung now and
// then: the calling worker's thread stopped for good, about 1 model load in 20 in the page tests,
// within a few dozen starts in a loop. Never a `new Worker` on the page's thread, nor 400 starts
// in a worker of the same Firefox without automation. It answers as a Worker does (postMessage,
// onmessage, onerror, terminate), so ../lab-client.js drives it as one.
import { EVENT } from '../protocol.js';
import { post } from './state.js';

/** Channels waiting for or holding their port, by helper number. */
const channels = new Map();
let nextHelper = 1;

export class HelperChannel {
  constructor() {
    this.helper = nextHelper++;
    this.port = null;
    /** Messages posted before the port came, cloned as they were posted. */
    this.waiting = [];
    this.onmessage = null;
    this.onerror = null;
    /**
     * Settles once the port came, or the helper failed or was stopped. This thread hears the
     * page's `helper-port` only between tasks: a long synchronous call (a model's load, a
     * training step) started before it holds back everything posted to the helper until it ends.
     */
    this.connected = new Promise((resolve) => { this.settle = resolve; });
    channels.set(this.helper, this);
    post(EVENT.SPAWN_HELPER, { helper: this.helper });
  }

  /**
   * Cloned now, as a Worker's postMessage does: a model's bytes posted to a starting helper may
   * be freed (transfer(0)) once the lab has loaded them, before the port comes. What `transfer`
   * lists moves into the clone, and from it to the port (a clone keeps identities within it).
   */
  postMessage(message, transfer = []) {
    if (this.port) this.port.postMessage(message, transfer);
    else this.waiting.push(structuredClone({ message, transfer }, { transfer }));
  }

  terminate() {
    this.settle();
    channels.delete(this.helper);
    this.port?.close();
    post(EVENT.STOP_HELPER, { helper: this.helper });
  }
}

/** The page's `helper-port`: the channel's end for `helper` (closed if that helper was stopped). */
export function helperPort(helper, port) {
  const channel = channels.get(helper);
  if (!channel) {
    port.close();
    return;
  }
  channel.port = port;
  port.onmessage = (e) => channel.onmessage?.(e);
  for (const { message, transfer } of channel.waiting) port.postMessage(message, transfer);
  channel.waiting = [];
  channel.settle();
}

/** The page's `helper-failed`: the helper's worker failed, as a Worker's `error` event says. */
export function helperFailed(helper, message) {
  const channel = channels.get(helper);
  channel?.settle();
  channel?.onerror?.({ message, preventDefault() {} });
}
