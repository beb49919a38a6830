// Fetching a model's (and a built-in task's) files: byte progress, Cancel, a dropped connection
// resumed with Range requests, and a copy kept in the Cache API so a second visit (or a backend
// switch, which restarts the worker) loads from disk instead of the network. Also the first bytes
// of a weights file (its header) without the rest. The stored models' list: stored-models.js.

import { fileError, holding, newSink, readBody, sinkBytes } from './response-body.js';

const CACHE = 'soft-prompt-lab-files-v1';
/** Tries after a connection drops before a download gives up. */
const RESUME_TRIES = 5;
/** Above this many bytes the page asks the browser to keep its storage (`storage.persist()`). */
const PERSIST_ABOVE = 100e6;

/** `base` + name, accepting a folder URL with or without a trailing slash. */
export function fileUrl(base, name) {
  const b = String(base);
  return new URL(name, b.endsWith('/') ? b : `${b}/`);
}

export async function openCache() {
  // The Cache API needs a secure context (localhost counts); without it files are just fetched.
  try {
    return typeof caches === 'undefined' ? null : await caches.open(CACHE);
  } catch {
    return null;
  }
}

/**
 * Whether the file at `url` differs from the cached copy (a HEAD request compares validators), so
 * an updated model at the same address is fetched again. Offline, the cached copy is used.
 */
async function changed(url, cachedResponse) {
  try {
    const head = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    if (!head.ok) return false;
    return ['etag', 'last-modified', 'content-length'].some((h) => {
      const now = head.headers.get(h);
      return now !== null && now !== cachedResponse.headers.get(h);
    });
  } catch {
    return false;
  }
}

const mb = (n) => (n / 1e6).toFixed(1);
const fileName = (url) => String(url).split('/').pop();

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    if (init?.signal?.aborted) throw cancelled();
    throw fileError(`could not fetch ${url} (${e.message}): check the address and your connection (a server that does not send CORS headers is refused by the browser)`);
  }
  if (!response.ok) {
    const hint = response.status === 404 ? ': the file is not there' : '';
    throw fileError(`could not fetch ${url}: the server answered ${response.status} ${response.statusText}${hint}`);
  }
  return response;
}

function cancelled() {
  const e = new Error('the download was cancelled');
  e.kind = 'Cancelled';
  return e;
}

/** The file's whole size from a response: Content-Range's total for a 206, else Content-Length. */
function totalSize(response) {
  // A 206 whose Content-Range the server does not expose to scripts leaves the size unknown.
  if (response.status === 206) return Number(response.headers.get('content-range')?.split('/')[1]) || 0;
  return Number(response.headers.get('content-length')) || 0;
}

/**
 * A Range request to `url`. WebKit drops the Range header when it follows a redirect (the Hub's
 * resolve/ address answers 302 to its file store), and the whole file comes back: the range is
 * asked again of the address the redirect led to.
 */
async function rangeRequest(url, range, signal) {
  const init = { headers: { Range: range }, signal, cache: 'no-store' };
  const response = await request(url, init);
  if (response.status === 206 || !response.redirected) return response;
  response.body?.cancel().catch(() => {});
  return request(response.url, init);
}

/**
 * Bytes `start..end` (inclusive) of `url` and the file's size. A server that ignores Range sends
 * the whole file: it is read only as far as needed, then the rest is cancelled.
 */
export async function fetchRange(url, start, end) {
  const response = await rangeRequest(url, `bytes=${start}-${end}`);
  const size = totalSize(response);
  const skip = response.status === 206 ? 0 : start;
  const bytes = await holding(response, () => readRange(response.body.getReader(), skip, end - start + 1));
  if (bytes.length < end - start + 1) throw fileError(`${fileName(url)} ended after ${start + bytes.length} bytes, before byte ${end}: the file is truncated`);
  return { bytes, size };
}

/** `want` bytes of a body after its first `skip`; fewer where the body ends first. */
async function readRange(reader, skip, want) {
  const out = new Uint8Array(want);
  let got = 0;
  let seen = 0;
  while (got < want) {
    const { done, value } = await reader.read();
    if (done) break;
    const from = Math.max(0, skip - seen);
    const part = value.subarray(from, from + want - got);
    out.set(part, got);
    got += part.length;
    seen += value.byteLength;
  }
  reader.cancel().catch(() => {});
  return out.subarray(0, got);
}

/**
 * Downloads `url` whole. A connection that drops is resumed from the last byte with a Range
 * request (from the start, said in `notes`, where the server ignores Range); `signal` cancels.
 */
async function download(url, onProgress, signal, notes) {
  const sink = newSink(0);
  let response;
  for (let tries = 0; ; tries += 1) {
    response = sink.loaded
      ? await rangeRequest(url, `bytes=${sink.loaded}-`, signal)
      : await request(url, { signal, cache: 'no-store' });
    if (sink.loaded && response.status !== 206) {
      notes.push(`the server of ${fileName(url)} does not resume downloads (it ignored a Range request): it restarted from the start`);
      sink.chunks.length = 0;
      sink.loaded = 0;
    }
    sink.total = sink.total || totalSize(response);
    if (sink.total && !sink.buffer) sink.buffer = new Uint8Array(sink.total);
    try {
      await readBody(response, sink, onProgress);
      if (!sink.total || sink.loaded >= sink.total) break;
    } catch (e) {
      if (signal?.aborted) throw cancelled();
      if (e.kind === 'File') throw e; // not a dropped connection: trying again would not help
      if (tries + 1 >= RESUME_TRIES) {
        throw fileError(`the download of ${fileName(url)} broke off at ${mb(sink.loaded)} of ${mb(sink.total)} MB ${RESUME_TRIES} times (${e.message}): check your connection and load the model again`);
      }
    }
    if (signal?.aborted) throw cancelled();
  }
  return { bytes: sinkBytes(sink), response };
}

/**
 * `bytes` as a stream of 1 MB copies: a Response made from the bytes themselves would copy all of
 * them into a blob in this process before the cache takes them, and views of them would let the
 * browser's side keep the whole buffer alive after the engine has its copy (the worker frees ours
 * then: a 135M model's 270 MB file is not held twice).
 */
function chunked(bytes) {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, at + 2 ** 20));
      at += 2 ** 20;
    },
  });
}

/**
 * Keeps a downloaded file in the cache, when there is room: `storage.estimate()` first, and
 * `storage.persist()` asked for large files; a full store only costs the next visit a download.
 */
async function keep(cache, url, bytes, response, notes) {
  const storage = navigator.storage;
  const room = await storage?.estimate?.().then((e) => e.quota - e.usage).catch(() => Infinity) ?? Infinity;
  if (bytes.byteLength > room) {
    notes.push(`not kept for the next visit: ${mb(bytes.byteLength)} MB do not fit the ${mb(room)} MB of storage left (it runs without keeping a copy)`);
    return;
  }
  if (bytes.byteLength > PERSIST_ABOVE) await storage?.persist?.().catch(() => false);
  const headers = { 'content-length': String(bytes.byteLength) };
  for (const h of ['etag', 'last-modified', 'content-type']) {
    const v = response.headers.get(h);
    if (v !== null) headers[h] = v;
  }
  try {
    await cache.put(url, new Response(chunked(bytes), { headers }));
  } catch (e) {
    notes.push(`not kept for the next visit (${e.name === 'QuotaExceededError' ? 'storage is full' : e.message}): it runs without keeping a copy`);
  }
}

/**
 * The bytes of `url`, from the cache when present, reporting `onProgress(loaded, total, secondsLeft)`,
 * and `keep(notes)`: writes a downloaded file's copy for the next visit (null when the bytes came
 * from the cache, or there is none), leaving `bytes` as they are. Errors name the file and say
 * what to do; `notes` collects what the page should say (a restart from the start).
 */
export async function fetchFile(url, onProgress = () => {}, { signal, notes = [] } = {}) {
  const cache = await openCache();
  // Any cache: the offline service worker's copy of the bundled files (www/sw.js) counts too.
  let cachedResponse = cache ? await caches.match(url) : undefined;
  if (cachedResponse && (await changed(url, cachedResponse))) cachedResponse = undefined;
  if (cachedResponse) {
    // Read as a download is (not with arrayBuffer(), whose buffer the browser's side may keep).
    const sink = newSink(Number(cachedResponse.headers.get('content-length')) || 0);
    await readBody(cachedResponse, sink, onProgress);
    return { bytes: sinkBytes(sink), keep: null };
  }
  const { bytes, response } = await download(url, onProgress, signal, notes);
  return { bytes, keep: cache ? (into) => keep(cache, url, bytes, response, into) : null };
}

/** `fetchFile`'s bytes, the copy for the next visit kept first (its notes in `notes`: a copy not kept). */
export async function fetchBytes(url, onProgress = () => {}, options = {}) {
  const notes = options.notes ?? [];
  const { bytes, keep } = await fetchFile(url, onProgress, { ...options, notes });
  await keep?.(notes);
  return bytes;
}
