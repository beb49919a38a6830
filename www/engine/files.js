// The files the engine worker reads: a model's three files (from a URL or the user's own), a
// checkpoint's config and safetensors header before any weights, a built-in task's files.
import { headerLength, taskSplits } from '../pkg/soft_prompt_lab.js';
import { fetchBytes, fetchFile, fetchRange, fileUrl } from '../model-files.js';
import { MODEL_FILES } from '../protocol.js';

/**
 * A model's three files, reporting `onProgress({file, loaded, total, secondsLeft})` as they come,
 * and the `keep(notes)` of each one downloaded (model-files.js `fetchFile`): the caller writes the
 * copies for the next visit, now or when the engine is idle (./cache-later.js).
 */
export async function modelFiles(source, onProgress, { signal, notes } = {}) {
  if (source.kind === 'files') {
    return { files: [source.config, source.weights, source.tokenizer].map((b) => new Uint8Array(b)), keeps: [] };
  }
  const files = [];
  const keeps = [];
  for (const file of MODEL_FILES) {
    const { bytes, keep } = await fetchFile(fileUrl(source.base, file), (loaded, total, secondsLeft) =>
      onProgress({ file, loaded, total, secondsLeft }), { signal, notes });
    files.push(bytes);
    if (keep) keeps.push(keep);
  }
  return { files, keeps };
}

/** A sharded checkpoint is refused by name (its index is there, one model.safetensors is not). */
async function refuseSharded(base, error) {
  const index = await fetch(fileUrl(base, 'model.safetensors.index.json'), { method: 'HEAD' }).catch(() => null);
  if (!index?.ok) throw error;
  throw {
    kind: 'Weights',
    message: 'this model is split into several weight files (model.safetensors.index.json: a sharded checkpoint), and Soft Prompt Lab reads one model.safetensors. Choose a smaller model, or save this one as a single file (save_pretrained with max_shard_size larger than the model)',
  };
}

/** The safetensors header of a weights file in memory (a view, not a copy). */
export function headOf(weights) {
  return weights.subarray(8, 8 + headerLength(weights.subarray(0, 8)));
}

/**
 * `config.json`, the weights' safetensors header and the file's size, without the weights: two
 * Range requests (the 8-byte length, then the header).
 */
export async function checkpointHead(source) {
  if (source.kind === 'files') {
    const weights = new Uint8Array(source.weights);
    return { config: new Uint8Array(source.config), header: headOf(weights).slice(), size: weights.byteLength };
  }
  const config = await fetchBytes(fileUrl(source.base, 'config.json'));
  const url = fileUrl(source.base, 'model.safetensors');
  const first = await fetchRange(url, 0, 7).catch((e) => refuseSharded(source.base, e));
  const n = headerLength(first.bytes);
  const { bytes } = await fetchRange(url, 8, 8 + n - 1);
  return { config, header: bytes, size: first.size };
}

/** A built-in task's files as text: `{spec, train, test}` (its task.json and the two splits). */
export async function builtinTask(base, name) {
  const folder = fileUrl(base, name);
  const bytes = await fetchBytes(fileUrl(folder, 'task.json'), () => {});
  const [train, test] = taskSplits(bytes);
  const text = async (file) => new TextDecoder().decode(await fetchBytes(fileUrl(folder, file), () => {}));
  return { spec: new TextDecoder().decode(bytes), train: await text(train), test: await text(test) };
}
