// Line charts in plain SVG: no library, no inline style (the page's CSP forbids it).
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 360, H = 120, PAD_L = 42, PAD_B = 18, PAD_T = 8, PAD_R = 6;

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // series: [{name, cls, points: [[t_seconds, value_or_null], ...]}]; spanS: the x range up to now.
  function lineChart(svg, series, opts) {
    const spanS = opts.spanS, now = opts.now, unit = opts.unit || "";
    const format = opts.format || ((v) => String(v));
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    let max = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
    max = niceMax(max);
    const x = (t) => PAD_L + ((t - (now - spanS)) / spanS) * (W - PAD_L - PAD_R);
    const y = (v) => H - PAD_B - (v / max) * (H - PAD_B - PAD_T);
    for (const frac of [0, 0.5, 1]) {
      const yy = y(max * frac);
      svg.appendChild(el("line", { x1: PAD_L, x2: W - PAD_R, y1: yy, y2: yy, class: "grid" }));
      svg.appendChild(el("text", { x: PAD_L - 4, y: yy + 4, class: "axis", "text-anchor": "end" }, format(max * frac) + unit));
    }
    svg.appendChild(el("text", { x: PAD_L, y: H - 4, class: "axis" }, `-${Math.round(spanS / 60)} min`));
    svg.appendChild(el("text", { x: W - PAD_R, y: H - 4, class: "axis", "text-anchor": "end" }, "now"));
    let plotted = 0;
    series.forEach((s, i) => {
      const pts = s.points.filter(([t, v]) => v !== null && t >= now - spanS);
      plotted += pts.length;
      const line = el("polyline", {
        class: `series ${s.cls}`,
        points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
        "data-points": pts.length,
      });
      svg.appendChild(line);
      svg.appendChild(el("text", { x: W - PAD_R - 60 * (series.length - i), y: PAD_T + 8, class: `legend ${s.cls}` }, s.name));
    });
    svg.setAttribute("data-points", String(plotted));
    if (!plotted) {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, class: "axis", "text-anchor": "middle" }, "no traffic yet"));
    }
  }

  // Two bars: the weight set and the share served, in percent.
  function shareBars(svg, setPct, servedPct) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 200 34");
    const rows = [["set", setPct, "bar-set"], ["served", servedPct, "bar-served"]];
    rows.forEach(([label, v, cls], i) => {
      const yy = i * 17;
      svg.appendChild(el("text", { x: 0, y: yy + 11, class: "axis" }, label));
      svg.appendChild(el("rect", { x: 46, y: yy + 2, width: 120, height: 11, class: "bar-bg" }));
      if (v !== null) svg.appendChild(el("rect", { x: 46, y: yy + 2, width: (1.2 * v).toFixed(1), height: 11, class: cls }));
      svg.appendChild(el("text", { x: 170, y: yy + 11, class: "axis" }, v === null ? "-" : `${Math.round(v)}%`));
    });
  }

  window.SyCharts = { lineChart, shareBars };
})();
