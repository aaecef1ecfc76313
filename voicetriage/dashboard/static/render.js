// Small DOM helpers and the badges the tables share. Every state is said in words
// and marked with a symbol and a pattern, never by colour alone.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "width") node.style.width = v; // CSSOM: the CSP forbids style attributes
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// queue -> [symbol, pattern class]; other queues get the generic ones
const QUEUES = {
  priority_human: ["▲", "pat-urgent"],
  human_now: ["☎", "pat-human"],
  senior_human: ["◆", "pat-senior"],
  cantonese_agent: ["✦", "pat-dialect"],
  wu_agent: ["✦", "pat-dialect"],
  hakka_agent: ["✦", "pat-dialect"],
  minnan_agent: ["✦", "pat-dialect"],
  none: ["–", "pat-none"],
};

export function queueLabel(queue) {
  return queue === "none" || !queue ? "no hint yet" : queue.replaceAll("_", " ");
}

export function queueBadge(queue, priority) {
  const q = queue || "none";
  const [symbol, pattern] = QUEUES[q] || ["●", "pat-other"];
  const title = priority !== undefined && priority !== null ? `priority ${priority}` : null;
  return el("span", { class: `badge queue ${pattern}`, "data-queue": q, title },
    el("span", { class: "sym", "aria-hidden": "true", text: symbol }), " ", queueLabel(q));
}

const DISTRESS = { calm: "○", raised: "◐", high: "⚠" };

export function distressBadge(d) {
  if (!d) return el("span", { class: "unknown", text: "—" });
  return el("span", { class: `badge distress lvl-${d.level}`, "data-level": d.level },
    el("span", { class: "sym", "aria-hidden": "true", text: DISTRESS[d.level] || "?" }), " ", d.level,
    el("span", { class: "sub", text: ` ${d.value.toFixed(2)} (conf ${d.confidence.toFixed(2)})` }));
}

export function pct(p) {
  return `${Math.round(p * 100)}%`;
}

export function languageCell(row) {
  const dist = row.dialect ? row.dialect.distribution : row.languages;
  if (!dist || Object.keys(dist).length === 0) return el("span", { class: "unknown", text: "—" });
  const entries = Object.entries(dist).slice(0, 3);
  const text = entries.map(([k, p]) => `${k} ${pct(p)}`).join(" · ");
  const bar = el("span", { class: "distbar", "aria-hidden": "true" },
    entries.map(([k, p], i) => el("span", { class: `seg seg${i}`, width: `${Math.max(2, p * 100)}%`, title: k })));
  const asr = row.dialect && Object.keys(row.languages || {}).length
    ? el("span", { class: "sub", text: ` (heard as ${Object.keys(row.languages).join(", ")})` }) : null;
  return el("span", { class: "lang" }, el("span", { text }), asr, bar);
}

export function rateCell(rate) {
  if (!rate) return el("span", { class: "unknown", text: "—" });
  const label = `${rate.value.toFixed(1)} syllables/s${rate.slow ? ", slow" : ""}`;
  return el("span", { class: "rate" },
    el("meter", { min: 0, max: rate.max || 8, low: 3, high: 6, optimum: 4.5, value: rate.value, "aria-label": label }),
    el("span", { class: "meter-label", text: ` ${label}` }));
}

export function ageCell(age) {
  if (!age || !age.band) return el("span", { class: "unknown", text: "—" });
  const acc = age.measured_accuracy ? `; measured accuracy ${pct(age.measured_accuracy)}` : "";
  return el("span", { class: "age", title: `confidence ${age.confidence.toFixed(2)}${acc}` },
    age.band, el("span", { class: "sub", text: ` (conf ${age.confidence.toFixed(2)})` }));
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

export function callLink(id) {
  return el("a", { href: `/dashboard#call=${encodeURIComponent(id)}`, class: "call-link", text: id });
}
