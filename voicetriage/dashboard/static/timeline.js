// The timeline plot of a call's signals: inline SVG, drawn here (no library).
// x: call time in seconds; y: each signal scaled to 0..1 (see docs/dashboard.md).
// Series differ by dash pattern and marker shape as well as colour; hints are
// vertical lines labelled with their queue.

const NS = "http://www.w3.org/2000/svg";
const W = 800;
const H = 260;
const PAD = { l: 44, r: 12, t: 14, b: 34 };
const STYLES = [
  { dash: "", marker: "circle" },
  { dash: "6 3", marker: "square" },
  { dash: "2 3", marker: "triangle" },
  { dash: "8 3 2 3", marker: "diamond" },
  { dash: "1 2", marker: "cross" },
];
const ORDER = ["distress", "human_request", "speaking_rate", "language", "age_band", "low_comprehension"];

function svg(tag, attrs = {}, text = null) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== null) n.textContent = text;
  return n;
}

function marker(shape, x, y, cls) {
  const s = 4;
  if (shape === "square") return svg("rect", { x: x - s, y: y - s, width: 2 * s, height: 2 * s, class: cls });
  if (shape === "triangle") return svg("path", { d: `M${x},${y - s} L${x + s},${y + s} L${x - s},${y + s} Z`, class: cls });
  if (shape === "diamond") return svg("path", { d: `M${x},${y - s} L${x + s},${y} L${x},${y + s} L${x - s},${y} Z`, class: cls });
  if (shape === "cross") return svg("path", { d: `M${x - s},${y - s} L${x + s},${y + s} M${x + s},${y - s} L${x - s},${y + s}`, class: `${cls} open` });
  return svg("circle", { cx: x, cy: y, r: s, class: cls });
}

export function drawTimeline(container, timeline, hints, callTime) {
  const names = Object.keys(timeline || {}).sort((a, b) => {
    const ia = ORDER.indexOf(a) < 0 ? 99 : ORDER.indexOf(a);
    const ib = ORDER.indexOf(b) < 0 ? 99 : ORDER.indexOf(b);
    return ia - ib || a.localeCompare(b);
  });
  const tMax = Math.max(5, callTime || 0, ...names.flatMap((n) => timeline[n].map((p) => p.t)),
    ...(hints || []).map((h) => h.time));
  const x = (t) => PAD.l + (t / tMax) * (W - PAD.l - PAD.r);
  const y = (v) => PAD.t + (1 - v) * (H - PAD.t - PAD.b);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot",
    "aria-labelledby": "tl-title tl-desc" });
  root.append(svg("title", { id: "tl-title" }, "Signals over call time"));
  const desc = names.map((n) => {
    const last = timeline[n][timeline[n].length - 1];
    return `${n}: ${timeline[n].length} points, latest ${last.label} at ${last.t.toFixed(1)} s`;
  }).join("; ");
  root.append(svg("desc", { id: "tl-desc" }, desc || "No signal yet."));
  const axes = svg("g", { class: "axes" });
  for (const v of [0, 0.5, 1]) {
    axes.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }));
    axes.append(svg("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  }
  const step = tMax > 120 ? 30 : tMax > 40 ? 10 : tMax > 12 ? 5 : 1;
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    axes.append(svg("text", { x: x(t), y: H - PAD.b + 16, "text-anchor": "middle" }, `${t}s`));
  }
  axes.append(svg("text", { x: W - PAD.r, y: H - 4, "text-anchor": "end" }, "call time"));
  root.append(axes);
  for (const h of hints || []) {
    const g = svg("g", { class: "hint-mark" });
    g.append(svg("line", { x1: x(h.time), x2: x(h.time), y1: PAD.t, y2: H - PAD.b }));
    g.append(svg("text", { x: x(h.time) + 3, y: PAD.t + 10 }, `⚑ ${h.queue}`));
    root.append(g);
  }
  names.forEach((name, i) => {
    const style = STYLES[i % STYLES.length];
    const cls = `s${i % 6}`;
    const pts = timeline[name];
    const g = svg("g", { class: `series ${cls}`, "data-signal": name });
    if (pts.length > 1) {
      g.append(svg("polyline", { points: pts.map((p) => `${x(p.t)},${y(p.y)}`).join(" "),
        "stroke-dasharray": style.dash, class: "line" }));
    }
    for (const p of pts) {
      const m = marker(style.marker, x(p.t), y(p.y), "mark");
      m.append(svg("title", {}, `${name} at ${p.t.toFixed(1)} s: ${p.label}`));
      g.append(m);
    }
    root.append(g);
  });
  const legend = document.createElement("ul");
  legend.className = "legend-list";
  names.forEach((name, i) => {
    const style = STYLES[i % STYLES.length];
    const li = document.createElement("li");
    const key = svg("svg", { viewBox: "0 0 40 12", class: `key s${i % 6}`, "aria-hidden": "true" });
    key.append(svg("line", { x1: 0, x2: 40, y1: 6, y2: 6, "stroke-dasharray": style.dash, class: "line" }));
    key.append(marker(style.marker, 20, 6, "mark"));
    const last = timeline[name][timeline[name].length - 1];
    li.append(key, ` ${name} (latest: ${last.label})`);
    legend.append(li);
  });
  container.replaceChildren(root, legend);
}
