"""CallTriage: profile at call start, extractors -> policy -> hint events, robustness."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from voicetriage.core.config import load_config
from voicetriage.core.errors import ConfigError
from voicetriage.core.events import (
    CallInfo,
    CallSummary,
    Dtmf,
    Final,
    Hint,
    Partial,
    Signal,
)
from voicetriage.triage.observer import (
    CallTriage,
    triage_config,
    triage_observer_factory,
)
from voicetriage.triage.policy import load_policy
from voicetriage.triage.profiles import ProfileStore

FRAME = np.zeros(320, dtype=np.float32)  # 20 ms at 16 kHz


def final(text, start, end, *, track="caller", utterance=0, lang="zh", avg_logprob=-0.25):
    return Final("c1", track, utterance, start, end, text, lang, 0.98, avg_logprob, 0.01, "silence", end - start)


def summary():
    return CallSummary("c1", "stop", {"caller": 10.0}, 1, (), {}, 10.0)


class FakeExtractor:
    """Turns finals containing 'HUMAN' into human_request signals."""

    name = "fake"

    def __init__(self):
        self.audio_tracks = []
        self.events = []
        self.closed = False

    def on_audio(self, track, samples, t0):
        self.audio_tracks.append(track)
        return []

    def on_event(self, event):
        self.events.append(event)
        if isinstance(event, Final) and "HUMAN" in event.text:
            return [Signal(event.call_id, "human_request", True, 0.9, event.end, event.start, {"phrase": "HUMAN"})]
        return []

    def on_close(self):
        self.closed = True
        return []


class Broken:
    name = "broken"

    def on_audio(self, track, samples, t0):
        raise RuntimeError("boom")

    def on_event(self, event):
        raise RuntimeError("boom")

    def on_close(self):
        raise RuntimeError("boom")


def hints(events):
    return [e for e in events if isinstance(e, Hint)]


def feed_audio(tr, seconds, start=0.0, track="caller"):
    out = []
    for i in range(int(seconds / 0.02)):
        out += tr.on_audio(track, FRAME, start + i * 0.02)
    return out


@pytest.fixture
def store(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("number,birth_year,flags\n13800138000,1948,\n13900139000,1990,prefers_human\n", encoding="utf-8")
    s = ProfileStore(tmp_path / "p.db", create=True)
    s.import_csv(csv)
    yield s
    s.close()


def test_known_elderly_caller_is_routed_on_the_first_audio_packet(store):
    info = CallInfo("c1", caller_id="138 0013 8000", started_at=1_800_000_000.0)
    tr = CallTriage(info, load_policy(), [FakeExtractor()], profile=store.lookup(info.caller_id))
    first = tr.on_audio("caller", FRAME, 0.0)
    [h] = hints(first)
    assert (h.queue, h.rules, h.time, h.since_evidence_s) == ("senior_human", ("profile_senior",), 0.02, 0.02)
    assert h.signals[0]["value"]["age"] >= 65
    # the profile is also shown as a signal event, once
    assert [e.name for e in first if isinstance(e, Signal)] == ["profile"]
    assert hints(feed_audio(tr, 5.0, 0.02)) == []


def test_unknown_caller_and_silence_give_nothing(store):
    info = CallInfo("c1", caller_id="+1 202 555 0143")
    tr = CallTriage(info, load_policy(), [FakeExtractor()], profile=store.lookup(info.caller_id))
    assert feed_audio(tr, 3.0) == []
    assert tr.on_close(summary()) == []


def test_extractor_signal_escalates_and_hint_timing(store):
    info = CallInfo("c1", caller_id="13800138000")
    fake = FakeExtractor()
    tr = CallTriage(info, load_policy(), [fake], profile=store.lookup(info.caller_id))
    feed_audio(tr, 4.0)
    out = tr.on_event(final("please a HUMAN now", 2.0, 3.5))
    [h] = hints(out)
    assert (h.queue, h.reason, h.previous) == ("human_now", "escalation", "senior_human")
    assert h.time == pytest.approx(4.0)  # the call clock: audio received so far
    assert h.evidence_time == 2.0 and h.since_evidence_s == pytest.approx(2.0)
    assert [x.queue for x in tr.hints] == ["senior_human", "human_now"]


def test_only_the_caller_track_reaches_the_extractors():
    fake = FakeExtractor()
    tr = CallTriage(CallInfo("c1"), load_policy(), [fake])
    tr.on_audio("agent", FRAME, 0.0)
    tr.on_audio("caller", FRAME, 0.0)
    assert hints(tr.on_event(final("I will put you through to a HUMAN", 0.0, 1.0, track="agent"))) == []
    tr.on_event(Dtmf("c1", "agent", "9", 1.0))
    assert fake.audio_tracks == ["caller"]
    assert all(getattr(e, "track", "caller") == "caller" for e in fake.events)
    assert hints(tr.on_event(Dtmf("c1", "caller", "9", 2.0))) != []  # 9 first: the elders' line


def test_keypad_first_digit_rule():
    tr = CallTriage(CallInfo("c1"), load_policy(), [])
    feed_audio(tr, 1.0)
    assert hints(tr.on_event(Dtmf("c1", "caller", "1", 1.0))) == []
    assert hints(tr.on_event(Dtmf("c1", "caller", "9", 1.5))) == []  # 9, but not first
    tr = CallTriage(CallInfo("c2"), load_policy(), [])
    feed_audio(tr, 1.0)
    [h] = hints(tr.on_event(Dtmf("c2", "caller", "6", 1.0)))
    assert h.rules == ("elders_line",) and h.signals[0]["value"]["digits"] == "6"


def test_a_broken_extractor_is_disabled_and_the_rest_go_on(caplog):
    fake = FakeExtractor()
    tr = CallTriage(CallInfo("c1"), load_policy(), [Broken(), fake])
    with caplog.at_level(logging.ERROR, logger="voicetriage.triage.observer"):
        feed_audio(tr, 1.0)
        [h] = hints(tr.on_event(final("HUMAN", 0.2, 0.8)))
        tr.on_close(summary())
    assert h.queue == "human_now"
    assert fake.closed
    assert sum("'broken' failed" in r.getMessage() for r in caplog.records) == 1


def test_signal_events_only_on_material_change():
    class Wobbly:
        name = "wobbly"

        def __init__(self):
            self.values = iter([0.50, 0.52, 0.51, 0.74, 0.74])

        def on_audio(self, track, samples, t0):
            return [Signal("c1", "speaking_rate", np.float32(next(self.values, 0.74)), np.float64(0.8), t0, t0,
                           {"slow": np.bool_(True), "speech_s": np.float32(1.0)})]

        def on_event(self, event):
            return []

        def on_close(self):
            return []

    tr = CallTriage(CallInfo("c1"), load_policy(), [Wobbly()])
    shown = [e for i in range(5) for e in tr.on_audio("caller", FRAME, i * 0.02) if isinstance(e, Signal)]
    assert [round(s.value, 2) for s in shown] == [0.5, 0.74]
    assert type(shown[0].value) is float and shown[0].evidence["slow"] is True  # JSON-ready
    tr = CallTriage(CallInfo("c1"), load_policy(), [Wobbly()], emit_signals=False)
    assert tr.on_audio("caller", FRAME, 0.0) == []


def test_real_extractors_fire_on_a_human_request_partial():
    """The default extractors (no model needed): a stable partial with 转人工 is enough."""
    factory = triage_observer_factory(load_config())
    tr = factory(CallInfo("c1", caller_id="13800138000"))
    feed_audio(tr, 2.4)
    out = tr.on_event(Partial("c1", "caller", 0, 0.4, 2.4, "我要转人工", "", "zh", 0.97))
    [h] = hints(out)
    assert h.queue == "human_now" and h.rules == ("human_request",)
    assert h.signals[0]["evidence"]["phrase"] == "转人工"
    assert h.since_evidence_s < 2.0
    # the final that follows only confirms it: no second hint
    assert hints(tr.on_event(final("我要转人工。", 0.4, 2.4))) == []
    assert any(isinstance(e, Signal) and e.name == "language" for e in tr.on_event(final("好的谢谢你", 3.0, 4.0, utterance=1)))


def test_factory_looks_up_the_caller_and_validates_config(store, tmp_path):
    cfg = load_config()
    tc = triage_config(cfg, profiles_db=str(store.path))
    factory = triage_observer_factory(cfg, triage=tc)
    tr = factory(CallInfo("c1", caller_id="+86 139 0013 9000"))
    [h] = hints(tr.on_audio("caller", FRAME, 0.0))
    assert (h.queue, h.rules) == ("human_now", ("profile_prefers_human",))
    assert factory(CallInfo("c2", caller_id=None)).profile is None
    factory.close()

    with pytest.raises(ConfigError, match="does not exist"):
        triage_observer_factory(cfg, triage=triage_config(cfg, profiles_db=str(tmp_path / "none.db")))
    bad = tmp_path / "vt.toml"
    bad.write_text("[signals.human_request]\nzero_repeats = 'many'\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        triage_observer_factory(load_config(bad))
    bad.write_text("[triage]\npolicy_file = 'x.toml'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown option"):
        triage_config(load_config(bad))


def test_events_filters_and_slow_subscriber_queue():
    from voicetriage.sinks.events_ws import BadFilter, _Subscriber, parse_filters

    assert parse_filters("/events") == (frozenset(), frozenset())
    assert parse_filters("/events?types=hint,final&call_id=a,b&call_id=c") == (
        frozenset({"a", "b", "c"}), frozenset({"hint", "final"}))
    for bad in ("/events?types=Hint!", "/events?colour=red"):
        with pytest.raises(BadFilter):
            parse_filters(bad)
    sub = _Subscriber(frozenset({"c1"}), frozenset({"hint", "dtmf"}), limit=3)
    for i in range(5):
        sub(Dtmf("c1", "caller", str(i), float(i)))
    sub(Dtmf("other", "caller", "1", 0.0))
    sub(final("x", 0.0, 1.0))
    assert [e.digit for e in sub.queue] == ["2", "3", "4"] and sub.dropped == 2


def test_serve_options_reach_the_triage_config(tmp_path):
    from voicetriage.cli import build_parser
    from voicetriage.cli.common import config_from_args
    from voicetriage.cli.triage_options import triage_from_args

    policy_file = tmp_path / "p.toml"
    policy_file.write_text("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]\n", encoding="utf-8")
    args = build_parser().parse_args([
        "serve", "--policy", str(policy_file), "--event-log", str(tmp_path / "e.jsonl"),
        "--webhook", "http://127.0.0.1:9/hook",
    ])
    config = config_from_args(args, event_log=args.event_log)
    tc = triage_from_args(args, config)
    assert (tc.enabled, tc.policy, tc.webhook_url) == (True, str(policy_file), "http://127.0.0.1:9/hook")
    assert config.server.event_log == str(tmp_path / "e.jsonl")
    off = build_parser().parse_args(["serve", "--no-triage", "--policy", str(tmp_path / "missing.toml")])
    assert triage_from_args(off, config_from_args(off)).enabled is False  # not even read
    for bad in (["--policy", str(tmp_path / "missing.toml")], ["--profiles-db", str(tmp_path / "none.db")]):
        a = build_parser().parse_args(["serve", *bad])
        with pytest.raises(ConfigError):
            triage_from_args(a, config_from_args(a))
