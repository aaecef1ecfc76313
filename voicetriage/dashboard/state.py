"""What the supervisor live view knows: one bounded state per call, fed by hub events.

:class:`Aggregator` is a hub subscriber (and an observer factory, to learn each
call's :class:`~voicetriage.core.events.CallInfo` when it opens). It is
synchronous and deterministic: :meth:`Aggregator.feed` takes one event, updates
the call's :class:`CallState` and hands each change, as a JSON-ready *delta*
numbered by ``seq``, to its listeners (the ``/dashboard/ws`` subscribers).
Snapshots carry the ``seq`` they are current to, so a page that resyncs applies
only the deltas after it. Scoping (who may see transcripts or signals) is done
later, per subscriber (:mod:`voicetriage.dashboard.scope`).

Memory is bounded per call (finals, hints and timeline points are kept in
capped deques; one partial per track) and across calls (the last
``ended_calls`` ended calls are kept).
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Iterable

from voicetriage.core.events import CallError, CallInfo, CallSummary, Dtmf, Final, Hint, Partial, Signal
from voicetriage.core.logsafe import mask_number
from voicetriage.core.serialize import jsonable
from voicetriage.dashboard.config import DashboardConfig

Delta = dict[str, Any]
Listener = Callable[[Delta], None]

#: distress value -> the word the page shows (the default policy routes at 0.55)
DISTRESS_LEVELS = ((0.55, "high"), (0.3, "raised"), (0.0, "calm"))
#: a call that has no hint yet is counted under this queue name
NO_QUEUE = "none"
MAX_SERIES = 16  # distinct signal names kept in one call's timeline
RATE_SCALE = 8.0  # syllables per second drawn at the top of the timeline


def distress_level(value: float) -> str:
    return next(word for floor, word in DISTRESS_LEVELS if value >= floor)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def timeline_point(sig: Signal) -> dict[str, Any]:
    """A signal as one point of the timeline: ``y`` in [0, 1] and a readable ``label``."""
    value, conf = sig.value, float(sig.confidence)
    ev = sig.evidence or {}
    num = _num(value)
    if sig.name == "speaking_rate" and num is not None:
        y, label = min(num / RATE_SCALE, 1.0), f"{num:.1f} syllables/s" + (" (slow)" if ev.get("slow") else "")
    elif sig.name == "distress" and num is not None:
        y, label = num, f"{distress_level(num)} {num:.2f}"
    elif isinstance(value, dict) and sig.name in ("language", "age_band"):
        top = ev.get("label") or max(value, key=lambda k: value[k], default="?")
        y, label = conf, f"{top} {conf:.2f}"
    elif num is not None and 0.0 <= num <= 1.0:
        y, label = num, f"{num:.2f}"
    else:
        y, label = conf, str(ev.get("phrase") or value)[:60]
    return {"name": sig.name, "t": round(sig.time, 3), "y": round(max(0.0, min(1.0, y)), 4),
            "confidence": round(conf, 3), "label": label}


class CallState:
    """One call as the page shows it (bounded)."""

    def __init__(self, call_id: str, cfg: DashboardConfig, info: CallInfo | None = None) -> None:
        self.call_id = call_id
        self.caller = mask_number(info.caller_id if info else None)
        self.platform = info.platform if info else "unknown"
        self.started_at = info.started_at if info else time.time()
        self.languages: dict[str, float] = {}  # recogniser language -> speech seconds (finals)
        self.dialect: dict[str, Any] | None = None
        self.rate: dict[str, Any] | None = None
        self.age: dict[str, Any] | None = None
        self.distress: dict[str, Any] | None = None
        self.hint: dict[str, Any] | None = None  # the current hint, in short
        self.rules_fired: set[str] = set()
        self.hints: collections.deque[dict[str, Any]] = collections.deque(maxlen=cfg.hints)
        self.finals: collections.deque[dict[str, Any]] = collections.deque(maxlen=cfg.transcript_lines)
        self.partials: dict[str, dict[str, Any]] = {}  # track -> its latest partial
        self.timeline: dict[str, collections.deque[dict[str, Any]]] = {}
        self._points = cfg.timeline_points
        self.dtmf = ""
        self.errors = 0
        self.utterances = 0
        self.call_time = 0.0  # the latest call time an event carried
        self.ended: dict[str, Any] | None = None

    @property
    def queue(self) -> str:
        return self.hint["queue"] if self.hint else NO_QUEUE

    def duration_s(self, now: float) -> float:
        if self.ended is not None:
            return self.ended["duration_s"]
        return round(max(0.0, now - self.started_at), 1)

    def row(self, now: float) -> dict[str, Any]:
        """The table row: who, where, how long, and the latest estimate of each signal."""
        total = sum(self.languages.values())
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "platform": self.platform,
            "started_at": self.started_at,
            "duration_s": self.duration_s(now),
            "call_time": round(self.call_time, 3),
            "languages": {k: round(v / total, 3) for k, v in sorted(self.languages.items(), key=lambda kv: -kv[1])}
            if total > 0 else {},
            "dialect": self.dialect,
            "rate": self.rate,
            "age": self.age,
            "distress": self.distress,
            "hint": self.hint,
            "queue": self.queue,
            "rules_fired": sorted(self.rules_fired),
            "hints": len(self.hints),
            "dtmf": self.dtmf,
            "errors": self.errors,
            "utterances": self.utterances,
            "ended": self.ended,
        }

    def detail(self, now: float) -> dict[str, Any]:
        """The call page: the row plus the transcript, every hint and the timeline."""
        return {
            "call": self.row(now),
            "lines": list(self.finals),
            "partials": sorted(self.partials.values(), key=lambda p: p["track"]),
            "hints_list": list(self.hints),
            "timeline": {name: list(points) for name, points in self.timeline.items()},
        }

    # -- updates (each returns whether the row changed) --------------------------------
    def add_point(self, point: dict[str, Any]) -> bool:
        series = self.timeline.get(point["name"])
        if series is None:
            if len(self.timeline) >= MAX_SERIES:
                return False
            series = self.timeline[point["name"]] = collections.deque(maxlen=self._points)
        series.append(point)
        return True

    def on_signal(self, sig: Signal) -> bool:
        ev, conf, v = sig.evidence or {}, round(float(sig.confidence), 3), sig.value
        if sig.name == "language" and isinstance(v, dict):
            top = sorted(((k, float(p)) for k, p in v.items()), key=lambda kv: -kv[1])[:4]
            self.dialect = {"label": ev.get("label") or (top[0][0] if top else None), "confidence": conf,
                            "distribution": {k: round(p, 3) for k, p in top}}
        elif sig.name == "speaking_rate" and _num(v) is not None:
            self.rate = {"value": round(float(v), 2), "unit": "syllables/s", "slow": bool(ev.get("slow")),
                         "syllables_per_minute": ev.get("syllables_per_minute"), "confidence": conf,
                         "max": RATE_SCALE}
        elif sig.name == "age_band" and isinstance(v, dict):
            band = ev.get("label") or max(v, key=lambda k: v[k], default=None)
            self.age = {"band": band, "confidence": conf, "distribution": {k: round(float(p), 3) for k, p in v.items()},
                        "measured_accuracy": ev.get("measured_accuracy")}
        elif sig.name == "distress" and _num(v) is not None:
            self.distress = {"value": round(float(v), 3), "confidence": conf, "level": distress_level(float(v))}
        else:
            return False
        return True

    def on_hint(self, hint: Hint) -> dict[str, Any]:
        item = {
            "seq": hint.seq, "queue": hint.queue, "action": hint.action, "priority": hint.priority,
            "confidence": round(hint.confidence, 3), "rules": list(hint.rules), "reason": hint.reason,
            "previous": hint.previous, "time": round(hint.time, 3), "evidence_time": round(hint.evidence_time, 3),
            "since_evidence_s": round(hint.since_evidence_s, 3), "signals": jsonable(hint.signals),
        }
        self.hints.append(item)
        self.hint = {k: item[k] for k in ("seq", "queue", "priority", "confidence", "rules", "reason", "time")}
        self.rules_fired.update(hint.rules)
        return item


def _line(ev: Partial | Final, final: bool) -> dict[str, Any]:
    return {"track": ev.track, "utterance": ev.utterance, "start": round(ev.start, 3), "end": round(ev.end, 3),
            "text": ev.text, "language": ev.language, "final": final}


class Aggregator:
    """Every call's :class:`CallState`, kept current from hub events."""

    def __init__(self, cfg: DashboardConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg or DashboardConfig()
        self.clock = clock
        self.active: dict[str, CallState] = {}
        self.ended: collections.deque[CallState] = collections.deque(maxlen=self.cfg.ended_calls)
        self.listeners: list[Listener] = []
        self.seq = 0

    # -- wiring --------------------------------------------------------------------------
    def __call__(self, event: object) -> None:  # a hub subscriber
        self.feed(event)

    def observer_factory(self, info: CallInfo) -> None:
        """An App observer factory: learns each call's CallInfo as it opens (no observer)."""
        self.feed(info)
        return None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def _emit(self, delta: Delta) -> None:
        self.seq += 1
        delta["seq"] = self.seq
        for listener in list(self.listeners):
            listener(delta)

    # -- queries ---------------------------------------------------------------------------
    def find(self, call_id: str) -> CallState | None:
        return self.active.get(call_id) or next((c for c in self.ended if c.call_id == call_id), None)

    def queue_counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(c.queue for c in self.active.values()).items()))

    def ended_counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(c.queue for c in self.ended).items()))

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "type": "snapshot", "seq": self.seq, "now": now,
            "calls": [c.row(now) for c in sorted(self.active.values(), key=lambda c: c.started_at)],
            "ended": [c.row(now) for c in self.ended],
            "queues": self.queue_counts(), "ended_queues": self.ended_counts(),
        }

    def detail(self, call_id: str) -> dict[str, Any] | None:
        state = self.find(call_id)
        if state is None:
            return None
        return {"type": "detail", "seq": self.seq, "now": self.clock(), **state.detail(self.clock())}

    # -- events ----------------------------------------------------------------------------
    def _state(self, call_id: str) -> CallState:
        state = self.find(call_id)
        if state is None:  # events of a call opened before the dashboard was installed
            state = self.active[call_id] = CallState(call_id, self.cfg)
        return state

    def _row_changed(self, state: CallState) -> None:
        self._emit({"type": "call", "call": state.row(self.clock()), "queues": self.queue_counts()})

    def feed(self, event: object) -> None:
        call_id = getattr(event, "call_id", None)
        if not isinstance(call_id, str):
            return
        if isinstance(event, CallInfo):
            state = self.active[call_id] = CallState(call_id, self.cfg, event)
            self._row_changed(state)
            return
        state = self._state(call_id)
        t = getattr(event, "time", None) if not isinstance(event, (Partial, Final)) else event.end
        if isinstance(t, (int, float)):
            state.call_time = max(state.call_time, float(t))
        if isinstance(event, Partial):
            line = state.partials[event.track] = _line(event, False)
            self._emit({"type": "line", "call_id": call_id, "line": line})
        elif isinstance(event, Final):
            line = _line(event, True)
            state.finals.append(line)
            partial = state.partials.get(event.track)
            if partial is not None and partial["utterance"] <= event.utterance:
                del state.partials[event.track]
            state.utterances += 1
            if event.text.strip():
                spoken = event.speech_s or max(0.0, event.end - event.start)
                state.languages[event.language] = state.languages.get(event.language, 0.0) + spoken
            self._emit({"type": "line", "call_id": call_id, "line": line})
            self._row_changed(state)
        elif isinstance(event, Signal):
            point = timeline_point(event)
            if state.add_point(point):
                self._emit({"type": "point", "call_id": call_id, "point": point})
            if state.on_signal(event):
                self._row_changed(state)
        elif isinstance(event, Hint):
            item = state.on_hint(event)
            self._emit({"type": "hint", "call_id": call_id, "hint": item})
            self._row_changed(state)
        elif isinstance(event, Dtmf):
            state.dtmf = (state.dtmf + event.digit)[-32:]
            self._row_changed(state)
        elif isinstance(event, CallError):
            state.errors += 1
            self._row_changed(state)
        elif isinstance(event, CallSummary):
            if not state.languages and event.languages:
                state.languages = {k: float(v) for k, v in event.languages.items()}
            self._end(state, event.reason, event.duration_s)

    def _end(self, state: CallState, reason: str, duration_s: float | None = None) -> None:
        if state.ended is not None:
            return
        now = self.clock()
        state.ended = {"reason": reason, "outcome": state.queue, "at": now,
                       "duration_s": round(duration_s if duration_s is not None else now - state.started_at, 1)}
        state.partials.clear()
        if self.active.get(state.call_id) is state:
            del self.active[state.call_id]
        self.ended.appendleft(state)
        self._emit({"type": "ended", "call": state.row(now), "queues": self.queue_counts(),
                    "ended_queues": self.ended_counts()})

    def reconcile(self, live: Iterable[str]) -> None:
        """End every call the server no longer has (one that failed to open, say)."""
        keep = set(live)
        for state in [s for cid, s in self.active.items() if cid not in keep]:
            self._end(state, "gone")


__all__ = ["Aggregator", "CallState", "DISTRESS_LEVELS", "NO_QUEUE", "distress_level", "timeline_point"]
