// Prompts as PEFT adapters: the shelf (one trained prompt per task on this model), export as a
// zip or two files, import.
import { REQUEST } from '../protocol.js';
import { $, download, showError } from '../dom.js';
import { trainSettings } from '../state.js';
import { zipSync, unzipSync } from '../vendor/fflate.js';
import SETTINGS from '../settings.js';

/** A PEFT adapter's two files (src/adapter.rs). */
const FILES = SETTINGS.adapterFiles;

export function adapters(ctx) {
  const { state, rt, ui } = ctx;

  /** The current prompt onto the shelf (and its files, for export). */
  async function shelve() {
    const files = await rt.client.request(REQUEST.EXPORT, { baseModel: ctx.modelName() });
    ui.shelf.put(rt.task.name, { ...files, nVirtual: state.virtualTokens, steps: rt.step, accuracy: rt.accuracy });
    return files;
  }

  /** The prompt the engine now holds, of `nVirtual` tokens, shown as the current one. */
  function adopt(nVirtual, prompt, accuracy) {
    ctx.training.showVirtualTokens(nVirtual);
    ctx.training.drawPrompt(prompt);
    rt.set({ hasPrompt: true, training: false, accuracy });
    ctx.training.showAccuracy(accuracy);
  }

  /** Makes `item` (adapter files) the current prompt. */
  async function use(item) {
    ctx.training.clearRun();
    const { nVirtual, prompt } = await rt.client.request(REQUEST.IMPORT, {
      config: item.config, weights: item.weights, settings: trainSettings(state), modelName: ctx.modelName(),
    });
    adopt(nVirtual, prompt, item.accuracy);
  }

  /** Makes the host copy of a prompt's last view (`rt.promptCopy`) the current prompt. */
  async function restore(copy) {
    ctx.training.clearRun();
    const { values, nVirtual } = copy;
    adopt(nVirtual, await rt.client.request(REQUEST.RESTORE_PROMPT, { values, nVirtual, settings: trainSettings(state) }), undefined);
  }

  async function readFiles(files) {
    const list = [...files];
    if (list.length === 1 && list[0].name.endsWith('.zip')) {
      const entries = unzipSync(new Uint8Array(await list[0].arrayBuffer()));
      const find = (n) => Object.entries(entries).find(([k]) => k.split('/').pop() === n)?.[1];
      return { config: find(FILES.config), weights: find(FILES.weights) };
    }
    return {
      config: await list.find((f) => f.name === FILES.config)?.arrayBuffer(),
      weights: await list.find((f) => f.name === FILES.weights)?.arrayBuffer(),
    };
  }

  async function importFiles(files) {
    showError($('shelf-error'), null);
    const item = await readFiles(files);
    if (!item.config || !item.weights) {
      throw { message: `an adapter is two files, ${FILES.config} and ${FILES.weights} (or a .zip holding both): choose both` };
    }
    await use(item);
    await ctx.outputs.compare();
  }

  const onError = (e) => showError($('shelf-error'), e);
  $('export').addEventListener('click', () => rt.serial(async () => {
    const f = await shelve();
    download(`soft-prompt-${rt.task.name}.zip`, zipSync({ [FILES.config]: f.config, [FILES.weights]: f.weights }), 'application/zip');
  }).catch(onError));
  $('export-files').addEventListener('click', () => rt.serial(async () => {
    const f = await shelve();
    download(FILES.config, f.config, 'application/json');
    download(FILES.weights, f.weights, 'application/octet-stream');
  }).catch(onError));
  rt.onChange(() => {
    for (const id of ['export', 'export-files']) $(id).disabled = !rt.can().usePrompt;
  });
  $('import-files').addEventListener('change', (e) => {
    const { files } = e.target;
    rt.serial(() => importFiles(files)).catch(onError);
  });
  return { shelve, use, restore, onError };
}
