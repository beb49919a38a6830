// Static sites for the page tests that need a plain host: `python3 -m http.server` on a directory
// (it sets none of the page's headers, as GitHub Pages sets none), free ports, and a course page
// that embeds the lab from another origin (examples/embed/host.html).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

const servers = [];

export function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** `python3 -m http.server` on `dir`; resolves to {url, port, stop, paths} once it answers (paths: GETs served). */
export async function plainServer(dir, port) {
  const p = port ?? (await freePort());
  const child = spawn('python3', ['-m', 'http.server', String(p), '--bind', '127.0.0.1', '--directory', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  servers.push(child);
  const paths = [];
  child.stderr.on('data', (d) => paths.push(...[...String(d).matchAll(/"GET (\S+)/g)].map((m) => m[1])));
  const url = `http://127.0.0.1:${p}/`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      return { url, port: p, paths, stop: () => new Promise((ok) => { child.once('exit', ok); child.kill(); }) };
    } catch {
      await new Promise((ok) => { setTimeout(ok, 100); });
    }
  }
  throw new Error(`python3 -m http.server did not start on ${p}`);
}

/** Stops every server `plainServer` started. */
export function stopServers() {
  for (const s of servers.splice(0)) s.kill();
}

/** examples/embed/host.html with the lab at `lab` and the host's origin `host`, written under `dir`. */
export function hostPage(dir, lab, host) {
  mkdirSync(dir, { recursive: true });
  const html = readFileSync(join(ROOT, 'examples', 'embed', 'host.html'), 'utf8')
    .replace('https://YOUR-SITE.example/soft-prompt-lab/', lab)
    .replace('https://YOUR-COURSE.example', host);
  writeFileSync(join(dir, 'index.html'), html);
}
