// Trained prompts kept by task (as PEFT adapter bytes), for swapping on the same frozen model.
import { percent } from '../dom.js';

export class PromptShelf {
  constructor(listEl, onUse) {
    this.listEl = listEl;
    this.onUse = onUse;
    this.items = new Map(); // task -> {config, weights, accuracy, steps}
  }

  put(task, item) {
    this.items.set(task, item);
    this.draw();
  }

  clear() {
    this.items.clear();
    this.draw();
  }

  get(task) {
    return this.items.get(task);
  }

  draw() {
    this.listEl.replaceChildren(...[...this.items].map(([task, it]) => {
      const li = document.createElement('li');
      const acc = it.accuracy === undefined ? '' : `, held-out ${percent(it.accuracy)}`;
      li.textContent = `${task}: ${it.nVirtual} virtual tokens, ${it.steps} steps${acc} `;
      const use = document.createElement('button');
      use.type = 'button';
      use.textContent = `Use for ${task}`;
      use.addEventListener('click', () => this.onUse(task));
      li.append(use);
      return li;
    }));
  }
}
