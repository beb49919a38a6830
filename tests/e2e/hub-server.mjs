// A server on this machine that answers like the Hugging Face Hub, for the page tests (no network):
// `/<owner>/<name>/resolve/main/<file>` redirects (302) to `/files/<owner>/<name>/<file>`, which
// serves the file with CORS headers (the page is on another origin), HEAD and single Range
// requests. `hub.mode` switches the misbehaviours a real connection shows: no Content-Length,
// Range ignored, the connection dropped half-way (once), a slow body (for Cancel). `hub.log`
// records every request as `METHOD path [range]`.
import { createServer } from 'node:http';

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Range',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, Accept-Ranges',
};

/**
 * `repos`: {'owner/name': {file name: Buffer}}, read at each request (`hub.repos`: add more later).
 * Resolves to {url, log, mode, repos, close()}.
 */
export function startHub(repos) {
  const hub = { log: [], repos, mode: { noLength: false, noRange: false, dropOnce: false, slowMs: 0 } };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    hub.log.push(`${req.method} ${path}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...CORS, 'Access-Control-Allow-Methods': 'GET, HEAD' }).end();
      return;
    }
    const resolve = path.match(/^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/);
    if (resolve) {
      res.writeHead(302, { ...CORS, Location: `/files/${resolve[1]}/${resolve[2]}` }).end();
      return;
    }
    const served = path.match(/^\/files\/([^/]+\/[^/]+)\/(.+)$/);
    const body = served && repos[served[1]]?.[served[2]];
    if (!body) {
      res.writeHead(404, { ...CORS, 'Content-Type': 'text/plain' }).end('Entry not found');
      return;
    }
    await send(hub, req, res, body, served[2]);
  });
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () => {
      hub.url = `http://127.0.0.1:${server.address().port}/`;
      hub.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
      done(hub);
    });
  });
}

async function send(hub, req, res, body, name) {
  const { mode } = hub;
  const headers = { ...CORS, 'Content-Type': 'application/octet-stream', ETag: `"${body.length}"` };
  let start = 0;
  let end = body.length - 1;
  const range = !mode.noRange && req.headers.range?.match(/^bytes=(\d+)-(\d*)$/);
  if (range) {
    start = Number(range[1]);
    end = range[2] ? Math.min(Number(range[2]), end) : end;
    headers['Content-Range'] = `bytes ${start}-${end}/${body.length}`;
  }
  if (!mode.noRange) headers['Accept-Ranges'] = 'bytes';
  if (!mode.noLength) headers['Content-Length'] = end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const part = body.subarray(start, end + 1);
  // The weights' next whole-file request breaks off half-way when asked to, once.
  const drop = mode.dropOnce && name === 'model.safetensors' && !range;
  if (drop) mode.dropOnce = false;
  const stop = drop ? Math.floor(part.length / 2) : part.length;
  const chunk = 16 * 1024;
  for (let at = 0; at < stop; at += chunk) {
    res.write(part.subarray(at, Math.min(stop, at + chunk)));
    if (mode.slowMs) await new Promise((r) => { setTimeout(r, mode.slowMs); });
  }
  // The page must have read the first half (a drop before any byte arrives, Chromium retries by
  // itself), so the connection breaks off a moment later.
  if (drop) setTimeout(() => res.destroy(), 500);
  else res.end();
}
