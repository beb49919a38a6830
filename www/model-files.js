// Fetching a model's (and a built-in task's) files with byte progress, kept in the Cache API so a second visit (or a
// backend switch, which restarts the worker) loads from disk instead of the network.

const CACHE = 'soft-prompt-lab-files-v1';

/** `base` + name, accepting a folder URL with or without a trailing slash. */
export function fileUrl(base, name) {
  const b = String(base);
  return new URL(name, b.endsWith('/') ? b : `${b}/`);
}

async function openCache() {
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

/**
 * The bytes of `url`, from the cache when present, reporting `onProgress(loaded, total)`.
 * Errors name the file and say what to do.
 */
export async function fetchBytes(url, onProgress) {
  const cache = await openCache();
  // Any cache: the offline service worker's copy of the bundled files (www/sw.js) counts too.
  let response = cache ? await caches.match(url) : undefined;
  if (response && (await changed(url, response))) response = undefined;
  const cached = Boolean(response);
  if (!response) {
    try {
      response = await fetch(url);
    } catch (e) {
      throw new Error(`could not fetch ${url} (${e.message}): check the address and your connection`);
    }
    if (!response.ok) {
      throw new Error(`could not fetch ${url}: the server answered ${response.status} ${response.statusText}`);
    }
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.clone().body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  if (cache && !cached) {
    // A failed cache write (quota) only costs the next visit a download.
    await cache.put(url, response).catch(() => {});
  }
  return bytes;
}
