// The prompt matrix `[n_virtual, d_model]` as a heatmap (ECharts), diverging around zero.
import { chartIn } from './chart.js';

export class PromptHeatmap {
  constructor(el) {
    this.el = el;
    this.chart = chartIn(el);
  }

  update({ values, nVirtual, dModel }) {
    const data = [];
    let max = 1e-6;
    for (let i = 0; i < nVirtual; i++) {
      for (let j = 0; j < dModel; j++) {
        const v = values[i * dModel + j];
        max = Math.max(max, Math.abs(v));
        data.push([j, i, v]);
      }
    }
    this.chart.setOption({
      animation: false,
      grid: { left: 40, right: 16, top: 8, bottom: 56 },
      tooltip: { formatter: (p) => `P${p.data[1] + 1}, dim ${p.data[0]}: ${p.data[2].toFixed(3)}` },
      xAxis: { type: 'category', data: [...Array(dModel).keys()], name: 'dimension', nameLocation: 'middle',
        nameGap: 24, axisLabel: { interval: Math.ceil(dModel / 8) - 1 } },
      yAxis: { type: 'category', data: [...Array(nVirtual).keys()].map((i) => `P${i + 1}`), inverse: true },
      visualMap: { min: -max, max, calculable: false, orient: 'horizontal', left: 'center', bottom: 0,
        itemHeight: 120, inRange: { color: ['#2166ac', '#f7f7f7', '#b2182b'] }, precision: 2 },
      series: [{ type: 'heatmap', data, progressive: 0 }],
    });
    this.el.setAttribute('aria-label', `Heatmap of the prompt matrix: ${nVirtual} virtual tokens by ${dModel} dimensions, values from ${(-max).toFixed(2)} to ${max.toFixed(2)}.`);
  }
}
