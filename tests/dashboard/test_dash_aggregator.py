"""The dashboard's aggregator, fed the event objects a server publishes (and a real
CallTriage with the default policy for the hints): per-call state, bounds, scoping."""

from __future__ import annotations

import pytest

from voicetriage.core.events import CallError, CallInfo, CallSummary, Dtmf, Final, Hint, Partial, Signal
from voicetriage.core.logsafe import mask_number
from voicetriage.dashboard import scope
from voicetriage.dashboard.config import DashboardConfig
from voicetriage.dashboard.state import Aggregator, distress_level
from voicetriage.triage.observer import CallTriage
from voicetriage.triage.policy import load_policy

T0 = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def partial(cid, text, start, end, utterance=0, track="caller"):
    return Partial(cid, track, utterance, start, end, text, "", "en", 0.97)


def final(cid, text, start, end, utterance=0, track="caller", lang="en"):
    return Final(cid, track, utterance, start, end, text, lang, 0.97, -0.2, 0.01, "silence", end - start)


def signals(cid, t):
    return [
        Signal(cid, "language", {"english": 0.82, "mandarin": 0.1, "cantonese": 0.05, "wu": 0.02, "other": 0.01},
               0.82, t, 0.5, {"label": "english", "utterances": 1}),
        Signal(cid, "speaking_rate", 2.9, 0.7, t, 0.5, {"slow": True, "syllables_per_minute": 150.0}),
        Signal(cid, "age_band", {"<40": 0.2, "40-64": 0.35, "65+": 0.45}, 0.41, t, 0.5,
               {"label": "65+", "measured_accuracy": 0.47}),
        Signal(cid, "distress", 0.62, 0.8, t, 1.0, {"cues": [{"kind": "lexical", "detail": "help"}]}),
    ]


def summary(cid, reason="stop", duration=12.0):
    return CallSummary(cid, reason, {"caller": duration}, 1, (), {"en": 1.0}, duration)


@pytest.fixture
def agg():
    a = Aggregator(DashboardConfig(), clock=Clock())
    a.deltas = []
    a.subscribe(a.deltas.append)
    return a


def test_a_call_from_open_to_end(agg):
    info = CallInfo("c1", caller_id="+86 138 0013 8000", platform="twilio", started_at=T0 - 3)
    agg.observer_factory(info)
    [row] = agg.snapshot()["calls"]
    assert (row["caller"], row["platform"], row["duration_s"], row["queue"]) == ("•••8000", "twilio", 3.0, "none")
    assert "138" not in str(agg.snapshot())

    agg.feed(partial("c1", "I need", 0.4, 1.0))
    agg.feed(partial("c1", "hello", 0.2, 0.8, track="agent"))
    detail = agg.detail("c1")
    assert [(p["track"], p["text"], p["final"]) for p in detail["partials"]] == [("agent", "hello", False),
                                                                                 ("caller", "I need", False)]
    agg.feed(final("c1", "I need help please", 0.4, 1.6))
    detail = agg.detail("c1")
    assert [p["track"] for p in detail["partials"]] == ["agent"]  # the caller's partial became the final
    assert detail["lines"] == [{"track": "caller", "utterance": 0, "start": 0.4, "end": 1.6,
                                "text": "I need help please", "language": "en", "final": True}]
    for s in signals("c1", 1.7):
        agg.feed(s)
    row = agg.snapshot()["calls"][0]
    assert row["languages"] == {"en": 1.0}
    assert row["dialect"]["label"] == "english" and list(row["dialect"]["distribution"])[:2] == ["english", "mandarin"]
    assert len(row["dialect"]["distribution"]) == 4  # the top four
    assert (row["rate"]["value"], row["rate"]["slow"]) == (2.9, True)
    assert (row["age"]["band"], row["age"]["confidence"], row["age"]["measured_accuracy"]) == ("65+", 0.41, 0.47)
    assert row["distress"] == {"value": 0.62, "confidence": 0.8, "level": "high"}

    # the elders' line key, through the real triage and default policy
    triage = CallTriage(info, load_policy(), [], profile=None)
    out = triage.on_event(Dtmf("c1", "caller", "9", 2.0))
    assert any(isinstance(e, Hint) for e in out)
    agg.feed(Dtmf("c1", "caller", "9", 2.0))
    for e in out:
        agg.feed(e)
    row = agg.snapshot()["calls"][0]
    assert (row["queue"], row["hint"]["rules"], row["dtmf"]) == ("senior_human", ["elders_line"], "9")
    assert row["rules_fired"] == ["elders_line"]
    assert agg.snapshot()["queues"] == {"senior_human": 1}
    [h] = agg.detail("c1")["hints_list"]
    assert h["signals"][0]["signal"] == "keypad" and h["reason"] == "new"
    timeline = agg.detail("c1")["timeline"]
    assert set(timeline) == {"language", "speaking_rate", "age_band", "distress", "keypad"}
    assert timeline["speaking_rate"][0]["y"] == pytest.approx(2.9 / 8, abs=1e-3)
    assert timeline["distress"][0]["label"] == "high 0.62"

    agg.feed(CallError("c1", "asr_failed", "the recogniser failed"))
    agg.feed(summary("c1", "hangup", 12.3))
    snap = agg.snapshot()
    assert snap["calls"] == [] and snap["queues"] == {}
    [ended] = snap["ended"]
    assert ended["ended"]["outcome"] == "senior_human" and ended["ended"]["reason"] == "hangup"
    assert ended["duration_s"] == 12.3 and ended["errors"] == 1
    assert snap["ended_queues"] == {"senior_human": 1}
    assert agg.detail("c1")["lines"]  # an ended call's page still opens

    kinds = [d["type"] for d in agg.deltas]
    assert kinds[0] == "call" and kinds[-1] == "ended" and {"line", "point", "hint"} <= set(kinds)
    seqs = [d["seq"] for d in agg.deltas]
    assert seqs == list(range(1, len(seqs) + 1)) and snap["seq"] == seqs[-1]


def test_memory_is_bounded_per_call_and_across_calls():
    cfg = DashboardConfig(ended_calls=3, transcript_lines=5, hints=2, timeline_points=4)
    agg = Aggregator(cfg)
    agg.feed(CallInfo("long"))
    for i in range(50):
        agg.feed(partial("long", f"word {i}", i, i + 0.5, utterance=i))
        agg.feed(final("long", f"word {i}", i, i + 0.9, utterance=i))
        agg.feed(Signal("long", "distress", 0.1, 0.5, i + 1.0, i))
        agg.feed(Hint("long", "human_now", "route", 90, 0.9, ("human_request",), (), i, i, i, 0, "new", i + 1))
    d = agg.detail("long")
    assert [x["text"] for x in d["lines"]] == [f"word {i}" for i in range(45, 50)]
    assert d["partials"] == [] and len(d["hints_list"]) == 2 and len(d["timeline"]["distress"]) == 4
    for i in range(60):  # signal names come from the wire side: their number is capped too
        agg.feed(Signal("long", f"custom_{i}", 0.5, 0.5, 1.0, 1.0))
    assert len(agg.detail("long")["timeline"]) <= 16
    for n in range(6):
        agg.feed(CallInfo(f"c{n}"))
        agg.feed(summary(f"c{n}"))
    assert [r["call_id"] for r in agg.snapshot()["ended"]] == ["c5", "c4", "c3"]


def test_queue_counts_and_events_of_a_call_opened_before_the_dashboard(agg):
    agg.feed(CallInfo("a"))
    agg.feed(CallInfo("b"))
    agg.feed(Hint("late", "priority_human", "route", 100, 0.8, ("distress",), (), 3, 2, 3, 1, "new", 1))
    snap = agg.snapshot()
    assert snap["queues"] == {"none": 2, "priority_human": 1}
    assert {r["call_id"]: r["platform"] for r in snap["calls"]} == {"a": "native", "b": "native", "late": "unknown"}


def test_reconcile_ends_calls_the_server_no_longer_has(agg):
    agg.feed(CallInfo("ghost"))  # its open failed after the observers were made
    agg.feed(CallInfo("live"))
    agg.reconcile(["live"])
    snap = agg.snapshot()
    assert [r["call_id"] for r in snap["calls"]] == ["live"]
    assert snap["ended"][0]["call_id"] == "ghost" and snap["ended"][0]["ended"]["reason"] == "gone"


def test_scopes_hide_transcripts_and_signals(agg):
    agg.feed(CallInfo("c1", caller_id="13800138000"))
    agg.feed(final("c1", "please transfer me to a person", 0.0, 2.0))
    agg.feed(Signal("c1", "distress", 0.2, 0.6, 2.0, 1.0))
    agg.feed(Hint("c1", "human_now", "route", 90, 0.9, ("human_request",),
                  ({"rule": "human_request", "signal": "human_request", "value": True,
                    "evidence": {"phrase": "a person", "text": "please transfer me to a person"}},),
                  2.0, 1.0, 2.0, 1.0, "new", 1))
    full, blind, wall = (scope.View.of(frozenset({s})) for s in ("all", "no_transcripts", "hints"))
    assert full == scope.View()
    d = agg.detail("c1")
    assert scope.detail(full, d)["lines"] and "a person" in str(scope.detail(full, d))
    hidden = scope.detail(blind, d)
    assert hidden["lines"] == [] and "person" not in str(hidden) and hidden["timeline"]
    assert hidden["call"]["distress"]["level"] == "calm"
    hints_only = scope.detail(wall, d)
    assert hints_only["lines"] == [] and hints_only["timeline"] == {} and hints_only["call"]["distress"] is None
    assert hints_only["hints_list"][0]["queue"] == "human_now"
    line = next(x for x in agg.deltas if x["type"] == "line")
    point = next(x for x in agg.deltas if x["type"] == "point")
    assert scope.delta(full, line) == line and scope.delta(blind, line) is None
    assert scope.delta(blind, point) == point and scope.delta(wall, point) is None
    hint = next(x for x in agg.deltas if x["type"] == "hint")
    assert "person" not in str(scope.delta(blind, hint)) and scope.delta(blind, hint)["hint"]["queue"] == "human_now"
    snap = scope.snapshot(wall, agg.snapshot())
    assert snap["view"] == {"transcripts": False, "signals": False} and snap["calls"][0]["hint"]["queue"] == "human_now"


def test_words_for_levels_and_masks():
    assert [distress_level(v) for v in (0.0, 0.29, 0.3, 0.54, 0.55, 1.0)] == \
        ["calm", "calm", "raised", "raised", "high", "high"]
    assert mask_number("+1 (202) 555-0143") == "•••0143"
    assert mask_number("") == "unknown" and mask_number("anonymous") == "•••" and mask_number("12345") == "•••"
