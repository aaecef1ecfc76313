// One call's page: facts, live transcript (partials grey and marked "…", finals
// black, each line labelled with its track), hints with reasons and evidence
// (an aria-live list), and the signal timeline.

import { el, queueBadge, distressBadge, languageCell, rateCell, ageCell, duration } from "./render.js";
import { drawTimeline } from "./timeline.js";

const MAX_LINES = 500;

function stamp(t) {
  return `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, "0")}`;
}

function evidenceText(sig) {
  const ev = sig.evidence || {};
  const cues = Array.isArray(ev.cues) ? ev.cues.map((c) => `${c.kind}${c.detail ? ` ${c.detail}` : ""}`).join("; ") : "";
  const said = ev.phrase || ev.text || cues || ev.label || ev.source || "";
  const value = typeof sig.value === "object" && sig.value !== null ? JSON.stringify(sig.value) : String(sig.value);
  const conf = typeof sig.confidence === "number" ? ` (confidence ${sig.confidence.toFixed(2)})` : "";
  const when = typeof sig.evidence_time === "number" ? ` from ${stamp(sig.evidence_time)}` : "";
  return `${sig.rule || "rule"}: ${sig.signal || "signal"} = ${value}${conf}${when}${said ? ` — “${said}”` : ""}`;
}

export class CallView {
  constructor(now) {
    this.now = now; // () => server time, seconds
    this.section = document.getElementById("call");
    this.facts = document.getElementById("call-facts");
    this.transcript = document.getElementById("transcript");
    this.hints = document.getElementById("hints");
    this.plot = document.getElementById("timeline");
    this.id = null;
    this.row = null;
    this.reset();
  }

  reset() {
    this.finals = new Map(); // track:utterance -> li
    this.partials = new Map(); // track -> li
    this.timeline = {};
    this.hintList = [];
    this.seenHints = new Set();
    this.transcript.replaceChildren();
    this.hints.replaceChildren();
    this.plot.replaceChildren(el("p", { class: "empty", text: "No signal yet." }));
    this.facts.replaceChildren();
  }

  show(id) {
    if (id !== this.id) {
      this.id = id;
      this.row = null;
      this.reset();
    }
    document.getElementById("call-id").textContent = id;
    document.title = `voicetriage: call ${id}`;
    this.section.hidden = false;
  }

  hide() {
    this.section.hidden = true;
    this.id = null;
    document.title = "voicetriage: live calls";
  }

  missing(err) {
    this.facts.replaceChildren(el("p", { class: "problem", role: "alert",
      text: `This call is not known (any more): ${err ? err.message : "no data"}.` }));
  }

  detail(d, view) {
    this.reset();
    this.view = view || d.view;
    this.updateRow(d.call);
    if (this.view && !this.view.transcripts) {
      this.transcript.append(el("li", { class: "empty", text: "This token may not see transcripts." }));
    }
    for (const line of d.lines) this.line(line);
    for (const p of d.partials) this.line(p);
    for (const h of d.hints_list) this.addHint(h, false);
    this.timeline = {};
    for (const [name, pts] of Object.entries(d.timeline || {})) this.timeline[name] = pts.slice();
    this.redraw();
  }

  updateRow(row) {
    this.row = row;
    const facts = [
      ["Caller", row.caller],
      ["Platform", row.platform],
      ["Duration", el("span", { class: "dur", "data-start": row.started_at,
        "data-ended": row.ended ? row.duration_s : null, text: duration(row.ended ? row.duration_s : this.now() - row.started_at) })],
      ["Status", row.ended ? `ended (${row.ended.reason}), outcome ${row.ended.outcome}` : "in progress"],
      ["Language / dialect", languageCell(row)],
      ["Speaking rate", rateCell(row.rate)],
      ["Age band", ageCell(row.age)],
      ["Distress", distressBadge(row.distress)],
      ["Hint queue", queueBadge(row.queue, row.hint ? row.hint.priority : null)],
      ["Rules fired", row.rules_fired.length ? row.rules_fired.join(", ") : "none"],
      ["Keypad", row.dtmf || "—"],
    ];
    this.facts.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  }

  line(l) {
    const key = `${l.track}:${l.utterance}`;
    const li = el("li", { class: l.final ? "final" : "partial", "data-track": l.track },
      el("span", { class: "track", text: l.track }), " ",
      el("span", { class: "time", text: stamp(l.start) }), " ",
      el("span", { class: "text", text: l.text }),
      l.final ? null : el("span", { class: "sr-only", text: " (in progress)" }));
    const partial = this.partials.get(l.track);
    if (l.final) {
      if (partial) {
        partial.remove();
        this.partials.delete(l.track);
      }
      const old = this.finals.get(key);
      if (old) old.replaceWith(li);
      else this.transcript.append(li);
      this.finals.set(key, li);
    } else if (partial) {
      partial.replaceWith(li);
      this.partials.set(l.track, li);
    } else {
      this.transcript.append(li);
      this.partials.set(l.track, li);
    }
    while (this.transcript.children.length > MAX_LINES) this.transcript.firstElementChild.remove();
  }

  addHint(h, redraw = true) {
    const key = `${h.seq}:${h.queue}`;
    if (this.seenHints.has(key)) return;
    this.seenHints.add(key);
    this.hintList.push(h);
    const li = el("li", { class: "hint" },
      el("p", {}, queueBadge(h.queue, h.priority),
        ` at ${stamp(h.time)} — ${h.reason}${h.previous ? ` (was ${h.previous})` : ""}, priority ${h.priority}, `
        + `confidence ${h.confidence.toFixed(2)}, ${h.since_evidence_s.toFixed(1)} s after its evidence`),
      el("p", { class: "rules", text: `Rules: ${h.rules.join(", ")}` }),
      el("ul", { class: "evidence" }, (h.signals || []).map((s) => el("li", { text: evidenceText(s) }))));
    this.hints.append(li);
    if (redraw) this.redraw();
  }

  point(p) {
    (this.timeline[p.name] = this.timeline[p.name] || []).push(p);
    if (this.timeline[p.name].length > 600) this.timeline[p.name].shift();
    this.redraw();
  }

  redraw() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = null;
      if (this.view && !this.view.signals) {
        this.plot.replaceChildren(el("p", { class: "empty", text: "This token may not see signals." }));
        return;
      }
      if (Object.keys(this.timeline).length === 0 && this.hintList.length === 0) return;
      drawTimeline(this.plot, this.timeline, this.hintList, this.row ? this.row.call_time : 0);
    });
  }
}
