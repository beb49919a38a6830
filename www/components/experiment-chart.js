// An experiment's result as it comes in: held-out accuracy of every run (one dot per seed) and
// the mean of each setting; for transfer, accuracy by step, one line per setting (its mean) with
// each seed's run faint behind it; for scale, accuracy against parameter count on a log axis, one
// line per method (Lester et al. 2021, Fig. 1).
import { chartIn } from './chart.js';
import { percent as pct } from '../dom.js';

export class ExperimentChart {
  constructor(el) {
    this.el = el;
    this.chart = null; // made when the first run comes in
    this.clear();
  }

  clear() {
    this.arms = []; // the engine's arm summaries so far: {label, model, mean, runs, curve}
    this.runs = []; // {arm, seed, accuracy, curve}
    this.models = []; // scale's family: {name, parameters} (0 until its first run)
    this.draw();
  }

  /**
   * A finished run, and every arm's summary with it (src/experiments/summary.rs `ArmSummary`), and the
   * family's models for scale.
   */
  addRun(run, arms, models = []) {
    this.arms = arms;
    this.models = models;
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
    let option;
    if (curves.length) option = this.curveOption(curves);
    else if (this.models.length) option = this.scaleOption();
    else option = this.armOption();
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

  scaleOption() {
    const colors = ['#7f7f7f', '#1f77b4', '#d62728'];
    const params = (arm) => this.models[arm.model]?.parameters || 0;
    const methods = [...new Set(this.arms.map((a) => a.label))];
    const series = [];
    methods.forEach((method, k) => {
      const color = colors[k % colors.length];
      const arms = this.arms.filter((a) => a.label === method && a.runs && params(a));
      series.push({ name: method, type: 'line', symbol: 'diamond', symbolSize: 10, lineStyle: { color, width: 2 }, itemStyle: { color },
        data: arms.map((a) => [params(a), a.mean]), tooltip: { formatter: (p) => `${method}, ${(p.data[0] / 1e6).toFixed(2)} M: mean ${pct(p.data[1])}` } });
      const runs = this.runs.filter((r) => this.arms[r.arm]?.label === method);
      series.push({ name: method, type: 'scatter', symbolSize: 6, itemStyle: { color, opacity: 0.45 },
        data: runs.map((r) => [params(this.arms[r.arm]), r.accuracy]), tooltip: { formatter: (p) => `${method}, seed: ${pct(p.data[1])}` } });
    });
    this.el.setAttribute('aria-label', `Held-out accuracy by model size: ${this.arms.filter((a) => a.runs).map((a) => `${this.models[a.model]?.name} ${a.label} ${pct(a.mean)}`).join('; ')}.`);
    return {
      legend: { top: 0, data: methods },
      xAxis: { type: 'log', name: 'parameters', nameLocation: 'middle', nameGap: 28, axisLabel: { formatter: (v) => `${v / 1e6} M` } },
      yAxis: { type: 'value', min: 0, max: 1, name: 'held-out accuracy', axisLabel: { formatter: (v) => `${v * 100}%` } },
      series,
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
