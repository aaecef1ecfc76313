// The live view: the active calls table, the ended calls, the queue filter and
// counts, and the call page (/dashboard#call=ID or /dashboard/call?id=ID).

import { Live } from "./live.js";
import { el, queueBadge, queueLabel, distressBadge, languageCell, rateCell, ageCell, duration, callLink } from "./render.js";
import { CallView } from "./callview.js";

const MAX_ENDED = 50;
const state = { active: new Map(), ended: [], queues: {}, endedQueues: {}, offset: 0, view: null, filter: "" };
const now = () => Date.now() / 1000 + state.offset;
const callView = new CallView(now);
const $ = (id) => document.getElementById(id);

function activeRow(r) {
  return el("tr", { "data-call": r.call_id, "data-queue": r.queue },
    el("th", { scope: "row" }, callLink(r.call_id)),
    el("td", { text: r.caller }),
    el("td", { text: r.platform }),
    el("td", {}, el("span", { class: "dur", "data-start": r.started_at, text: duration(now() - r.started_at) })),
    el("td", {}, languageCell(r)),
    el("td", {}, rateCell(r.rate)),
    el("td", {}, ageCell(r.age)),
    el("td", {}, distressBadge(r.distress)),
    el("td", {}, queueBadge(r.queue, r.hint ? r.hint.priority : null)),
    el("td", { class: "rules", text: r.rules_fired.length ? r.rules_fired.join(", ") : "—" }));
}

function endedRow(r) {
  const at = new Date(r.ended.at * 1000);
  return el("tr", { "data-call": r.call_id, "data-queue": r.ended.outcome },
    el("th", { scope: "row" }, callLink(r.call_id)),
    el("td", { text: r.caller }),
    el("td", { text: r.platform }),
    el("td", { text: duration(r.duration_s) }),
    el("td", {}, queueBadge(r.ended.outcome, r.hint ? r.hint.priority : null)),
    el("td", { class: "rules", text: r.rules_fired.length ? r.rules_fired.join(", ") : "—" }),
    el("td", {}, el("time", { datetime: at.toISOString(), text: at.toLocaleTimeString() })),
    el("td", { text: r.ended.reason }));
}

function shown(queue) {
  return !state.filter || queue === state.filter;
}

function renderCounts() {
  const names = [...new Set([...Object.keys(state.queues), ...Object.keys(state.endedQueues), state.filter].filter(Boolean))].sort();
  const select = $("queue-filter");
  const options = [el("option", { value: "", text: "all queues" })];
  for (const q of names) {
    const n = state.queues[q] || 0;
    options.push(el("option", { value: q, selected: q === state.filter, text: `${queueLabel(q)} (${n} active)` }));
  }
  select.replaceChildren(...options);
  select.value = state.filter;
  $("queue-counts").replaceChildren(...names.map((q) => el("li", { "data-queue": q }, queueBadge(q), ": ",
    el("span", { class: "n", text: String(state.queues[q] || 0) }), " active, ",
    `${state.endedQueues[q] || 0} ended`)));
}

function renderTables() {
  const rows = [...state.active.values()].sort((a, b) => a.started_at - b.started_at);
  const visible = rows.filter((r) => shown(r.queue));
  $("active").tBodies[0].replaceChildren(...visible.map(activeRow));
  $("active-count").textContent = String(rows.length);
  $("no-active").hidden = visible.length > 0;
  $("no-active").textContent = rows.length ? "No call in this queue." : "No call in progress.";
  $("ended").tBodies[0].replaceChildren(...state.ended.filter((r) => shown(r.ended.outcome)).map(endedRow));
  renderCounts();
}

function announce(text) {
  const box = $("announce");
  box.append(el("p", { text }));
  while (box.children.length > 5) box.firstElementChild.remove();
}

function onSnapshot(snap) {
  state.offset = snap.now - Date.now() / 1000;
  state.view = snap.view;
  state.active = new Map(snap.calls.map((r) => [r.call_id, r]));
  state.ended = snap.ended.slice(0, MAX_ENDED);
  state.queues = snap.queues;
  state.endedQueues = snap.ended_queues;
  renderTables();
  if (callView.id !== null) {
    const row = state.active.get(callView.id) || state.ended.find((r) => r.call_id === callView.id);
    if (row) callView.updateRow(row);
  }
}

function onDelta(msg, { rows, detail }) {
  if (rows && (msg.type === "call" || msg.type === "ended")) {
    const r = msg.call;
    if (msg.type === "ended" || r.ended) {
      state.active.delete(r.call_id);
      state.ended = [r, ...state.ended.filter((x) => !(x.call_id === r.call_id && x.started_at === r.started_at))]
        .slice(0, MAX_ENDED);
      if (msg.type === "ended") announce(`Call ${r.call_id} ended: ${queueLabel(r.ended.outcome)}.`);
    } else {
      if (!state.active.has(r.call_id)) announce(`New call ${r.call_id} (${r.platform}).`);
      state.active.set(r.call_id, r);
    }
    state.queues = msg.queues;
    if (msg.ended_queues) state.endedQueues = msg.ended_queues;
    renderTables();
    if (r.call_id === callView.id) callView.updateRow(r);
  }
  if (rows && msg.type === "hint" && msg.call_id !== callView.id) {
    announce(`Call ${msg.call_id}: hint ${queueLabel(msg.hint.queue)} (${msg.hint.rules.join(", ")}).`);
  }
  if (detail) {
    if (msg.type === "line") callView.line(msg.line);
    else if (msg.type === "point") callView.point(msg.point);
    else if (msg.type === "hint") callView.addHint(msg.hint);
  }
}

function status(kind, text) {
  const conn = $("conn");
  conn.dataset.state = kind;
  conn.textContent = kind === "live" ? "● live" : kind === "down" ? `✖ ${text}` : `… ${text}`;
}

const live = new Live({
  snapshot: onSnapshot,
  detail: (d, id, err) => (d ? callView.detail(d, state.view) : callView.missing(err)),
  delta: onDelta,
  status,
});

function route() {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const query = new URLSearchParams(window.location.search);
  const id = hash.get("call") || (window.location.pathname === "/dashboard/call" ? query.get("id") : null);
  if (id) {
    $("overview").hidden = true;
    callView.show(id);
    const row = state.active.get(id) || state.ended.find((r) => r.call_id === id);
    if (row) callView.updateRow(row);
  } else {
    callView.hide();
    $("overview").hidden = false;
  }
  live.setWatch(id || null);
}

$("queue-filter").addEventListener("change", (e) => {
  state.filter = e.target.value;
  renderTables();
});
window.addEventListener("hashchange", route);
setInterval(() => {
  for (const span of document.querySelectorAll(".dur[data-start]")) {
    if (!span.dataset.ended) span.textContent = duration(now() - Number(span.dataset.start));
  }
}, 1000);
window.voicetriageLive = live; // for a console (and the browser test): live.ws, live.resync()
route();
live.start();
