// The vocabulary's embeddings on their first two principal components (faint points), with the
// soft prompt's vectors and their paths drawn on top (ECharts scatter + lines).
import { chartIn, paced } from './chart.js';
import { percent } from '../dom.js';

const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
/** Points kept per trajectory: the path stays readable and cheap over long runs. */
const MAX_TRAIL = 200;

export class EmbeddingMap {
  constructor(el) {
    this.el = el;
    this.chart = chartIn(el);
    this.trails = [];
    this.vocab = [];
    this.redraw = paced(() => this.draw());
  }

  /** Once per model: the vocabulary points `[n, 2]` flattened and their token texts. */
  setVocabulary(points, labels, explained) {
    this.vocab = labels.map((t, i) => [points[2 * i], points[2 * i + 1], t]);
    this.trails = [];
    const pct = (x) => `${percent(x)} of variance`;
    this.chart.setOption({
      animation: false,
      grid: { left: 40, right: 16, top: 30, bottom: 40 },
      tooltip: { trigger: 'item', formatter: (p) => `${escape(p.value?.[2] ?? p.seriesName)}` },
      xAxis: { type: 'value', name: `PC1 (${pct(explained[0])})`, nameLocation: 'middle', nameGap: 24, scale: true },
      yAxis: { type: 'value', name: `PC2 (${pct(explained[1])})`, scale: true },
      // Given once per model: the prompt's drawings leave its 4,096 points' data as they are.
      series: [{ id: 'vocabulary', name: 'vocabulary', type: 'scatter', data: this.vocab, symbolSize: 3, large: true,
        itemStyle: { color: '#999', opacity: 0.35 } }],
    }, { notMerge: true });
    this.changed();
  }

  /** The prompt at one step: `[n_virtual, 2]` flattened. */
  addPrompt(points) {
    const n = points.length / 2;
    if (this.trails.length !== n) this.trails = Array.from({ length: n }, () => []);
    this.trails.forEach((t, i) => {
      t.push([points[2 * i], points[2 * i + 1]]);
      if (t.length > MAX_TRAIL) t.splice(1, 1); // keep the start, thin the middle
    });
    this.changed();
  }

  clearPrompt() {
    this.trails = [];
    this.changed();
  }

  /** The accessible name follows the prompt at once; the canvas follows at its pace. */
  changed() {
    const path = this.trails.length ? `, each with a path of ${this.trails[0].length} positions` : '';
    this.el.setAttribute('aria-label', `Map of ${this.vocab.length} vocabulary tokens on two principal components, `
      + `with ${this.trails.length} prompt vectors${path}.`);
    this.redraw();
  }

  /** The paths in one series and the prompt's vectors in another: a series costs the chart more than a point. */
  draw() {
    const color = (i) => COLORS[i % COLORS.length];
    // A path needs two points: the first snapshot's is its start twice.
    const paths = this.trails.map((t, i) => ({ coords: t.length > 1 ? t : [t[0], t[0]], lineStyle: { color: color(i) } }));
    const heads = this.trails.map((t, i) => ({ value: [...t[t.length - 1], `virtual token P${i + 1}`],
      itemStyle: { color: color(i) }, label: { formatter: `P${i + 1}` } }));
    this.chart.setOption({ series: [
      { id: 'vocabulary' }, // kept as setVocabulary drew it
      { id: 'paths', name: 'prompt paths', type: 'lines', coordinateSystem: 'cartesian2d', polyline: true,
        data: paths, lineStyle: { width: 1, opacity: 1 } },
      { id: 'prompt', name: 'prompt', type: 'scatter', data: heads, symbolSize: 10,
        itemStyle: { borderColor: '#000' }, label: { show: true, position: 'right' } },
    ] });
  }
}

function escape(s) {
  return String(s).replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);
}
