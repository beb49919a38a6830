// The outputs view: no prompt, text prompt and soft prompt on the held-out set; the try-it box
// and what the model reads.
import { REQUEST } from '../protocol.js';
import { $, showError } from '../dom.js';

/** Wait after the last keystroke before the try-it input is tokenized again. */
const TOKENIZE_DELAY_MS = 150;

export function outputsPanel(ctx) {
  const { state, rt, ui } = ctx;

  /** No prompt, the text prompt and the soft prompt on the held-out set. */
  async function compare() {
    const evals = await rt.client.request(REQUEST.COMPARE);
    ui.outputs.update(evals, rt.task.textPrompt);
  }

  /** The try-it input as the model reads it: the virtual tokens, then the text's tokens. */
  async function showTokens() {
    const chips = [];
    const chip = (label, title) => {
      const s = document.createElement('span');
      s.className = 'token';
      s.textContent = label;
      s.title = title;
      chips.push(s);
    };
    chip(`P1…P${state.virtualTokens}`, 'the soft prompt\'s virtual tokens');
    try {
      for (const t of await rt.client.request(REQUEST.TOKENIZE, { text: $('try-input').value })) {
        chip(JSON.stringify(t.text).slice(1, -1), `token ${t.id}`);
      }
    } catch (e) {
      chip(e.message, 'error');
    }
    $('try-tokens').replaceChildren(...chips);
  }

  $('evaluate').addEventListener('click', () => {
    showError($('outputs-error'), null);
    rt.serial(compare).catch((e) => showError($('outputs-error'), e));
  });
  rt.onChange(() => {
    for (const id of ['evaluate', 'try-go']) $(id).disabled = !rt.can().usePrompt;
  });
  $('try-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      $('try-output').textContent = await rt.client.request(REQUEST.GENERATE, { text: $('try-input').value });
    } catch (err) {
      $('try-output').textContent = err.message;
    }
  });
  let tokenizing = null;
  $('try-input').addEventListener('input', () => {
    clearTimeout(tokenizing);
    tokenizing = setTimeout(showTokens, TOKENIZE_DELAY_MS);
  });
  return { compare, showTokens };
}
