// The hosted page: dist/ (tools/dist.mjs) served by a plain static server that sets no headers
// (python3 -m http.server, as GitHub Pages sets none of ours), in headless Chromium.
// Time limits bound a hang; they do not measure speed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, launch, pageErrors, ready } from './harness.mjs';
import { makeDist } from '../../tools/dist.mjs';
import { freePort, hostPage, plainServer, stopServers } from './sites.mjs';

const work = mkdtempSync(join(tmpdir(), 'spl-dist-'));
const site = join(work, 'site');
let browser;

before(async () => { browser = await launch({ webgpu: false }); });
after(async () => {
  await browser?.close();
  stopServers();
});

/** A fresh browser context on `url`, collecting uncaught errors and policy refusals. */
async function visit(url) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const errors = pageErrors(page);
  page.setDefaultTimeout(120_000);
  await page.goto(url);
  return { context, page, errors };
}

const build = (page) => page.evaluate(() => document.querySelector('meta[name="build"]').content);

test('dist/ on a plain static server: trains, works offline after one visit, and offers a new version when the site changes', async () => {
  const first = await makeDist(join(ROOT, 'www'), site);
  assert.ok(first.total < 10 * 2 ** 20, `first visit ${first.total} bytes gzip`);
  const server = await plainServer(site);
  const { context, page, errors } = await visit(`${server.url}?task=antonyms&steps=6&backend=cpu`);
  await ready(page);
  assert.equal(await build(page), first.version);
  await page.click('#play');
  await page.waitForFunction(() => document.querySelector('#f-step').textContent === '6 / 6');
  // The service worker has precached the build.
  await page.waitForFunction((v) => document.documentElement.dataset.offline === v, first.version);

  // Offline: the server is gone and the network is cut; a reload still loads, from the cache.
  await server.stop();
  await context.setOffline(true);
  await page.reload();
  await ready(page);
  await page.click('#step');
  await page.waitForFunction(() => document.querySelector('#f-step').textContent.startsWith('1 /'));
  assert.equal(await build(page), first.version);

  // A new build (one changed file) on the same address: the page offers it, and Reload loads it.
  const changed = join(work, 'www-changed');
  cpSync(join(ROOT, 'www'), changed, { recursive: true });
  appendFileSync(join(changed, 'style.css'), '\n/* a new version */\n');
  const second = await makeDist(changed, site);
  assert.notEqual(second.version, first.version);
  const again = await plainServer(site, server.port);
  await context.setOffline(false);
  await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r.update()));
  await page.waitForSelector('#update-banner:not([hidden])');
  await Promise.all([page.waitForEvent('load'), page.click('#update-reload')]);
  await ready(page);
  assert.equal(await build(page), second.version);
  // The new version downloaded what changed; the unchanged model came over from the old cache.
  assert.ok(again.paths.includes(`/${second.version}/style.css`), again.paths.join(' '));
  assert.ok(!again.paths.some((p) => p.endsWith('model.safetensors')), again.paths.join(' '));
  assert.deepEqual(errors, []);
  await context.close();
});

test('embedded in a course page on another origin: the host hears ready, step and done, and sets the task; other origins are ignored', async () => {
  await makeDist(join(ROOT, 'www'), site);
  const lab = await plainServer(site);
  const hostPort = await freePort();
  const hostOrigin = `http://127.0.0.1:${hostPort}`;
  hostPage(join(work, 'host'), lab.url, hostOrigin);
  await plainServer(join(work, 'host'), hostPort);
  // localhost and 127.0.0.1 are different origins: a page there with the same iframe is not the host.
  const strangerPort = await freePort();
  hostPage(join(work, 'stranger'), lab.url, hostOrigin);
  await plainServer(join(work, 'stranger'), strangerPort);

  const { context, page, errors } = await visit(`${hostOrigin}/`);
  await page.evaluate(() => {
    window.heard = [];
    window.addEventListener('message', (e) => { if (e.data?.source === 'soft-prompt-lab') window.heard.push(e.data); });
  });
  const frame = page.frameLocator('iframe');
  await frame.locator('#model-status[data-ready="true"]').waitFor({ timeout: 120_000 });
  await page.waitForFunction(() => window.heard.some((m) => m.type === 'ready'));
  // The host sets the task and a short run, then presses Train.
  await page.evaluate((origin) => {
    const w = document.querySelector('iframe').contentWindow;
    w.postMessage({ type: 'set', task: 'sentiment', settings: { steps: 8, seed: 4 } }, origin);
    w.postMessage({ type: 'train' }, origin);
  }, lab.url.slice(0, -1));
  await page.waitForFunction(() => window.heard.some((m) => m.type === 'done'), null, { timeout: 120_000 });
  const heard = await page.evaluate(() => window.heard);
  const steps = heard.filter((m) => m.type === 'step');
  const done = heard.find((m) => m.type === 'done');
  assert.deepEqual(steps.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(steps.every((m) => m.task === 'sentiment' && m.target === 8 && Number.isFinite(m.loss)));
  assert.equal(done.task, 'sentiment');
  assert.equal(done.step, 8);
  assert.ok(done.accuracy >= 0 && done.accuracy <= 1, `accuracy ${done.accuracy}`);
  assert.equal(done.unchanged, true);
  assert.match(await page.locator('#result').innerText(), /held-out accuracy in 8 steps/);
  assert.equal(await frame.locator('#task-select').inputValue(), 'sentiment');

  // The same iframe on another origin: its commands are ignored and it hears nothing.
  const other = await visit(`http://localhost:${strangerPort}/`);
  await other.page.evaluate(() => {
    window.heard = [];
    window.addEventListener('message', (e) => { if (e.data?.source === 'soft-prompt-lab') window.heard.push(e.data); });
  });
  const otherFrame = other.page.frameLocator('iframe');
  await otherFrame.locator('#play:not([disabled])').waitFor({ timeout: 120_000 });
  await other.page.evaluate((origin) => {
    document.querySelector('iframe').contentWindow.postMessage({ type: 'train' }, origin);
  }, lab.url.slice(0, -1));
  await other.page.waitForTimeout(3000);
  assert.equal(await otherFrame.locator('#f-step').innerText(), '–');
  assert.deepEqual(await other.page.evaluate(() => window.heard), []);
  assert.deepEqual([...errors, ...other.errors], []);
  await other.context.close();
  await context.close();
});

test('the embed snippet is the same in the README and both examples', () => {
  const snippet = (s) => s.match(/<!-- soft-prompt-lab embed: begin -->([\s\S]*?)<!-- soft-prompt-lab embed: end -->/)?.[1].replace(/\s+/g, ' ').trim();
  const readme = snippet(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  assert.ok(readme, 'README.md has the embed snippet between the markers');
  for (const f of ['host.html', 'course-page.md']) {
    assert.equal(snippet(readFileSync(join(ROOT, 'examples', 'embed', f), 'utf8')), readme, f);
  }
});
