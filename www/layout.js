// The page's layout: embed mode, which views are shown (one checkbox each, kept in the URL), and
// the embed code for course pages. Writes only the body's class, the views' visibility, the
// toggles and the copy-embed status.
import { $ } from './dom.js';
import { PANELS, linkTo } from './state.js';

function applyLayout(state) {
  document.body.classList.toggle('embed', state.embed);
  for (const p of PANELS) $(p).hidden = !state.panels.includes(p);
}

/** One checkbox per view; the choice is part of the URL (and of the embed code). */
function panelToggles(state, saveUrl) {
  for (const p of PANELS) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = state.panels.includes(p);
    box.addEventListener('change', () => {
      state.panels = PANELS.filter((q) => (q === p ? box.checked : state.panels.includes(q)));
      saveUrl();
      applyLayout(state);
    });
    label.append(box, ` ${$(`${p}-title`).textContent}`);
    $('panel-toggles').append(label);
  }
}

async function copyEmbed(state) {
  const src = linkTo({ ...state, embed: true });
  // The attributes of README's snippet ("Embedding in course material").
  const code = `<iframe src="${src.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}" title="Soft Prompt Lab" `
    + 'width="100%" height="760" style="border:0" allow="clipboard-write"></iframe>';
  try {
    await navigator.clipboard.writeText(code);
    $('copy-status').textContent = 'Embed code copied.';
  } catch {
    $('copy-status').textContent = code;
  }
}

/** Shows the views `state` asks for and wires the toggles and the embed button (`saveUrl` keeps a change). */
export function layout(state, saveUrl) {
  applyLayout(state);
  panelToggles(state, saveUrl);
  $('copy-embed').addEventListener('click', () => copyEmbed(state));
}
