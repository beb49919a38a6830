// An ECharts chart in `el` (canvas: fast with thousands of points) that follows the element's size.
import * as echarts from '../vendor/echarts.esm.min.js';

export function chartIn(el) {
  const chart = echarts.init(el, null, { renderer: 'canvas' });
  new ResizeObserver(() => chart.resize()).observe(el);
  return chart;
}
