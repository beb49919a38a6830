// Makes a self-contained site for any static host from the built page (www/ after ./build.sh):
//   dist/index.html        the page, pointing at this build's folder; the security policy as a <meta>
//   dist/<version>/...     everything the page loads; <version> is a hash of the content, so a cache
//                          never mixes an old wasm with a new worker (a changed file is a new folder)
//   dist/sw.js             the offline service worker (www/sw.js) with this build's file list
//   dist/_headers          the headers tools/serve.mjs sends, for hosts that read this file
// and prints what a first visit downloads, gzip-compressed, per file and in total.
// Usage: node tools/dist.mjs [www] [dist]
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { CSP_META, SECURITY_HEADERS } from './headers.mjs';

/** A first visit (the precache: page, wasm, bundled model, tasks, chart library) stays under this. */
export const FIRST_VISIT_LIMIT = 10 * 1024 * 1024;
/** The bundled model's other sizes (the scale experiment's family): on the site, not precached. */
const ON_DEMAND = /^models\/wordnet-gpt-[a-z]+\//;
/** Files of www/ that dist/ rewrites instead of copying into the version folder. */
const SPECIAL = ['index.html', 'sw.js'];

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function filesUnder(root, dir = root) {
  const out = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(root, path)));
    else out.push(relative(root, path).split(sep).join('/'));
  }
  return out.sort();
}

/** index.html pointing at the version folder, with the policy and the build's version as <meta>s. */
function rewriteIndex(html, version) {
  let out = html;
  for (const [from, to] of [
    ['href="./style.css"', `href="./${version}/style.css"`],
    ['src="./app.js"', `src="./${version}/app.js"`],
    ['<meta charset="utf-8">', `<meta charset="utf-8">\n  <meta http-equiv="Content-Security-Policy" content="${CSP_META}">\n  <meta name="build" content="${version}">`],
  ]) {
    if (!out.includes(from)) throw new Error(`www/index.html no longer contains ${from}: update tools/dist.mjs`);
    out = out.replace(from, to);
  }
  return out;
}

function headersFile(version) {
  const lines = ['/*', ...Object.entries(SECURITY_HEADERS).map(([k, v]) => `  ${k}: ${v}`)];
  // The page and the service worker are checked on every visit; a version's files never change.
  for (const path of ['/', '/index.html', '/sw.js']) lines.push(path, '  Cache-Control: no-cache');
  lines.push(`/${version}/*`, '  Cache-Control: public, max-age=31536000, immutable');
  return `${lines.join('\n')}\n`;
}

const kib = (n) => `${(n / 1024).toFixed(0).padStart(6)} KiB`;

/** Builds `out` from `src`; returns {version, files: [{path, bytes, gzip}], total}. */
export async function makeDist(src, out) {
  if (!existsSync(join(src, 'pkg', 'soft_prompt_lab_bg.wasm'))) {
    throw new Error(`${src}/pkg is missing: build the page first (./build.sh builds it)`);
  }
  const names = await filesUnder(src);
  const contents = new Map();
  for (const name of names) contents.set(name, await fs.readFile(join(src, name)));
  const version = sha256(names.map((n) => `${n} ${sha256(contents.get(n))}\n`).join('')).slice(0, 12);

  await fs.rm(out, { recursive: true, force: true });
  const written = new Map();
  for (const name of names.filter((n) => !SPECIAL.includes(n))) {
    written.set(`${version}/${name}`, contents.get(name));
  }
  written.set('index.html', Buffer.from(rewriteIndex(contents.get('index.html').toString(), version)));
  const firstVisit = [...written].filter(([path]) => !ON_DEMAND.test(path.slice(version.length + 1)));
  const precache = firstVisit.map(([path, bytes]) => ({ path: path === 'index.html' ? './' : path, hash: sha256(bytes) }));
  const build = `// Written by tools/dist.mjs: this build's version and the files it precaches.\nconst BUILD = ${JSON.stringify({ version, files: precache })};\n\n`;
  written.set('sw.js', Buffer.concat([Buffer.from(build), contents.get('sw.js')]));
  written.set('_headers', Buffer.from(headersFile(version)));
  for (const [path, bytes] of written) {
    await fs.mkdir(dirname(join(out, path)), { recursive: true });
    await fs.writeFile(join(out, path), bytes);
  }

  const files = [...firstVisit, ['sw.js', written.get('sw.js')]]
    .map(([path, bytes]) => ({ path, bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length }))
    .sort((a, b) => b.gzip - a.gzip);
  const total = files.reduce((s, f) => s + f.gzip, 0);
  return { version, files, total };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [src = 'www', out = 'dist'] = process.argv.slice(2);
  const { version, files, total } = await makeDist(src, out);
  console.log(`${out}/: build ${version}; a first visit downloads (gzip, as a host compresses it):`);
  const small = files.filter((f) => f.gzip < 8192);
  for (const f of files.filter((g) => g.gzip >= 8192)) console.log(`  ${kib(f.gzip)}  (${kib(f.bytes)} raw)  ${f.path}`);
  const sum = (key) => small.reduce((s, f) => s + f[key], 0);
  console.log(`  ${kib(sum('gzip'))}  (${kib(sum('bytes'))} raw)  ${small.length} smaller files (scripts, styles, tasks, model card)`);
  console.log(`  ${kib(total)}  in all, limit ${kib(FIRST_VISIT_LIMIT)}`);
  if (total > FIRST_VISIT_LIMIT) {
    console.error(`a first visit is over ${FIRST_VISIT_LIMIT / 1024 / 1024} MB: shrink the largest files above`);
    process.exit(1);
  }
}
