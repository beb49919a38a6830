// The models kept in the Cache API by model-files.js: whether a folder is there, the list the
// model panel shows with sizes, and removing one.
import { fileUrl, openCache } from './model-files.js';

/** Whether every file of the model folder `base` is in the cache (a load then downloads nothing). */
export async function isStored(base, names) {
  const cache = await openCache();
  if (!cache) return false;
  const found = await Promise.all(names.map((n) => cache.match(fileUrl(base, n).href)));
  return found.every(Boolean);
}

/** The model folders in the cache (those holding a weights file) with their sizes: [{base, bytes}]. */
export async function storedModels() {
  const cache = await openCache();
  if (!cache) return [];
  const sizes = new Map();
  const models = new Set();
  for (const req of await cache.keys()) {
    const base = req.url.slice(0, req.url.lastIndexOf('/') + 1);
    if (req.url.endsWith('/model.safetensors')) models.add(base);
    const res = await cache.match(req);
    sizes.set(base, (sizes.get(base) ?? 0) + (Number(res?.headers.get('content-length')) || 0));
  }
  return [...models].map((base) => ({ base, bytes: sizes.get(base) })).sort((a, b) => b.bytes - a.bytes);
}

/** Removes every cached file of the folder `base`. */
export async function removeStored(base) {
  const cache = await openCache();
  if (!cache) return;
  for (const req of await cache.keys()) {
    if (req.url.startsWith(base)) await cache.delete(req);
  }
}
