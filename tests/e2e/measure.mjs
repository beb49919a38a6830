// Figures for the README and issue notes (not a test: it prints, it does not judge).
//   node tests/e2e/measure.mjs            CPU path: model ready, ms/step, time to 80% on antonyms
//   node tests/e2e/measure.mjs webgpu     adds the WebGPU path (SwiftShader here: a software adapter)
// Needs the built page (./build.sh) and Debian's Chromium.
import { open, ready, start, text } from './harness.mjs';

const env = await start();

/** Median of the step times the page reports (step only: evaluations not included). */
async function msPerStep(page, n) {
  const times = [];
  let last = '';
  while (times.length < n) {
    const [step, title] = await page.evaluate(() => [document.querySelector('#f-step').textContent, document.querySelector('#f-speed').title]);
    if (step !== last && title) {
      times.push(Number(title.match(/([\d.]+) ms/)[1]));
      last = step;
    }
    await page.waitForTimeout(20);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

async function cpu() {
  const t0 = performance.now();
  const t = await open(env, '?backend=cpu&task=antonyms');
  await ready(t.page);
  const readyS = (performance.now() - t0) / 1000;
  console.log(`CPU: page opened to model ready and prompt initialised: ${readyS.toFixed(1)} s`);
  console.log(`     ${await text(t.page, '#model-status')}`);
  const started = performance.now();
  await t.page.click('#play');
  // Default settings (8 virtual tokens, class-label init, lr 0.03, batch 16, 200 steps); held-out
  // accuracy is measured every 25 steps.
  const handle = await t.page.waitForFunction(() => {
    const acc = Number.parseFloat(document.querySelector('#f-acc').textContent);
    return acc >= 80 ? document.querySelector('#f-step').textContent : false;
  }, null, { timeout: 900_000, polling: 200 });
  const reached = (performance.now() - started) / 1000;
  console.log(`CPU: antonyms reached ${await text(t.page, '#f-acc')} held-out at step ${await handle.jsonValue()} after ${reached.toFixed(1)} s of training (evaluations included)`);
  console.log(`CPU: ${(await msPerStep(t.page, 15)).toFixed(0)} ms per training step, median of 15 (batch 16, 8 virtual tokens)`);
  await t.page.click('#play'); // pause
  await t.context.close();
}

async function webgpu() {
  const t0 = performance.now();
  const t = await open(env, '?backend=webgpu&task=antonyms&steps=5');
  await ready(t.page, 600_000);
  console.log(`WebGPU (${await text(t.page, '#backend-badge')}): model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await t.page.click('#play');
  // The first step compiles the shaders; then the median of the next three.
  await t.page.waitForFunction(() => document.querySelector('#f-step').textContent.startsWith('2 '), null, { timeout: 900_000 });
  console.log(`WebGPU: ${(await msPerStep(t.page, 3)).toFixed(0)} ms per training step, median of 3 after the first (batch 16, 8 virtual tokens)`);
  await t.context.close();
}

try {
  await cpu();
  if (process.argv.includes('webgpu')) await webgpu();
} finally {
  await env.close();
}
