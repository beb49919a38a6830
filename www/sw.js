// The offline service worker of a dist/ build (tools/dist.mjs prepends `BUILD`: the version and
// every file with its SHA-256). The page registers it only in a dist/ build (www/offline.js).
//
// Hand-written rather than Workbox: a build is one versioned folder plus index.html, so all this
// needs is to precache a list, serve it cache-first, and carry unchanged files (the 5 MB model)
// over from the previous version instead of downloading them again — no build plugin or runtime.
//
// install   precache every file of BUILD (verified against its hash); the new version then waits
// message   'skip-waiting' from the page (the user pressed Reload): take over
// activate  delete earlier versions' caches, control the open pages
// fetch     this build's files from the cache; the page for any navigation to the site's root;
//           nothing else
/* global BUILD */

const PREFIX = 'soft-prompt-lab-build-';
const CACHE = `${PREFIX}${BUILD.version}`;
const HASH = 'x-content-sha256';
const scope = self.registration.scope;
const scopePath = new URL(scope).pathname;
const urlOf = (path) => new URL(path, scope).href;
/** This build's files, by URL: the only requests answered from the cache. */
const BUILT = new Set(BUILD.files.map(({ path }) => urlOf(path)));

async function hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Files cached by earlier versions, by content hash. */
async function earlierFiles() {
  const byHash = new Map();
  for (const name of await caches.keys()) {
    if (!name.startsWith(PREFIX) || name === CACHE) continue;
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      const response = await cache.match(request);
      const hash = response?.headers.get(HASH);
      if (hash) byHash.set(hash, response);
    }
  }
  return byHash;
}

async function precache() {
  const cache = await caches.open(CACHE);
  const earlier = await earlierFiles();
  for (const { path, hash } of BUILD.files) {
    const url = urlOf(path);
    if (await cache.match(url)) continue;
    let response = earlier.get(hash);
    if (!response) {
      response = await fetch(url, { cache: 'no-cache' });
      if (!response.ok) throw new Error(`precaching ${url}: ${response.status}`);
    }
    const body = await response.arrayBuffer();
    // A host still deploying may serve another build's file: then install fails and is retried later.
    if ((await hex(body)) !== hash) throw new Error(`precaching ${url}: the content does not match this build`);
    const headers = new Headers(response.headers);
    headers.set(HASH, hash);
    await cache.put(url, new Response(body, { status: 200, statusText: 'OK', headers }));
  }
}

self.addEventListener('install', (event) => event.waitUntil(precache()));

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const path = new URL(request.url).pathname;
  const page = request.mode === 'navigate' && request.url.startsWith(scope)
    && (path === scopePath || path === `${scopePath}index.html`);
  // Anything not of this build (the scale family's models, a Hub's files, the browser's own
  // requests) is left to the network: offline, its failure is the page's to report, not this
  // worker's (Firefox reports every load a worker's respondWith failed as a page error).
  if (!page && !BUILT.has(request.url)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const hit = await cache.match(page ? urlOf('./') : request);
    return hit ?? fetch(request);
  })());
});
