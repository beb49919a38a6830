// The cross-engine subset: what differs between browser engines, run in Chromium, Firefox and
// WebKit (tests/e2e/engines.mjs) on the hosted form of the page (dist/ on a plain static server):
// first load, the default antonyms run to a held-out accuracy, an adapter exported and imported,
// an engine crash and restart, the view at phone width, a model from a Hub-like server (Range,
// a resumed download, the Cache API), the host-page events across origins, and an offline reload
// (the service worker). The whole suite runs in Chromium (page.test.mjs and the rest).
// Time limits bound a hang; they do not measure speed (the figures are printed as diagnostics).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, modelFolder } from './harness.mjs';
import { ENGINES, launchEngine } from './engines.mjs';
import { startHub } from './hub-server.mjs';
import { freePort, hostPage, plainServer, stopServers } from './sites.mjs';
import { makeDist } from '../../tools/dist.mjs';

const llama = modelFolder(join(ROOT, 'tests/reference/fixtures/tiny-llama'));
const work = mkdtempSync(join(tmpdir(), 'spl-engines-'));
const site = join(work, 'site');
let version;
let hub;

before(async () => {
  ({ version } = await makeDist(join(ROOT, 'www'), site));
  // The lab inside a phone-wide frame of its own origin, so its layout can be read from outside.
  writeFileSync(join(site, 'phone.html'), '<!doctype html><iframe src="./?backend=cpu&task=sentiment" style="width:390px;height:844px;border:0"></iframe>');
  // One repository per engine: each engine's requests are told apart in the log.
  hub = await startHub(Object.fromEntries(ENGINES.map((e) => [`${e}/llama`, llama])));
});
after(async () => {
  await hub?.close();
  stopServers();
});

// In-page checks (they run inside the page, so they name no outer variables).
const isReady = () => document.querySelector('#model-status')?.dataset.ready === 'true'
  && document.querySelector('#play') && !document.querySelector('#play').disabled;
const textOf = (sel) => document.querySelector(sel)?.textContent.trim();
const click = (sel) => { document.querySelector(sel).click(); return true; };

for (const engine of ENGINES) {
  describe(engine, () => {
    let b;
    let lab;
    const text = (sel) => b.run(textOf, sel);
    const ready = (what = 'a prompt ready to train') => b.waitFor(isReady, null, what);
    before(async () => {
      b = await launchEngine(engine);
      lab = await plainServer(site);
    });
    after(async () => { await b?.close(); });
    // No uncaught error in the page during each test (where the driver reports them). Firefox
    // also reports, with an empty URL, each load the service worker was answering when the page
    // navigated away (a helper engine's files, mid-load: in CI's offline test and in the Hub
    // test's revisit here, never without a navigation): a load the browser cancelled, not an
    // error of the page's.
    const cancelledByNavigation = (e) => e === 'Failed to load ‘’. A ServiceWorker intercepted the request and encountered an unexpected error.';
    afterEach(() => { assert.deepEqual(b.errors.splice(0).filter((e) => !cancelledByNavigation(e)), []); });

    test('first load and the default antonyms run: ready, ≥ 90% held-out, the base unchanged, the pool\'s size said', async (t) => {
      const started = Date.now();
      await b.goto(`${lab.url}?task=antonyms`);
      await ready();
      const readyS = (Date.now() - started) / 1000;
      const loadTimes = await b.run(() => document.querySelector('#model-status').title);
      const runStarted = Date.now();
      await b.run(click, '#play');
      await b.waitFor(() => document.querySelector('#f-fp-after')?.dataset.equal, null, 'the default run to end', 600_000);
      const runS = (Date.now() - runStarted) / 1000;
      assert.equal(await b.run(() => document.querySelector('#f-fp-after').dataset.equal), 'true');
      assert.equal(await text('#f-step'), '200 / 200');
      const accuracy = Number.parseFloat(await text('#f-acc'));
      assert.ok(accuracy >= 90, `held-out accuracy ${accuracy}%`);
      // How many engines train, and why, is said on the page (www/engine/lab-pool.js poolSize).
      const pool = await b.waitFor(() => document.querySelector('#pool-note').textContent, null, 'the pool\'s size');
      assert.match(pool, /^Engines: (one engine|\d engines)/);
      t.diagnostic(`${engine}: ready ${readyS.toFixed(1)} s after navigation (${loadTimes}); 200 steps in ${runS.toFixed(1)} s; ${accuracy}% held-out; ${pool}`);
    });

    test('an adapter exported and imported back gives the same predictions', async () => {
      await b.waitFor(() => Boolean(document.querySelector('#accuracies .acc[data-key="softPrompt"]')), null, 'the comparison');
      const predictions = () => [...document.querySelectorAll('#outputs-table tbody tr td:nth-child(5)')].map((td) => td.textContent);
      const before = await b.run(predictions);
      const accuracies = await text('#accuracies');
      // The download's bytes, kept in the page (no engine's download dialog is involved).
      await b.run(() => {
        const { click } = HTMLAnchorElement.prototype;
        const objectUrl = URL.createObjectURL;
        URL.createObjectURL = (blob) => { window.exportedBlob = blob; return objectUrl.call(URL, blob); };
        HTMLAnchorElement.prototype.click = function keep() {
          if (!this.download) return click.call(this);
          window.exported = new File([window.exportedBlob], this.download);
          return undefined;
        };
        document.querySelector('#export').click();
      });
      await b.waitFor(() => Boolean(window.exported), null, 'the exported zip');
      await b.run(() => {
        const seed = document.querySelector('#s-seed');
        seed.value = '7';
        seed.dispatchEvent(new Event('change'));
      });
      await b.waitFor(() => document.querySelector('#outputs-table').children.length === 0, null, 'a new prompt');
      await b.run(() => {
        const files = new DataTransfer();
        files.items.add(window.exported);
        const input = document.querySelector('#import-files');
        input.files = files.files;
        input.dispatchEvent(new Event('change'));
      });
      await b.waitFor(() => Boolean(document.querySelector('#accuracies .acc[data-key="softPrompt"]')), null, 'the imported prompt compared');
      assert.deepEqual(await b.run(predictions), before);
      assert.equal(await text('#accuracies'), accuracies);
      assert.equal(await b.run(() => document.querySelector('#shelf-error').hidden), true);
    });

    test('an engine crash during a step: the page says so and restarts with the prompt, and training goes on', async () => {
      const drawn = await text('#nearest');
      await b.run(() => window.softPromptLab.crashNext('train'));
      await b.run(() => {
        document.querySelector('#model-status').dataset.ready = 'false';
        document.querySelector('#step').click();
      });
      await b.waitFor(() => /crashed/.test(document.querySelector('#backend-note').textContent), null, 'the crash said');
      await ready('the restart');
      await b.waitFor(() => document.querySelector('#train-status').textContent === '', null, 'the prompt restored');
      assert.equal(await text('#nearest'), drawn);
      assert.match(await text('#backend-badge'), /^CPU/);
      await b.run(click, '#step');
      await b.waitFor(() => document.querySelector('#f-step').textContent.startsWith('1 /'), null, 'a step after the restart');
    });

    test('at phone width no panel scrolls sideways', async () => {
      await b.goto(`${lab.url}phone.html`);
      await b.waitFor(() => Boolean(document.querySelector('iframe').contentDocument?.querySelector('#model-status[data-ready="true"]')), null, 'the framed lab ready');
      const wide = await b.run(() => [...document.querySelector('iframe').contentDocument.querySelectorAll('.panel, .table-wrap, main, body')]
        .filter((el) => el.scrollWidth > el.clientWidth + 1)
        .map((el) => `${el.id || el.className || el.tagName} (${el.scrollWidth} > ${el.clientWidth})`));
      assert.deepEqual(wide, []);
      assert.equal(await b.run(() => document.querySelector('iframe').contentWindow.innerWidth), 390);
    });

    test('a Hub model: only its header before Load, a dropped download resumed with Range, a missing one named without a line number, and the Cache API\'s copy on the next visit', async () => {
      const repo = `${engine}/llama`;
      const weightGets = () => hub.log.filter((l) => l.startsWith(`GET /files/${repo}/model.safetensors`));
      const url = `${lab.url}?backend=cpu&task=antonyms&vt=2&batch=4&steps=3&hub=${encodeURIComponent(hub.url)}&model=${repo}`;
      await b.goto(url);
      await ready();
      await b.waitFor(() => !document.querySelector('#model-check').hidden, null, 'the model\'s cost');
      // The header's two Range reads. WebKit drops the Range header when it follows the Hub's
      // redirect: each read then starts a whole-file answer, which the page cancels and asks again
      // of the address the redirect named (www/model-files.js rangeRequest).
      const ranged = weightGets().filter((l) => /bytes=\d+-\d+$/.test(l));
      assert.deepEqual(ranged.map((l) => l.split(' ').pop().split('-')[0]), ['bytes=0', 'bytes=8'], `${weightGets()}`);
      assert.equal(weightGets().length - ranged.length, engine === 'webkit' ? 2 : 0, `${weightGets()}`);
      hub.mode.dropOnce = true;
      await b.run(click, '#model-load');
      await b.waitFor((r) => document.querySelector('#model-status').textContent.startsWith(`${r}: `), repo, 'the Hub model loaded');
      assert.equal(weightGets().filter((l) => /bytes=[1-9]\d*-$/.test(l)).length, 1, `one resumed Range request: ${weightGets()}`);
      await ready();
      await b.run(click, '#play');
      await b.waitFor(() => document.querySelector('#f-fp-after')?.dataset.equal, null, '3 steps');
      assert.equal(await b.run(() => document.querySelector('#f-fp-after').dataset.equal), 'true');

      // A JavaScript error names no line (JavaScriptCore puts its own `line` on every Error).
      await b.run(() => {
        const input = document.querySelector('#model-url');
        input.value = 'missing/model';
        input.dispatchEvent(new Event('input'));
        document.querySelector('#model-url-form').requestSubmit();
      });
      const missing = await b.waitFor(() => !document.querySelector('#model-error').hidden && document.querySelector('#model-error').textContent,
        null, 'the missing model named');
      assert.match(missing, /^could not fetch .*missing\/model\/resolve\/main\/config\.json: the server answered 404/);

      // The next visit loads the stored copy: no weights are downloaded again.
      const seen = weightGets().length;
      await b.goto(url);
      await b.waitFor((r) => document.querySelector('#model-status').textContent.startsWith(`${r}: `), repo, 'the stored model loaded');
      assert.deepEqual(weightGets().slice(seen), []);
    });

    test('embedded in a course page on another origin: the host hears ready, every step and done', async () => {
      const hostPort = await freePort();
      const hostOrigin = `http://127.0.0.1:${hostPort}`;
      hostPage(join(work, `host-${engine}`), lab.url, hostOrigin);
      await plainServer(join(work, `host-${engine}`), hostPort);
      await b.goto(`${hostOrigin}/`);
      await b.run(() => {
        window.heard = [];
        window.addEventListener('message', (e) => { if (e.data?.source === 'soft-prompt-lab') window.heard.push(e.data); });
      });
      await b.waitFor(() => window.heard.some((m) => m.type === 'ready'), null, 'ready from the lab');
      await b.run((origin) => {
        const w = document.querySelector('iframe').contentWindow;
        w.postMessage({ type: 'set', task: 'sentiment', settings: { steps: 8, seed: 4 } }, origin);
        w.postMessage({ type: 'train' }, origin);
      }, lab.url.slice(0, -1));
      await b.waitFor(() => window.heard.some((m) => m.type === 'done'), null, 'done from the lab');
      const heard = await b.run(() => window.heard);
      assert.deepEqual(heard.filter((m) => m.type === 'step').map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(heard.find((m) => m.type === 'done').unchanged, true);
      assert.match(await text('#result'), /held-out accuracy in 8 steps/);
    });

    test('offline: with its server gone, a reload loads the page from the service worker\'s cache and trains', async () => {
      await b.goto(`${lab.url}?backend=cpu&task=antonyms&steps=6`);
      await ready();
      await b.waitFor((v) => document.documentElement.dataset.offline === v, version, 'the build precached');
      // The helper engines done loading first: the user goes offline later, not mid-load.
      await b.waitFor(() => {
        const { workers, failed, wanted } = document.querySelector('#backend-badge').dataset;
        return Number(workers) + Number(failed) >= Number(wanted);
      }, null, 'the helper engines loaded');
      await lab.stop();
      await b.reload();
      await ready('the page from the cache');
      await b.run(click, '#step');
      await b.waitFor(() => document.querySelector('#f-step').textContent.startsWith('1 /'), null, 'a step offline');
      assert.equal(await b.run(() => document.querySelector('meta[name="build"]').content), version);
    });
  });
}
