// A large model's copy for the next visit, written to the Cache API once the engine is idle (the
// run that follows the load has ended, or none started). On this 2-core machine the browser's
// write of a 269 MB file took 2.3-2.5 s (a profile on disk, the machine quiet): written before
// the engine's load it delayed "ready" by as much, and beside the load it competes with it for
// the cores. Until then this worker holds the file's bytes, which the page's memory estimate
// counts (./lab-pool.js `costWithPool`); a second model loaded meanwhile adds its own. A worker
// stopped first (a backend switch, a closed tab) keeps no copy: the next visit downloads again.
import { EVENT } from '../protocol.js';
import { post } from './state.js';

/** Idle this long (no request, no run) before writing: a run follows a load within ~1 s. */
const IDLE_MS = 2000;
/** Writes waiting for an idle engine: `{keeps, files}`. */
let waiting = [];
let timer = null;

/** Writes `keeps` (model-files.js `keep`) when the engine is idle, then frees `files`' bytes. */
export function keepWhenIdle(keeps, files) {
  if (keeps.length > 0) waiting.push({ keeps, files });
}

/** The engine's work changed: the writes wait until it has been idle for `IDLE_MS`. */
export function engineActivity(busy) {
  clearTimeout(timer);
  if (!busy && waiting.length > 0) timer = setTimeout(writeAll, IDLE_MS);
}

async function writeAll() {
  const writes = waiting;
  waiting = [];
  const notes = [];
  for (const { keeps, files } of writes) {
    for (const keep of keeps) await keep(notes);
    for (const f of files) f.buffer.transfer?.(0);
  }
  post(EVENT.CACHE_WRITTEN, { notes });
}
