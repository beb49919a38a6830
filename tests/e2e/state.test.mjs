// The page's URL state (www/state.js) without a browser: defaults, round trips, bad values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaults, fromUrl, toQuery, trainSettings } from '../../www/state.js';

test('defaults give an empty query, and every field survives a round trip through the URL', () => {
  assert.equal(toQuery(defaults()), '');
  const s = {
    ...defaults(), task: 'custom', custom: 'hot => cold\nbig => small', virtualTokens: 4, init: 'text',
    initText: 'opposite of', lr: 0.005, steps: 50, batch: 8, seed: 123, backend: 'cpu',
    model: 'https://example.org/m/resolve/main/', panels: ['training', 'shelf'], embed: true,
    host: 'https://course.example.org:8443',
  };
  assert.deepEqual(fromUrl(toQuery(s)), s);
});

test('out-of-range numbers are clamped and unknown values fall back to the defaults', () => {
  const s = fromUrl('?vt=99&lr=-3&steps=abc&init=zeros&backend=tpu&panels=outputs,nonsense&embed=yes');
  assert.equal(s.virtualTokens, 32);
  assert.equal(s.lr, 1e-5);
  assert.equal(s.steps, defaults().steps);
  assert.equal(s.init, defaults().init);
  assert.equal(s.backend, 'auto');
  assert.deepEqual(s.panels, ['outputs']);
  assert.equal(s.embed, false);
});

test('the engine gets exactly the training settings', () => {
  assert.deepEqual(Object.keys(trainSettings(defaults())).sort(),
    ['batch', 'init', 'initText', 'lr', 'seed', 'steps', 'virtualTokens']);
});

test('addresses must be http(s): a model folder and the embedding host', () => {
  for (const bad of ['javascript:alert(1)', 'data:text/html,<b>x</b>', '<img src=x onerror=alert(1)>', 'ftp://a/b', '']) {
    const s = fromUrl(`?${new URLSearchParams({ model: bad, host: bad })}`);
    assert.equal(s.model, '', bad);
    assert.equal(s.host, '', bad);
  }
  // A host is an origin only: no path, no trailing slash.
  assert.equal(fromUrl('?host=https://a.example/course').host, '');
  assert.equal(fromUrl('?host=http://127.0.0.1:9000').host, 'http://127.0.0.1:9000');
});
