// Charts drawn as inline SVG: a line chart (a series per name over time) and a bar chart.
import { svg, h } from "./ui.js";

const W = 640, H = 220, PAD = { l: 48, r: 12, t: 12, b: 28 };
const COLOURS = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c"];

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

// A y axis from 0 to a round top: four steps of a whole number (quarters up to 1).
function axisTop(max) {
  const step = max <= 1 ? 0.25 : Math.ceil(max / 4);
  return { step, top: max <= 1 ? 1 : step * 4 };
}

function yAxis({ step, top }, y) {
  const lines = [];
  for (let v = 0; v <= top + 1e-9; v += step) {
    const value = Math.round(v * 100) / 100;
    lines.push(svg("g", {},
      svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(value), y2: y(value), class: "grid" }),
      svg("text", { x: PAD.l - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, String(value))));
  }
  return lines;
}

// series: [{name, points: [[Date|label, number], ...]}]
export function lineChart(series, { label, format } = {}) {
  const all = series.flatMap((s) => s.points);
  const xs = all.map(([x]) => +x);
  const axis = axisTop(Math.max(...all.map(([, v]) => v), 0));
  const x = scale(Math.min(...xs), Math.max(...xs), PAD.l, W - PAD.r);
  const y = scale(0, axis.top, H - PAD.b, PAD.t);
  const first = all.length ? all[0][0] : null;
  const last = all.length ? all[all.length - 1][0] : null;
  const fmt = format || ((d) => (d instanceof Date ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) : String(d)));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart" },
    svg("title", {}, label),
    ...yAxis(axis, y),
    ...series.map((s, i) => svg("g", { class: "series", "data-series": s.name },
      svg("polyline", { points: s.points.map(([px, v]) => `${x(+px)},${y(v)}`).join(" "), fill: "none", stroke: COLOURS[i % 5], "stroke-width": 2 }),
      ...s.points.map(([px, v]) => svg("circle", { cx: x(+px), cy: y(v), r: 3, fill: COLOURS[i % 5] },
        svg("title", {}, `${s.name} ${fmt(px)}: ${v}`))))),
    first !== null ? svg("text", { x: PAD.l, y: H - 8, class: "tick" }, fmt(first)) : null,
    last !== null ? svg("text", { x: W - PAD.r, y: H - 8, "text-anchor": "end", class: "tick" }, fmt(last)) : null);
  return h("figure", {}, chart, legend(series.map((s) => s.name)));
}

// bars: [{label, value}]
export function barChart(bars, { label, unit = "" } = {}) {
  const max = Math.max(...bars.map((b) => b.value), 0) || 1;
  const rowH = 26;
  const height = PAD.t + bars.length * rowH + 8;
  const x = scale(0, max, 150, W - 60);
  return h("figure", {}, svg("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": label, class: "chart" },
    svg("title", {}, label),
    ...bars.map((b, i) => svg("g", { class: "bar", "data-label": b.label, "data-value": b.value },
      svg("text", { x: 142, y: PAD.t + i * rowH + 16, "text-anchor": "end", class: "tick" }, b.label),
      svg("rect", { x: 150, y: PAD.t + i * rowH + 4, width: Math.max(1, x(b.value) - 150), height: rowH - 8, fill: COLOURS[0] }),
      svg("text", { x: x(b.value) + 6, y: PAD.t + i * rowH + 16, class: "tick" }, `${b.value}${unit}`)))));
}

function legend(names) {
  if (names.length < 2) return null;
  return h("figcaption", { class: "legend" }, names.map((n, i) => h("span", {},
    h("span", { class: `swatch swatch-${i % 5}`, "aria-hidden": "true" }), n)));
}
