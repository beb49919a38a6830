// Prompts as PEFT adapters: the shelf (one trained prompt per task on this model), export as a
// zip or two files, import.
import { $, download, showError } from '../dom.js';
import { trainSettings } from '../state.js';
import { zipSync, unzipSync } from '../vendor/fflate.js';

export function adapters(ctx) {
  const { state, rt, ui } = ctx;

  /** The current prompt onto the shelf (and its files, for export). */
  async function shelve() {
    const files = await rt.client.request('export', { baseModel: rt.modelSource?.base ?? '' });
    ui.shelf.put(rt.task.name, { ...files, nVirtual: state.virtualTokens, steps: rt.step, accuracy: rt.accuracy });
    return files;
  }

  /** The prompt the engine now holds, of `nVirtual` tokens, shown as the current one. */
  function adopt(nVirtual, prompt, accuracy) {
    state.virtualTokens = nVirtual;
    $('s-virtualTokens').value = nVirtual;
    ctx.saveUrl();
    ctx.training.drawPrompt(prompt);
    rt.set({ hasPrompt: true, training: false, accuracy });
    ctx.training.showAccuracy(accuracy);
  }

  /** Makes `item` (adapter files) the current prompt. */
  async function use(item) {
    ctx.training.clearRun();
    const { nVirtual, prompt } = await rt.client.request('import', { config: item.config, weights: item.weights, settings: trainSettings(state) });
    adopt(nVirtual, prompt, item.accuracy);
  }

  /** Makes the host copy of a prompt's last view (`rt.promptCopy`) the current prompt. */
  async function restore(copy) {
    ctx.training.clearRun();
    const { values, nVirtual } = copy;
    adopt(nVirtual, await rt.client.request('restore-prompt', { values, nVirtual, settings: trainSettings(state) }), undefined);
  }

  async function readFiles(files) {
    const list = [...files];
    if (list.length === 1 && list[0].name.endsWith('.zip')) {
      const entries = unzipSync(new Uint8Array(await list[0].arrayBuffer()));
      const find = (n) => Object.entries(entries).find(([k]) => k.split('/').pop() === n)?.[1];
      return { config: find('adapter_config.json'), weights: find('adapter_model.safetensors') };
    }
    return {
      config: await list.find((f) => f.name === 'adapter_config.json')?.arrayBuffer(),
      weights: await list.find((f) => f.name === 'adapter_model.safetensors')?.arrayBuffer(),
    };
  }

  async function importFiles(files) {
    showError($('shelf-error'), null);
    const item = await readFiles(files);
    if (!item.config || !item.weights) {
      throw { message: 'an adapter is two files, adapter_config.json and adapter_model.safetensors (or a .zip holding both): choose both' };
    }
    await use(item);
    await ctx.outputs.compare();
  }

  const onError = (e) => showError($('shelf-error'), e);
  $('export').addEventListener('click', () => rt.serial(async () => {
    const f = await shelve();
    download(`soft-prompt-${rt.task.name}.zip`, zipSync({ 'adapter_config.json': f.config, 'adapter_model.safetensors': f.weights }), 'application/zip');
  }).catch(onError));
  $('export-files').addEventListener('click', () => rt.serial(async () => {
    const f = await shelve();
    download('adapter_config.json', f.config, 'application/json');
    download('adapter_model.safetensors', f.weights, 'application/octet-stream');
  }).catch(onError));
  $('import-files').addEventListener('change', (e) => {
    const { files } = e.target;
    rt.serial(() => importFiles(files)).catch(onError);
  });
  return { shelve, use, restore };
}
