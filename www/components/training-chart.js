// Loss and held-out accuracy by step (ECharts line chart, two axes), with the frozen model's loss
// with no prompt as a reference line: training starts near it and should fall far below it.
import { chartIn, paced } from './chart.js';

export class TrainingChart {
  constructor(el) {
    this.el = el;
    this.chart = chartIn(el);
    this.loss = [];
    this.acc = [];
    this.reference = null;
    this.redraw = paced(() => this.draw());
    this.chart.setOption({
      animation: false,
      grid: { left: 48, right: 48, top: 30, bottom: 36 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 24, min: 0 },
      yAxis: [
        // No axis names: the legend names both series, and they would collide with it when narrow.
        { type: 'value', scale: true },
        { type: 'value', min: 0, max: 100, axisLabel: { formatter: '{value}%' } },
      ],
      series: [
        { name: 'training loss', type: 'line', showSymbol: false, data: [] },
        { name: 'held-out accuracy', type: 'line', yAxisIndex: 1, data: [] },
      ],
    });
  }

  /** The loss with no prompt on this task (null: none). */
  setReference(loss) {
    this.reference = loss;
    this.changed();
  }

  clear() {
    this.loss = [];
    this.acc = [];
    this.changed();
  }

  addLoss(step, loss) {
    this.loss.push([step, loss]);
    this.changed();
  }

  addAccuracy(step, accuracy) {
    this.acc.push([step, Math.round(accuracy * 1000) / 10]);
    this.changed();
  }

  /** The accessible name follows the data at once; the canvas follows at its pace. */
  changed() {
    this.el.setAttribute('aria-label', this.summary());
    this.redraw();
  }

  draw() {
    const markLine = this.reference == null ? { data: [] } : {
      silent: true, symbol: 'none', lineStyle: { type: 'dashed', color: '#888' },
      label: { formatter: `no prompt ${this.reference.toFixed(2)}`, position: 'insideEndTop', color: '#555' },
      data: [{ yAxis: this.reference }],
    };
    this.chart.setOption({ series: [{ data: this.loss, markLine }, { data: this.acc }] });
  }

  /** What the chart shows, in words (its accessible name). */
  summary() {
    if (!this.loss.length) return 'Loss and held-out accuracy by step: no steps yet.';
    const [first, last] = [this.loss[0], this.loss[this.loss.length - 1]];
    const acc = this.acc.length ? ` Held-out accuracy ${this.acc[this.acc.length - 1][1]}% at step ${this.acc[this.acc.length - 1][0]}.` : '';
    const ref = this.reference == null ? '' : ` With no prompt the loss is ${this.reference.toFixed(4)}.`;
    return `Training loss went from ${first[1].toFixed(4)} at step ${first[0]} to ${last[1].toFixed(4)} at step ${last[0]}.${acc}${ref}`;
  }
}
