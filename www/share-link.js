// A trained prompt in a link: its PEFT adapter's two files (the values in f16) zipped and written
// base64url in the URL's fragment, `#prompt=…`, beside the query that names the model, task and
// settings. The fragment never reaches a server. Opening the link imports the prompt as an adapter
// file would be (src/adapter.rs checks its model and shape).
import { unzipSync, zipSync } from './vendor/fflate.js';
import SETTINGS from './settings.js';

const FILES = SETTINGS.adapterFiles;
const KEY = 'prompt';
/**
 * Longer links than this may be cut by mail and chat apps (browsers take far longer ones): the
 * page says so. The bundled model's default prompt makes about 4 KB of fragment; a 135M model's
 * 8 × 576 one about 12 KB.
 */
export const LINK_WARN_BYTES = 16 * 1024;

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function fromBase64url(text) {
  const s = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * The fragment carrying adapter files `{config, weights}` (Uint8Arrays). The zip's dates are fixed,
 * so the same prompt always makes the same link.
 */
export function promptFragment({ config, weights }) {
  const zip = zipSync({ [FILES.config]: config, [FILES.weights]: weights }, { level: 9, mtime: new Date(1981, 0, 1) });
  return `#${KEY}=${base64url(zip)}`;
}

/** The adapter files in a URL fragment: null when it carries none; a clear error when damaged. */
export function promptFromFragment(hash) {
  const value = new URLSearchParams(hash.replace(/^#/, '')).get(KEY);
  if (value === null) return null;
  try {
    const entries = unzipSync(fromBase64url(value));
    const config = entries[FILES.config];
    const weights = entries[FILES.weights];
    if (config && weights) return { config, weights };
  } catch { /* named below */ }
  throw { message: 'the link is damaged (cut short when it was copied?): ask for it again, or train the prompt here' };
}
