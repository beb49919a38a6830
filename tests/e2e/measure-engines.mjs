// The page in each browser engine, for `./build.sh bench` (it prints, it does not judge): time
// from navigation to a prompt ready to train, and the default 200-step antonyms run with one
// engine (`?workers=1`) against the default pool (its size: www/engine/lab-pool.js poolSize),
// alternated in one invocation (ABBA), on the hosted form (dist/ on a plain static server).
//   node tests/e2e/measure-engines.mjs [ROUNDS] [ENGINE...]
// Needs the built page (./build.sh) and the browsers `./build.sh test` installs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';
import { ENGINES, launchEngine } from './engines.mjs';
import { plainServer, stopServers } from './sites.mjs';
import { makeDist } from '../../tools/dist.mjs';

const rounds = Number(process.argv[2]) || 2;
const engines = process.argv.slice(3).length ? process.argv.slice(3) : ENGINES;
const site = join(mkdtempSync(join(tmpdir(), 'spl-measure-')), 'site');
await makeDist(join(ROOT, 'www'), site);
const lab = await plainServer(site);

const isReady = () => document.querySelector('#model-status')?.dataset.ready === 'true' && !document.querySelector('#play').disabled;

/** One default run with `query`: seconds to ready, seconds for the run, the accuracy and the pool's note. */
async function run(b, query) {
  const t0 = Date.now();
  await b.goto(`${lab.url}?task=antonyms${query}`);
  await b.waitFor(isReady, null, 'ready');
  const ready = (Date.now() - t0) / 1000;
  const t1 = Date.now();
  await b.run(() => document.querySelector('#play').click());
  await b.waitFor(() => document.querySelector('#f-fp-after')?.dataset.equal, null, 'the run', 900_000);
  const secs = (Date.now() - t1) / 1000;
  const acc = await b.run(() => document.querySelector('#f-acc').textContent);
  // Settled before the next page: the comparison after the run (WebKit does not stop a page's
  // workers at once when it navigates away, so what they still ran had slowed the next run).
  await b.waitFor(() => Boolean(document.querySelector('#accuracies .acc[data-key="softPrompt"]')), null, 'the comparison');
  const pool = await b.run(() => document.querySelector('#pool-note').textContent);
  await b.goto('about:blank');
  await new Promise((ok) => { setTimeout(ok, 3000); });
  return { ready, secs, acc, pool };
}

console.log('| engine | workers | navigation to ready (s) | default run (s) | held-out | the pool |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const engine of engines) {
  const b = await launchEngine(engine);
  for (let r = 0; r < rounds; r++) {
    // ABBA: the arm that goes first swaps each round (a page's leftovers weigh on the next one).
    const arms = [['1', '&workers=1'], ['default', '']];
    for (const [label, query] of r % 2 ? arms.reverse() : arms) {
      const m = await run(b, query);
      console.log(`| ${engine} | ${label} | ${m.ready.toFixed(1)} | ${m.secs.toFixed(1)} | ${m.acc} | ${m.pool || '–'} |`);
    }
  }
  await b.close();
}
stopServers();
