// The PEFT parity fixtures (tests/reference/fixtures) as the page's engine takes them, and the
// check of its first loss and prompt gradient against PEFT's, for the tests that run the page's
// own wasm on a GPU adapter (page.test.mjs on SwiftShader, lavapipe.test.mjs on lavapipe).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

/** A safetensors file's f32 tensor `key` (little-endian), as numbers. */
export function readF32(path, key) {
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const entry = JSON.parse(bytes.subarray(8, 8 + headerLength).toString())[key];
  assert.equal(entry.dtype, 'F32', `${path} ${key}`);
  const [from, to] = entry.data_offsets.map((o) => o + 8 + headerLength);
  const data = bytes.subarray(from, to);
  return Array.from({ length: data.length / 4 }, (_, i) => data.readFloatLE(4 * i));
}

/**
 * The fixture's reference batch as the engine's batch parts take it (`src/pool.rs`): each row's
 * ids up to its last target, the context length, and the whole batch's shape.
 */
function referenceBatch(reference) {
  const rows = reference.batch_ids.map((ids, r) => {
    const labels = reference.batch_labels[r];
    const first = labels.findIndex((l) => l !== -100);
    const last = labels.findLastIndex((l) => l !== -100);
    return { ids: ids.slice(0, last + 1), n_context: first };
  });
  const totalTargets = reference.batch_labels.flat().filter((l) => l !== -100).length;
  return { rows, shape: { nVirtual: reference.n_virtual, padId: reference.eos_id, totalTargets } };
}

/**
 * Fixture `name`: its three files (Buffers, for `Lab.load`), PEFT's initial prompt, the reference
 * batch, and PEFT's first loss (`reference.loss`) and prompt gradient (`want`).
 */
export function parityFixture(name) {
  const dir = join(ROOT, 'tests', 'reference', 'fixtures', name);
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  return {
    name,
    reference,
    want: readF32(join(dir, 'reference.safetensors'), 'prompt_grad'),
    files: ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => readFileSync(join(dir, f))),
    prompt: readF32(join(dir, 'adapter_init', 'adapter_model.safetensors'), 'prompt_embeddings'),
    batch: referenceBatch(reference),
  };
}

/** The largest difference between `got` and `want`, relative to `want`'s largest magnitude. */
export function relativeError(got, want) {
  const scale = Math.max(...want.map(Math.abs));
  return Math.max(...got.map((g, j) => Math.abs(g - want[j]))) / scale;
}

/**
 * `got` ({loss, grad}: `Lab.partGradient` on the fixture's batch from PEFT's initial prompt)
 * against PEFT's. A GPU sums in other orders than PyTorch's CPU: the CPU tests' 1e-4 relative
 * bound (observed ~1e-6 on SwiftShader and on lavapipe).
 */
export function assertMatchesPeft({ name, reference, want }, got, where) {
  const gradErr = relativeError(got.grad, want);
  const norm = (v) => Math.hypot(...v);
  console.log(`${name} on ${where}: loss ${got.loss} vs ${reference.loss}, gradient relative error ${gradErr.toExponential(2)}`);
  assert.ok(Math.abs(got.loss - reference.loss) / reference.loss <= 1e-4, `${name}: loss ${got.loss} vs ${reference.loss}`);
  assert.ok(Math.abs(norm(got.grad) - norm(want)) / norm(want) <= 1e-4, `${name}: gradient norm`);
  assert.ok(gradErr <= 1e-4, `${name}: gradient relative error ${gradErr}`);
}
