// Small DOM helpers the panels share.

export const $ = (id) => document.getElementById(id);

/**
 * Shows an error `{message, line?}` in `el`, or hides `el` when there is none. `line` is a task
 * file's line, from the engine; a JavaScript Error's own `line` (JavaScriptCore's: where the
 * Error was made) is never shown.
 */
export function showError(el, e) {
  el.hidden = !e;
  const line = e instanceof Error ? undefined : e?.line;
  el.textContent = e ? (line ? `Line ${line}: ${e.message}` : e.message ?? String(e)) : '';
}

export function fmtCount(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

export const percent = (x) => `${(x * 100).toFixed(1)}%`;

export function download(name, bytes, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
