// Held-out examples with the predictions of no prompt, the text prompt and the soft prompt.
import { percent } from '../dom.js';

const COLUMNS = [['noPrompt', 'No prompt'], ['textPrompt', 'Text prompt'], ['softPrompt', 'Soft prompt']];
/** Rows shown: enough to see the pattern; the accuracies count every held-out example. */
const ROWS = 20;

export class OutputsTable {
  constructor(tableEl, accEl) {
    this.tableEl = tableEl;
    this.accEl = accEl;
  }

  clear() {
    this.tableEl.replaceChildren();
    this.accEl.replaceChildren();
  }

  update(evals, textPrompt) {
    this.accEl.replaceChildren(...COLUMNS.map(([key, title]) => {
      const s = document.createElement('span');
      s.className = 'acc';
      s.dataset.key = key;
      s.textContent = `${title}: ${percent(evals[key].accuracy)}`;
      return s;
    }));
    const table = document.createElement('table');
    table.innerHTML = `<caption>Held-out examples (first ${ROWS}); text prompt: <code></code></caption>`;
    table.querySelector('code').textContent = JSON.stringify(textPrompt);
    const head = table.createTHead().insertRow();
    for (const t of ['Input', 'Expected', ...COLUMNS.map(([, t]) => t)]) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = t;
      head.append(th);
    }
    const body = table.createTBody();
    evals.softPrompt.predictions.slice(0, ROWS).forEach((p, i) => {
      const tr = body.insertRow();
      tr.insertCell().textContent = p.input;
      tr.insertCell().textContent = p.expected;
      for (const [key] of COLUMNS) {
        const q = evals[key].predictions[i];
        const td = tr.insertCell();
        td.className = q.correct ? 'right' : 'wrong';
        td.textContent = `${q.correct ? '✓' : '✗'} ${q.predicted}`;
        td.setAttribute('aria-label', `${q.correct ? 'right' : 'wrong'}: ${q.predicted}`);
      }
    });
    this.tableEl.replaceChildren(table);
  }
}
