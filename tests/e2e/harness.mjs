// Shared set-up for the page tests: the built page (www/) served as `./build.sh serve` serves it,
// Debian's Chromium with WebGPU enabled (a software adapter, SwiftShader), and a page that records
// every request that leaves the page's origin and every uncaught error.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../../tools/serve.mjs';
import { MODEL_FILES } from '../../www/protocol.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = join(ROOT, 'tests', 'e2e', 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

/** A model folder's files by name (`config.json`, ...), as a Hub-like server serves them. */
export const modelFolder = (dir) => Object.fromEntries(MODEL_FILES.map((f) => [f, readFileSync(join(dir, f))]));

/** Debian's Chromium, with WebGPU (a software adapter) unless `webgpu` is false; `args`: more flags. */
export function launch({ webgpu = true, args = [] } = {}) {
  return chromium.launch(launchOptions(webgpu, args));
}

function launchOptions(webgpu, args) {
  return {
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu-sandbox', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
      ...args,
    ],
  };
}

/** A served page and a browser (with WebGPU unless `webgpu` is false); `close()` stops both. */
export async function start({ webgpu = true } = {}) {
  const { url, server } = await serve(join(ROOT, 'www'), 0);
  const browser = await launch({ webgpu });
  return {
    url,
    browser,
    async close() {
      await browser.close();
      server.close();
    },
  };
}

/**
 * Opens the page with `query` in a fresh context (`initScript`: run before the page's own). `requests` records every request, `foreign`
 * those to other origins (the page must make none), `errors` uncaught page errors and
 * Content-Security-Policy refusals (none allowed). `onDisk`: a browser of its own (CPU path) with
 * a new profile on disk, as a visitor's: a context's storage is in memory, where the Cache API refuses
 * a file over ~256 MB ("Unexpected internal error"); a profile on disk keeps a 135M model's
 * 269 MB (closing the context closes that browser).
 */
export async function open(env, query, { acceptDownloads = false, viewport = { width: 1400, height: 1000 }, initScript, onDisk = false } = {}) {
  const context = onDisk ? await onDiskContext({ acceptDownloads, viewport }) : await env.browser.newContext({ acceptDownloads, viewport });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  const origin = new URL(env.url).origin;
  const foreign = [];
  const requests = [];
  context.on('request', (r) => {
    const u = r.url();
    requests.push({ url: u, method: r.method() });
    if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
  });
  const errors = pageErrors(page);
  page.setDefaultTimeout(120_000);
  await page.goto(`${env.url}${query}`);
  return { page, context, foreign, errors, requests };
}

/** A CPU-path browser with a new profile on disk, removed when the context closes. */
async function onDiskContext(options) {
  const dir = mkdtempSync(join(tmpdir(), 'spl-profile-'));
  const context = await chromium.launchPersistentContext(dir, { ...launchOptions(false, []), ...options });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  };
  return context;
}

/**
 * Uncaught errors of `page`, and Content-Security-Policy refusals: the policy must block nothing
 * the page itself does (Chromium logs each refusal).
 */
export function pageErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) errors.push(m.text());
  });
  return errors;
}

/** Waits for the model to be loaded and a prompt to be ready to train. */
export async function ready(page, timeout = 120_000) {
  try {
    await page.waitForSelector('#model-status[data-ready="true"]', { timeout });
    await page.waitForSelector('#play:not([disabled])', { timeout });
  } catch (e) {
    // What the page said instead: a timeout alone does not tell a hang from an error shown.
    e.message += `\npage state: ${JSON.stringify(await pageState(page).catch((err) => String(err)))}`;
    throw e;
  }
}

/** The page's status lines and every error message it shows (empty ones left out). */
function pageState(page) {
  return page.evaluate(() => Object.fromEntries(
    ['model-status', 'train-status', 'backend-badge', 'backend-note', 'model-error', 'task-error', 'custom-error', 'train-error']
      .map((id) => [id, document.getElementById(id)?.textContent.trim()])
      .filter(([, text]) => text),
  ));
}

export const text = (page, sel) => page.locator(sel).innerText();
