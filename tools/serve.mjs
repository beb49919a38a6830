// Serves a folder on 127.0.0.1 with the page's headers (tools/headers.mjs: cross-origin isolation
// and the Content-Security-Policy) and the right MIME types.
// Usage: node tools/serve.mjs [folder=www] [port=8080]; port 0 picks a free one.
// Also imported by the browser tests (`serve(folder, port)` resolves to the server's URL).
import { createServer } from 'node:http';
import { createReadStream, promises as fs } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECURITY_HEADERS } from './headers.mjs';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.json': 'application/json', '.jsonl': 'application/jsonl',
  '.wasm': 'application/wasm', '.safetensors': 'application/octet-stream', '.md': 'text/markdown',
  '.png': 'image/png', '.svg': 'image/svg+xml',
};

export function serve(folder, port = 0) {
  const root = resolve(folder);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if ((await fs.stat(file)).isDirectory()) file = join(file, 'index.html');
      const { size, mtime } = await fs.stat(file);
      res.writeHead(200, {
        'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
        'Content-Length': size,
        'Last-Modified': mtime.toUTCString(),
        ...SECURITY_HEADERS,
        'Cache-Control': 'no-cache',
      });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
    }
  });
  return new Promise((ok) => {
    server.listen(port, '127.0.0.1', () => ok({ url: `http://127.0.0.1:${server.address().port}/`, server }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await serve(process.argv[2] ?? 'www', Number(process.argv[3] ?? process.env.PORT ?? 8080));
  console.log(`Soft Prompt Lab: ${url}  (Ctrl-C stops)`);
}
