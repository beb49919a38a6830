// An experiment's result as it comes in: held-out accuracy of every run (one dot per seed) and
// the mean of each setting; for transfer, accuracy by step, one line per setting (its mean) with
// each seed's run faint behind it.
import { chartIn } from './chart.js';
import { percent as pct } from '../dom.js';

export class ExperimentChart {
  constructor(el) {
    this.el = el;
    this.chart = null; // made when the first run comes in
    this.clear();
  }

  clear() {
    this.arms = []; // the engine's arm summaries so far: {label, mean, runs, curve}
    this.runs = []; // {arm, seed, accuracy, curve}
    this.draw();
  }

  /** A finished run, and every arm's summary with it (src/experiments.rs `ArmSummary`). */
  addRun(run, arms) {
    this.arms = arms;
    this.runs.push(run);
    this.draw();
  }

  /** The chart as a PNG data URL (white background), for download. */
  png() {
    return this.chart?.getDataURL({ type: 'png', pixelRatio: 2, backgroundColor: '#fff' });
  }

  draw() {
    if (!this.runs.length && !this.chart) return;
    this.chart ??= chartIn(this.el);
    const curves = this.runs.filter((r) => r.curve.length);
    const option = curves.length ? this.curveOption(curves) : this.armOption();
    this.chart.setOption({ animation: false, tooltip: { trigger: 'item' }, legend: { top: 0 }, grid: { left: 48, right: 16, top: 36, bottom: 60 }, ...option }, { notMerge: true });
  }

  armOption() {
    const labels = this.arms.map((a) => a.label);
    const means = this.arms.map((a) => (a.runs ? a.mean : null));
    this.el.setAttribute('aria-label', `Held-out accuracy by setting: ${labels.map((l, i) => `${l} ${means[i] == null ? 'pending' : pct(means[i])}`).join('; ')}.`);
    return {
      xAxis: { type: 'category', data: labels, axisLabel: { interval: 0, rotate: labels.some((l) => l.length > 12) ? 20 : 0 } },
      yAxis: { type: 'value', min: 0, max: 1, name: 'held-out accuracy', axisLabel: { formatter: (v) => `${v * 100}%` } },
      series: [
        { name: 'each seed', type: 'scatter', symbolSize: 7, itemStyle: { color: '#1f77b4', opacity: 0.6 },
          data: this.runs.map((r) => [r.arm, r.accuracy]), tooltip: { formatter: (p) => `${labels[p.data[0]]}: ${pct(p.data[1])}` } },
        { name: 'mean', type: 'line', symbol: 'diamond', symbolSize: 11, itemStyle: { color: '#d62728' }, lineStyle: { width: 1 },
          data: means, connectNulls: true, tooltip: { formatter: (p) => `${labels[p.dataIndex]}: mean ${pct(p.data)}` } },
      ],
    };
  }

  curveOption(curves) {
    const colors = ['#d62728', '#1f77b4', '#2ca02c'];
    const arms = [...new Set(curves.map((r) => r.arm))];
    const series = [];
    arms.forEach((arm, k) => {
      const runs = curves.filter((r) => r.arm === arm);
      const color = colors[k % colors.length];
      for (const r of runs) {
        series.push({ name: `${this.arms[arm].label} (seed ${r.seed})`, type: 'line', data: r.curve, showSymbol: false,
          lineStyle: { color, width: 1, opacity: 0.3 }, itemStyle: { color }, silent: true, legendHoverLink: false });
      }
      series.push({ name: this.arms[arm].label, type: 'line', data: this.arms[arm].curve, symbolSize: 6, lineStyle: { color, width: 2 }, itemStyle: { color } });
    });
    this.el.setAttribute('aria-label', `Held-out accuracy by training step: ${arms.map((a) => {
      const { label, curve } = this.arms[a];
      return `${label} ends at ${pct(curve[curve.length - 1][1])}`;
    }).join('; ')}.`);
    return {
      legend: { top: 0, data: arms.map((a) => this.arms[a].label) },
      xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 28 },
      yAxis: { type: 'value', min: 0, max: 1, name: 'held-out accuracy', axisLabel: { formatter: (v) => `${v * 100}%` } },
      series,
    };
  }
}
