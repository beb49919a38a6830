// An ECharts chart in `el` (canvas: fast with thousands of points) that follows the element's size,
// and the pacing of charts that redraw while a run streams in.
import * as echarts from '../vendor/echarts.esm.min.js';

/**
 * Two drawings of one chart are at least this far apart. A step can come every 50 ms, and one
 * drawing costs 20–60 ms of the page's thread (profiled: drawing every step took 40% of a core,
 * which two cores' engines then lacked).
 */
export const REDRAW_MS = 500;

export function chartIn(el) {
  const chart = echarts.init(el, null, { renderer: 'canvas' });
  // zrender keeps its frame loop running 10 frames after each drawing; every frame costs the page a
  // commit (profiled: ~45 frames/s while training, ten times the drawings). A drawing wakes it.
  chart.getZr().setSleepAfterStill(1);
  new ResizeObserver(() => chart.resize()).observe(el);
  return chart;
}

/**
 * `draw` paced: calling the returned function asks for a drawing of the latest data, which comes
 * in an animation frame at least REDRAW_MS after the last one; asks in between merge into it.
 */
export function paced(draw) {
  let timer = null;
  let last = -Infinity;
  const run = () => {
    timer = null;
    last = performance.now();
    draw();
  };
  return () => {
    if (timer !== null) return;
    const wait = Math.max(0, last + REDRAW_MS - performance.now());
    timer = setTimeout(() => requestAnimationFrame(run), wait);
  };
}
