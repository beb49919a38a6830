// A response's body read into memory with progress: one buffer of the announced size (through a
// reused scratch buffer where the engine has BYOB readers), else chunks joined at the end; the
// response held while it is read. Used by model-files.js for downloads and cached copies alike.

/** A failed fetch, of the engine's error kind for files (src/error.rs ErrorKind::File). */
export function fileError(message) {
  const e = new Error(message);
  e.kind = 'File';
  return e;
}

function concat(chunks, length) {
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Responses whose bodies are being read. Chromium collects a Cache API response that nothing in
 * script still references while its body is read, and the pending read then never settles (the
 * restless-user page test hung on it: 3 runs in 11; a worker reading a cached file under forced
 * collections hangs on its first read): held here until read, they stay reachable.
 */
const beingRead = new Set();

/**
 * Reads `response`'s body into `sink`, reporting progress. With the size known, bytes go into one
 * buffer of that size (`fillBuffer`); otherwise they are kept as chunks, joined at the end.
 */
export function readBody(response, sink, onProgress) {
  return holding(response, () => readInto(response, sink, onProgress));
}

/** `read()`'s promise, with `response` held until it settles (see `beingRead`). */
export async function holding(response, read) {
  beingRead.add(response);
  try {
    return await read();
  } finally {
    beingRead.delete(response);
  }
}

async function readInto(response, sink, onProgress) {
  const started = performance.now();
  const base = sink.loaded;
  const progress = () => {
    const rate = (sink.loaded - base) / Math.max(1, performance.now() - started); // bytes per ms
    onProgress(sink.loaded, sink.total, sink.total ? (sink.total - sink.loaded) / rate / 1000 : undefined);
  };
  if (sink.buffer) {
    await fillBuffer(response, sink, progress);
    return;
  }
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    sink.chunks.push(value);
    sink.loaded += value.byteLength;
    progress();
  }
}

/**
 * A BYOB reader where the engine has one (Chromium, Firefox): the bytes come through one reused
 * 1 MB scratch buffer, so no chunk is allocated per read (a 270 MB model's chunks would otherwise
 * wait as garbage beside it). The scratch, not the whole buffer, is handed to the stream: a
 * dropped connection loses only it, and the download resumes. WebKit's fetch bodies are not byte
 * streams (getReader({mode: 'byob'}) throws a TypeError before reading anything): there the
 * default reader's chunks are copied into the same buffer.
 */
function byobReader(body) {
  try {
    return body.getReader({ mode: 'byob' });
  } catch {
    return null;
  }
}

async function fillBuffer(response, sink, progress) {
  const put = (value) => {
    if (sink.loaded + value.byteLength > sink.total) throw fileError(`${response.url} is longer than the ${sink.total} bytes its server announced`);
    sink.buffer.set(value, sink.loaded);
    sink.loaded += value.byteLength;
    progress();
  };
  const byob = byobReader(response.body);
  if (!byob) {
    const reader = response.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) put(r.value);
    return;
  }
  let scratch = new ArrayBuffer(2 ** 20);
  for (;;) {
    const { done, value } = await byob.read(new Uint8Array(scratch));
    if (done) break;
    scratch = value.buffer; // a BYOB read hands the buffer back, moved
    put(value);
  }
}

/** Where a body's bytes go: one buffer of the announced size, else chunks joined at the end. */
export function newSink(total) {
  return { loaded: 0, total, buffer: total ? new Uint8Array(total) : null, chunks: [] };
}

export const sinkBytes = (sink) => (sink.buffer ? sink.buffer.subarray(0, sink.loaded) : concat(sink.chunks, sink.loaded));
