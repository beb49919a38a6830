// Prompts as PEFT adapters: the shelf (one trained prompt per task on this model), export as a
// zip or two files, import; a prompt in a link (share-link.js) or on the Hub (`?adapter=`),
// shown once its model has loaded.
import { REQUEST } from '../protocol.js';
import { $, download, showError } from '../dom.js';
import { linkTo, parseField, trainSettings } from '../state.js';
import { fetchBytes } from '../model-files.js';
import { LINK_WARN_BYTES, promptFragment, promptFromFragment } from '../share-link.js';
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

  /** Makes `item` (adapter files) the current prompt; one refused leaves the current one shown. */
  async function use(item) {
    const { nVirtual, prompt } = await rt.client.request(REQUEST.IMPORT, {
      config: item.config, weights: item.weights, settings: trainSettings(state), modelName: ctx.modelName(),
    });
    ctx.training.clearRun();
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

  /**
   * The prompt the page was linked with, until its model has loaded: `{files}` from the link's
   * fragment, or `{hub}` (an adapter's Hub id or folder address) to fetch.
   */
  let linked = null;
  try {
    const files = promptFromFragment(location.hash);
    if (files) linked = { files };
  } catch (e) {
    showError($('shelf-error'), { message: `The prompt in this link was not loaded: ${e.message}` });
  }
  if (!linked && state.adapter) linked = { hub: state.adapter };
  /** The task a linked prompt was shown on: the link's fragment stays in the URL until it changes. */
  let shownOn = null;

  async function linkedFiles({ files, hub }) {
    if (files) return files;
    const { base } = ctx.sourceFor(hub);
    return {
      config: await fetchBytes(new URL(FILES.config, base).href),
      weights: await fetchBytes(new URL(FILES.weights, base).href),
    };
  }

  /**
   * Shows the linked prompt, its outputs and held-out accuracy, once the link's model is the one
   * loaded (a model not yet stored waits for the visitor's Load). Runs after every model load.
   */
  async function showLinked() {
    if (!linked || !ctx.linkedModelLoaded()) return;
    const link = linked;
    linked = null;
    await show(link);
  }

  /** Makes a prompt from a link or the Hub the current one, with its outputs and accuracy. */
  async function show(link) {
    try {
      await use(await linkedFiles(link));
      // The prompt's own accuracy first; the comparison's two baselines take twice as long.
      const { accuracy } = await rt.client.request(REQUEST.EVALUATE);
      rt.set({ accuracy });
      ctx.training.showAccuracy(accuracy);
      if (link.files) shownOn = rt.task.name;
      await ctx.outputs.compare();
    } catch (e) {
      showError($('shelf-error'), { message: `${link.hub ? `The adapter ${link.hub}` : 'The prompt in this link'} was not loaded: ${e.message}` });
    }
  }

  async function share() {
    const files = await rt.client.request(REQUEST.EXPORT, { baseModel: ctx.modelName(), precision: 'f16' });
    const link = `${linkTo(state)}${promptFragment(files)}`;
    $('share-link').value = link;
    $('share-link').hidden = false;
    const kb = (link.length / 1024).toFixed(1);
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch { /* no clipboard here (an iframe, an insecure origin): the link is shown to copy */ }
    $('share-note').textContent = `${copied ? 'Copied: a' : 'A'} link of ${kb} KB with this prompt (in f16), the model, task and settings.`
      + (link.length > LINK_WARN_BYTES ? ' Some mail and chat apps cut links this long: export the adapter instead.' : '');
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
  $('share').addEventListener('click', () => rt.serial(share).catch(onError));
  $('hub-adapter').value = state.adapter;
  $('hub-adapter-form').addEventListener('submit', (e) => {
    e.preventDefault();
    showError($('shelf-error'), null);
    const ref = parseField('adapter', $('hub-adapter').value.trim());
    if (!ref) {
      onError({ message: 'an adapter is named by its Hub id (owner/name) or its folder\'s http(s) address' });
      return;
    }
    state.adapter = ref;
    ctx.saveUrl();
    rt.serial(() => show({ hub: ref })).catch(onError);
  });
  rt.onChange(() => {
    for (const id of ['export', 'export-files', 'share']) $(id).disabled = !rt.can().usePrompt;
    // The linked prompt is no longer the one shown: the link's fragment goes from the URL.
    if (shownOn && (rt.training || rt.task?.name !== shownOn)) {
      shownOn = null;
      history.replaceState(null, '', `${location.pathname}${location.search}`);
    }
  });
  $('import-files').addEventListener('change', (e) => {
    const { files } = e.target;
    rt.serial(() => importFiles(files)).catch(onError);
  });
  return { shelve, use, restore, showLinked, onError };
}
