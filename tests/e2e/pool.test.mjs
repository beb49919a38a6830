// The CPU path's pool of engine workers (www/pool.js, src/pool.rs): the same training with 1 and
// 3 engines, and a helper that dies mid-run. Time limits bound a hang; they do not measure speed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, modelFolder, open, ready, start, text } from './harness.mjs';
import { startHub } from './hub-server.mjs';

const LLAMA = 'tiny/llama';
let env;
let hub;
before(async () => {
  env = await start({ webgpu: false });
  hub = await startHub({ [LLAMA]: modelFolder(join(ROOT, 'tests/reference/fixtures/tiny-llama')) });
});
after(async () => {
  await hub?.close();
  await env?.close();
});

/**
 * Trains `steps` steps with `workers` engines (all of them joined first); the final loss and
 * accuracy. `switched`: on a Hub model loaded after the bundled one (and its helpers) was ready.
 */
async function train(workers, steps, during, { switched = false } = {}) {
  const hubModel = switched ? `&hub=${encodeURIComponent(hub.url)}&model=${LLAMA}` : '';
  const t = await open(env, `?backend=cpu&task=antonyms&steps=${steps}&workers=${workers}${hubModel}`);
  try {
    await ready(t.page);
    await t.page.waitForSelector(`#backend-badge[data-workers="${workers}"]`);
    if (switched) {
      await t.page.waitForSelector('#model-check:not([hidden])');
      await t.page.click('#model-load');
      await t.page.waitForFunction((r) => document.querySelector('#model-status').textContent.startsWith(`${r}: `), LLAMA);
      await ready(t.page);
      await t.page.waitForSelector(`#backend-badge[data-workers="${workers}"]`);
    }
    if (workers > 1) assert.match(await text(t.page, '#backend-badge'), new RegExp(`^CPU · .* · ${workers} workers$`));
    await t.page.click('#play');
    await during?.(t.page);
    await t.page.waitForSelector('#f-fp-after[data-equal]', { timeout: 600_000 });
    assert.equal(await text(t.page, '#f-step'), `${steps} / ${steps}`);
    assert.deepEqual(t.errors, []);
    return { page: t.page, loss: await text(t.page, '#f-loss'), acc: await text(t.page, '#f-acc'), t };
  } catch (e) {
    await t.context.close();
    throw e;
  }
}

test('a pool of 3 engines trains the same prompt as one engine (the same loss and accuracy after 10 steps)', async () => {
  const one = await train(1, 10);
  await one.t.context.close();
  const three = await train(3, 10);
  // Each engine's memory is on the page: this one's, then each helper's (a model copy each).
  const helpers = JSON.parse(await three.page.locator('#f-memory').getAttribute('data-helpers'));
  assert.equal(helpers.length, 2);
  for (const bytes of helpers) assert.ok(bytes > 2 ** 20, `a helper's memory: ${bytes} bytes`);
  assert.match(await text(three.page, '#f-memory'), /^\d+ MB \+ \d+ MB, \d+ MB in 2 helpers$/);
  await three.t.context.close();
  // The parts' sums differ from one engine's in the order of float additions (~1e-7 relative):
  // four decimals agree (the native test checks 1e-5 over 20 steps).
  assert.equal(three.loss, one.loss);
  assert.equal(three.acc, one.acc);
});

test('a helper engine that dies mid-run leaves the pool smaller and the run going, said on the page', async () => {
  const run = await train(3, 40, async (page) => {
    await page.waitForFunction(() => Number.parseInt(document.querySelector('#f-step').textContent, 10) >= 5);
    await page.evaluate(() => window.softPromptLab.killHelper());
  });
  try {
    await run.page.waitForSelector('#backend-badge[data-workers="2"]');
    assert.match(await text(run.page, '#backend-badge'), / · 2 workers$/);
    assert.match(await text(run.page, '#backend-note'), /A helper engine stopped: training goes on with 2 workers\./);
    assert.match(await text(run.page, '#f-memory'), / in 1 helper$/);
    assert.match(run.loss, /^\d+\.\d{4}$/);
  } finally {
    await run.t.context.close();
  }
});

test('after a model switch the helpers train the new model: none fails, the same loss as one engine', async () => {
  // The helpers of the model before load the new one (www/pool.js `start`): a helper left with
  // the old model would give other gradients, or (another width, as here) fail its parts and be
  // dropped, its parts computed by the lab.
  const one = await train(1, 3, null, { switched: true });
  await one.t.context.close();
  const two = await train(2, 3, null, { switched: true });
  const badge = await two.page.evaluate(() => ({ ...document.querySelector('#backend-badge').dataset }));
  await two.t.context.close();
  assert.equal(badge.workers, '2');
  assert.equal(badge.failed, '0');
  assert.equal(two.loss, one.loss);
  assert.equal(two.acc, one.acc);
});

test('an experiment\'s trainings run on the helper engines: the same table as on one engine, even when a helper dies', async () => {
  const table = async (workers, during) => {
    const t = await open(env, `?backend=cpu&task=sentiment&workers=${workers}&exp=transfer&exp_steps=4&exp_seeds=2`);
    try {
      await ready(t.page);
      await t.page.waitForSelector(`#backend-badge[data-workers="${workers}"]`);
      await t.page.click('#exp-run');
      await during?.(t.page);
      await t.page.waitForSelector('#exp-status[data-done="transfer"]', { timeout: 300_000 });
      assert.deepEqual(t.errors, []);
      return await t.page.locator('#exp-table table').first().locator('tbody tr').allInnerTexts();
    } finally {
      await t.context.close();
    }
  };
  const one = await table(1);
  const three = await table(3, async (page) => {
    await page.waitForFunction(() => / · [12] more on helper engines/.test(document.querySelector('#exp-status').textContent));
    await page.evaluate(() => window.softPromptLab.killHelper());
  });
  // Each run is the same seed on the same model wherever it runs (the native test checks the
  // whole summary); the killed helper's run ran again on another engine.
  assert.deepEqual(three, one);
  assert.equal(one.length, 3);
});
