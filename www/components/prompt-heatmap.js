// The prompt matrix `[n_virtual, d_model]` as a heatmap, diverging around zero. Drawn on a plain
// canvas, one pixel per value scaled up: ECharts took ~60 ms of the page's thread per drawing
// (a shape per cell), this takes under one.
import { paced } from './chart.js';

/** The diverging scale's ends and middle (ColorBrewer RdBu): negative, zero, positive. */
const SCALE = [[0x21, 0x66, 0xac], [0xf7, 0xf7, 0xf7], [0xb2, 0x18, 0x2b]];
/** The plot's margins in CSS pixels: row names left, dimension ticks and the colour key below. */
const MARGIN = { left: 40, right: 16, top: 8, bottom: 56 };
const FONT = '12px system-ui, sans-serif';
const INK = '#555';

export class PromptHeatmap {
  constructor(el) {
    this.el = el;
    this.canvas = document.createElement('canvas');
    // The element's size at once when it changes; its pixels follow in the drawing.
    Object.assign(this.canvas.style, { display: 'block', width: '100%', height: '100%' });
    el.replaceChildren(this.canvas);
    this.view = null;
    this.max = 0; // the view's largest magnitude: the colour scale's ends
    this.size = { width: 0, height: 0 }; // the element's, from its observer (reading it forces a layout)
    this.redraw = paced(() => this.draw());
    new ResizeObserver(([entry]) => {
      this.size = entry.contentRect;
      this.draw(); // under a millisecond: no need to wait for the pace
    }).observe(el);
    this.canvas.addEventListener('mousemove', (ev) => this.hover(ev));
  }

  update(view) {
    this.view = view;
    this.max = largest(view.values);
    const max = this.max.toFixed(2);
    this.el.setAttribute('aria-label', `Heatmap of the prompt matrix: ${view.nVirtual} virtual tokens by ${view.dModel} dimensions, values from -${max} to ${max}.`);
    this.redraw();
  }

  /** The plot's rectangle in CSS pixels. */
  plot() {
    const { width, height } = this.size;
    return { x: MARGIN.left, y: MARGIN.top, w: Math.max(1, width - MARGIN.left - MARGIN.right), h: Math.max(1, height - MARGIN.top - MARGIN.bottom), width, height };
  }

  draw() {
    const p = this.plot();
    const ratio = window.devicePixelRatio || 1;
    Object.assign(this.canvas, { width: Math.round(p.width * ratio), height: Math.round(p.height * ratio) });
    const ctx = this.canvas.getContext('2d');
    ctx.scale(ratio, ratio);
    if (!this.view) return;
    const { values, nVirtual, dModel } = this.view;
    const { max } = this;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cellImage(values, nVirtual, dModel, max), p.x, p.y, p.w, p.h);
    ctx.font = FONT;
    ctx.fillStyle = INK;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i < nVirtual; i++) ctx.fillText(`P${i + 1}`, p.x - 6, p.y + (i + 0.5) * (p.h / nVirtual));
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const every = Math.ceil(dModel / 8);
    for (let j = 0; j < dModel; j += every) ctx.fillText(String(j), p.x + (j + 0.5) * (p.w / dModel), p.y + p.h + 4);
    ctx.fillText('dimension', p.x + p.w / 2, p.y + p.h + 20);
    key(ctx, p.x + p.w / 2, p.height - 14, max);
  }

  /** The value under the pointer, as the canvas's tooltip. */
  hover(ev) {
    if (!this.view) return;
    const p = this.plot();
    const rect = this.canvas.getBoundingClientRect();
    const j = Math.floor(((ev.clientX - rect.left - p.x) / p.w) * this.view.dModel);
    const i = Math.floor(((ev.clientY - rect.top - p.y) / p.h) * this.view.nVirtual);
    const inside = i >= 0 && i < this.view.nVirtual && j >= 0 && j < this.view.dModel;
    this.canvas.title = inside ? `P${i + 1}, dim ${j}: ${this.view.values[i * this.view.dModel + j].toFixed(3)}` : '';
  }
}

/** The colour of `v` on the scale from -max to max. */
function colour(v, max) {
  const t = Math.max(-1, Math.min(1, v / max));
  const [from, to] = t < 0 ? [SCALE[1], SCALE[0]] : [SCALE[1], SCALE[2]];
  const a = Math.abs(t);
  return from.map((c, k) => Math.round(c + (to[k] - c) * a));
}

/** One pixel per value: `[n_virtual, d_model]` as an image to scale onto the plot. */
function cellImage(values, rows, cols, max) {
  const image = new ImageData(cols, rows);
  values.forEach((v, k) => {
    image.data.set([...colour(v, max), 255], 4 * k);
  });
  const canvas = new OffscreenCanvas(cols, rows);
  canvas.getContext('2d').putImageData(image, 0, 0);
  return canvas;
}

/** The colour key centred at (cx, y): the scale from -max to max, its ends written beside it. */
function key(ctx, cx, y, max) {
  const w = 120;
  const gradient = ctx.createLinearGradient(cx - w / 2, 0, cx + w / 2, 0);
  SCALE.forEach((c, k) => gradient.addColorStop(k / 2, `rgb(${c.join(',')})`));
  ctx.fillStyle = gradient;
  ctx.fillRect(cx - w / 2, y - 5, w, 10);
  ctx.fillStyle = INK;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  ctx.fillText((-max).toFixed(2), cx - w / 2 - 6, y);
  ctx.textAlign = 'left';
  ctx.fillText(max.toFixed(2), cx + w / 2 + 6, y);
}

/** The largest magnitude: the colour scale runs from its negative to it. */
function largest(values) {
  let max = 1e-6;
  for (const v of values) max = Math.max(max, Math.abs(v));
  return max;
}
