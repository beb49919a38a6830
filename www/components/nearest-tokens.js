// Each virtual token's nearest vocabulary tokens by cosine similarity (Lester et al. 2021, §7).

export class NearestTokens {
  constructor(el) {
    this.el = el;
  }

  update(nearest) {
    const table = document.createElement('table');
    table.innerHTML = '<caption class="sr-only">Nearest vocabulary tokens of each virtual token</caption>'
      + '<thead><tr><th scope="col">Virtual token</th><th scope="col">Nearest tokens (cosine similarity)</th></tr></thead>';
    const body = table.createTBody();
    nearest.forEach((row, i) => {
      const tr = body.insertRow();
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = `P${i + 1}`;
      tr.append(th);
      const td = tr.insertCell();
      for (const n of row) {
        const tok = document.createElement('span');
        tok.className = 'token';
        tok.textContent = JSON.stringify(n.text).slice(1, -1);
        const cos = document.createElement('small');
        cos.textContent = ` ${n.cosine.toFixed(2)}`;
        tok.append(cos);
        td.append(tok, ' ');
      }
    });
    this.el.replaceChildren(table);
  }
}
