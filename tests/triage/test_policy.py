"""Routing policy: rules, priorities, minimum evidence, hysteresis, validation."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import Hint, Signal
from voicetriage.core.serialize import to_message
from voicetriage.triage.policy import load_policy, parse_policy


def sig(name, value, conf=1.0, t=0.0, evidence_time=None, **evidence):
    return Signal("c1", name, value, conf, t, t if evidence_time is None else evidence_time, evidence)


def policy(text: str):
    return parse_policy(tomllib.loads(textwrap.dedent(text)), "test.toml")


@pytest.fixture(scope="module")
def default():
    return load_policy()


def test_default_policy_ships_and_covers_the_hotline_queues(default):
    assert default.name == "default"
    assert {"senior_human", "human_now", "priority_human", "cantonese_agent"} <= set(default.queues)
    assert {"profile", "keypad", "human_request", "speaking_rate", "language", "distress"} <= default.signals
    prio = {r.name: r.priority for r in default.rules}
    # distress before a human request before seniors before dialect agents
    assert prio["distress"] > prio["human_request"] > prio["profile_senior"] > prio["cantonese"]
    assert default.hysteresis.allow_downgrade is False


def test_profile_age_routes_senior_at_call_start(default):
    st = default.start("c1", started_at=1000.0)
    profile = {"age": 72, "age_band": "65+", "language": None, "vulnerable": False, "prefers_human": False}
    [h] = st.update([sig("profile", profile)], 0.0)
    assert isinstance(h, Hint)
    assert (h.queue, h.priority, h.reason, h.seq, h.previous) == ("senior_human", 70, "new", 1, None)
    assert h.rules == ("profile_senior",)
    assert h.confidence == 1.0
    assert h.time == 0.0 and h.since_evidence_s == 0.0 and h.wall_time == 1000.0
    assert {s["signal"] for s in h.signals} == {"profile"}
    assert h.signals[0]["value"]["age"] == 72
    msg = to_message(h)
    assert msg["type"] == "hint" and msg["call_id"] == "c1"


def test_younger_profile_gives_no_hint(default):
    st = default.start("c1")
    profile = {"age": 40, "age_band": "40-64", "language": "cmn", "vulnerable": False, "prefers_human": False}
    assert st.update([sig("profile", profile)], 0.0) == []
    assert st.evaluate(60.0) == []


def test_elders_line_needs_9_or_6_first(default):
    st = default.start("c1")
    assert st.update([sig("keypad", {"first": "1", "last": "9", "digits": "19"}, t=3.0)], 3.0) == []
    st = default.start("c2")
    [h] = st.update([sig("keypad", {"first": "6", "last": "6", "digits": "6"}, t=2.0)], 2.1)
    assert (h.queue, h.rules) == ("senior_human", ("elders_line",))
    assert h.since_evidence_s == pytest.approx(0.1)


def test_escalation_and_no_downgrade(default):
    st = default.start("c1")
    [h1] = st.update([sig("profile", {"age": 80})], 0.0)
    assert h1.queue == "senior_human"
    [h2] = st.update([sig("human_request", True, 0.77, t=4.0, evidence_time=3.2, phrase="转人工")], 4.0)
    assert (h2.queue, h2.reason, h2.previous, h2.seq) == ("human_now", "escalation", "senior_human", 2)
    assert h2.since_evidence_s == pytest.approx(0.8)
    assert h2.signals[0]["evidence"]["phrase"] == "转人工"
    [h3] = st.update([sig("distress", 0.9, 0.8, t=6.0)], 6.0)
    assert (h3.queue, h3.priority) == ("priority_human", 100)
    # the distress evidence goes away: still no downgrade, however long we wait
    assert st.update([sig("distress", 0.0, 0.9, t=8.0)], 8.0) == []
    assert st.evaluate(300.0) == []
    assert st.current_queue == "priority_human"


def test_no_default_rule_asks_more_confidence_than_its_signal_can_give(default):
    """A rule whose min_confidence sits above the signal's ceiling can never fire (the old
    voice_senior rule: age confidence capped at the measured 0.47, threshold 0.6)."""
    from voicetriage.triage.signals.age import MEASURED_ACCURACY

    ceilings = {"age_band": MEASURED_ACCURACY}
    for rule in default.rules:
        for cond in rule.conditions:
            ceiling = ceilings.get(cond.signal)
            if ceiling is not None:
                assert max(cond.min_confidence, rule.min_confidence) <= ceiling, rule.name
    st = default.start("c1")
    # the strongest age estimate the extractor can send routes nowhere by itself
    assert st.update([sig("age_band", {"<40": 0.05, "40-64": 0.3, "65+": 0.65}, MEASURED_ACCURACY, t=9.0,
                          label="65+")], 9.0) == []


def test_low_comprehension_needs_two_utterances(default):
    st = default.start("c1")
    lc = lambda v, conf, t, n: sig("low_comprehension", v, conf, t=t, utterances=n, speech_s=2.0 * n)
    assert st.update([lc(0.9, 0.5, 3.0, 1)], 3.0) == []  # one utterance is not enough
    assert st.update([lc(0.4, 0.7, 6.0, 2)], 6.0) == []  # followed well enough
    [h] = st.update([lc(0.7, 0.8, 9.0, 3)], 9.0)
    assert (h.queue, h.rules) == ("human_now", ("low_comprehension",))
    assert len(h.signals) == 2  # the score and the amount of evidence


def test_min_count_needs_consecutive_updates():
    p = policy("""
    [[rules]]
    name = "twice"
    queue = "q"
    priority = 1
    all = [{ signal = "x", op = ">=", value = 0.5, min_count = 2 }]
    """)
    st = p.start("c1")
    assert st.update([sig("x", 0.8, t=1.0)], 1.0) == []
    assert st.update([sig("x", 0.2, t=2.0)], 2.0) == []  # streak broken
    assert st.update([sig("x", 0.9, t=3.0)], 3.0) == []
    [h] = st.update([sig("x", 0.6, t=4.0)], 4.0)
    assert h.evidence_time == 4.0 and h.signals[0]["value"] == 0.6


def test_slow_speech_needs_8s_of_slow_call_time(default):
    st = default.start("c1")
    rate = lambda v, slow, slow_for, t: sig("speaking_rate", v, 0.7, t=t, evidence_time=1.0,
                                            slow=slow, slow_for_s=slow_for)
    assert st.update([rate(2.2, True, 4.0, 5.0)], 5.0) == []
    assert st.update([rate(2.4, True, 7.5, 8.5)], 8.5) == []
    [h] = st.update([rate(2.3, True, 9.0, 10.0)], 10.2)
    assert (h.queue, h.rules) == ("senior_human", ("slow_speech",))
    assert h.evidence_time == 1.0  # slow from the first utterance on
    # a caller whose rate is normal again: no hint however long the call
    st = default.start("c2")
    assert st.update([rate(4.9, False, 0.0, 30.0)], 30.0) == []
    # slow but the estimate rests on speech the recogniser did not follow
    st = default.start("c3")
    assert st.update([sig("speaking_rate", 2.0, 0.3, t=20.0, slow=True, slow_for_s=15.0)], 20.0) == []


def test_slow_speech_explains_away_the_cannot_follow_dialects(default):
    """A slow, halting Mandarin caller the recogniser garbles looks like Wu ("Chinese it
    cannot follow"): while the rate says slow (confidence >= 0.3) the wu/hakka/minnan rules
    do not fire (`none`), and the caller reaches the senior team by slow_speech instead."""
    wu = lambda t, conf=0.5: sig("language", {"mandarin": 0.3, "wu": 0.5, "cantonese": 0.2}, conf, t=t)
    slow = lambda t, conf, slow_for: sig("speaking_rate", 1.2, conf, t=t, evidence_time=1.0, slow=True,
                                         slow_for_s=slow_for)
    st = default.start("c1")
    assert st.update([slow(7.4, 0.52, 6.4), wu(7.8)], 7.8) == []
    [h] = st.update([slow(9.1, 0.59, 8.1)], 9.1)
    assert (h.queue, h.rules) == ("senior_human", ("slow_speech",))
    # an estimate too unsure to say slow does not hold the dialect back
    st = default.start("c2")
    [h] = st.update([slow(7.4, 0.2, 6.4), wu(7.8)], 7.8)
    assert (h.queue, h.rules) == ("wu_agent", ("wu",))
    # nor a normal rate, and a wu hint announced before the caller sounds slow stays
    st = default.start("c3")
    [h] = st.update([sig("speaking_rate", 4.8, 0.8, t=6.0, slow=False, slow_for_s=0.0), wu(7.8)], 7.8)
    assert h.queue == "wu_agent"
    # Cantonese evidence (tone, probe, words) is not "cannot follow": slowness leaves it
    st = default.start("c4")
    [h] = st.update([slow(7.4, 0.6, 6.4), sig("language", {"cantonese": 0.8, "mandarin": 0.2}, 0.8, t=7.8)], 7.8)
    assert h.queue == "cantonese_agent"


def test_none_conditions_block_a_rule_while_they_hold():
    p = policy("""
    [[rules]]
    name = "a"
    queue = "q"
    priority = 1
    all = [{ signal = "x", op = ">=", value = 0.5 }]
    none = [{ signal = "y", min_confidence = 0.4 }]
    """)
    assert p.rules[0].none[0].signal == "y" and "y" in p.signals
    st = p.start("c1")
    assert st.update([sig("y", True, 0.5, t=1.0), sig("x", 0.9, t=1.0)], 1.0) == []
    [h] = st.update([sig("y", False, 0.5, t=2.0)], 2.0)  # no longer holds
    assert h.queue == "q" and {s["signal"] for s in h.signals} == {"x"}
    st = p.start("c2")
    assert [h.queue for h in st.update([sig("y", True, 0.3, t=1.0), sig("x", 0.9, t=1.0)], 1.0)] == ["q"]


def test_sustain_s_holds_for_call_time():
    p = policy("""
    [[rules]]
    name = "sustained"
    queue = "q"
    priority = 1
    all = [{ signal = "x", field = "slow", sustain_s = 10.0 }]
    """)
    st = p.start("c1")
    slow = lambda t: sig("x", 2.0, 0.7, t=t, evidence_time=t - 1, slow=True)
    assert st.update([slow(3.0)], 3.0) == []  # slow since 2.0
    assert st.update([slow(7.0)], 7.0) == []
    assert st.evaluate(11.9) == []
    [h] = st.evaluate(12.0)
    assert h.evidence_time == pytest.approx(12.0)
    # a normal stretch resets the clock
    st = p.start("c2")
    st.update([slow(3.0)], 3.0)
    st.update([sig("x", 4.5, 0.7, t=6.0, slow=False)], 6.0)
    assert st.update([slow(9.0)], 13.0) == []
    assert st.evaluate(17.9) == []
    assert [h.queue for h in st.evaluate(18.0)] == ["q"]


def test_language_distribution_top_label(default):
    st = default.start("c1")
    assert st.update([sig("language", {"mandarin": 0.7, "cantonese": 0.3}, 0.7, t=4.0)], 4.0) == []
    [h] = st.update([sig("language", {"mandarin": 0.2, "cantonese": 0.8}, 0.8, t=8.0)], 8.5)
    assert h.queue == "cantonese_agent" and h.since_evidence_s == pytest.approx(0.5)


def test_same_queue_reemitted_only_on_material_rise_after_cooldown(default):
    slow = lambda conf, t: sig("speaking_rate", 2.0, conf, t=t, slow=True, slow_for_s=9.0)
    st = default.start("c1")
    assert len(st.update([slow(0.62, 5.0)], 5.0)) == 1
    assert st.update([slow(0.70, 20.0)], 20.0) == []  # +0.08: not material
    [h] = st.update([slow(0.90, 21.0)], 21.0)  # +0.28 over what was announced
    assert (h.reason, h.seq, h.previous) == ("confidence", 2, "senior_human")
    st = default.start("c2")
    st.update([slow(0.62, 5.0)], 5.0)
    assert st.update([slow(0.90, 8.0)], 8.0) == []  # within the 10 s cool-down
    assert st.evaluate(14.9) == []
    [h] = st.evaluate(15.0)
    assert (h.reason, h.seq, h.confidence) == ("confidence", 2, pytest.approx(0.9))
    assert st.evaluate(40.0) == []


def test_two_rules_for_one_queue_add_up(default):
    st = default.start("c1")
    [h1] = st.update([sig("keypad", {"first": "9", "digits": "9", "last": "9"}, 0.6, t=5.0)], 5.0)
    assert h1.confidence == pytest.approx(0.6)
    st.update([sig("speaking_rate", 2.0, 0.6, t=14.0, evidence_time=2.0, slow=True, slow_for_s=10.2)], 14.0)
    [h2] = st.evaluate(15.0)
    assert h2.rules == ("elders_line", "slow_speech")
    assert h2.confidence == pytest.approx(1 - 0.4 * 0.4)
    assert h2.reason == "confidence"


FLAP = """
version = 1
[hysteresis]
cooldown_s = 5.0
confidence_step = 0.15
release_margin = 0.1
hold_s = 10.0
[[rules]]
name = "a"
queue = "qa"
priority = 10
all = [{ signal = "x", min_confidence = 0.6 }]
[[rules]]
name = "b"
queue = "qb"
priority = 10
all = [{ signal = "y", min_confidence = 0.6 }]
"""


def test_release_margin_and_hold_prevent_flapping():
    p = policy(FLAP)
    st = p.start("c1")
    hints = []
    hints += st.update([sig("x", True, 0.7, t=1.0)], 1.0)
    assert [h.queue for h in hints] == ["qa"]
    # x wobbles just under its threshold: rule a still holds (release margin)
    hints += st.update([sig("x", True, 0.55, t=2.0), sig("y", True, 0.9, t=2.0)], 2.0)
    assert len(hints) == 1
    # x drops out; b has the same priority: it must wait hold_s (10 s) without support for qa
    hints += st.update([sig("x", True, 0.4, t=3.0)], 3.0)
    for t in range(4, 13):  # qa lost its support at 3.0
        hints += st.evaluate(float(t))
    assert len(hints) == 1
    hints += st.evaluate(13.0)
    assert [(h.queue, h.reason, h.previous) for h in hints[1:]] == [("qb", "change", "qa")]
    # a wobbling x again: no flap back within hold/cool-down
    for t in range(14, 20):
        hints += st.update([sig("x", True, 0.7 if t % 2 else 0.3, t=float(t))], float(t))
    assert len(hints) == 2


def test_evaluation_is_deterministic(default):
    seq = [
        ([sig("keypad", {"first": "1", "digits": "1", "last": "1"}, t=1.0)], 1.0),
        ([sig("language", {"cantonese": 0.9, "mandarin": 0.1}, 0.9, t=4.0)], 4.2),
        ([sig("speaking_rate", 2.1, 0.8, t=14.0, evidence_time=4.0, slow=True, slow_for_s=10.0)], 14.0),
        ([sig("human_request", True, 0.95, t=15.0, evidence_time=14.5)], 15.1),
    ]

    def run():
        st = default.start("c1", started_at=0.0)
        return [to_message(h) for signals, now in seq for h in st.update(signals, now)]

    a, b = run(), run()
    assert a == b
    assert [m["queue"] for m in a] == ["cantonese_agent", "senior_human", "human_now"]


def test_field_reads_evidence_and_ops():
    p = policy("""
    [[rules]]
    name = "loud"
    queue = "q"
    priority = 1
    any = [
      { signal = "s", field = "level", op = ">", value = 3 },
      { signal = "s", field = "words", op = "contains", value = "help" },
      { signal = "s", field = "lang", op = "in", value = ["yue", "wuu"] },
    ]
    min_any = 2
    """)
    st = p.start("c1")
    assert st.update([Signal("c1", "s", {"level": 5}, 0.9, 1.0, 1.0, {"words": "no"})], 1.0) == []
    [h] = st.update([Signal("c1", "s", {"level": 5}, 0.9, 2.0, 2.0, {"words": "Help me", "lang": "x"})], 2.0)
    assert len(h.signals) == 2
    # wrong types never match (and never raise)
    st = p.start("c2")
    assert st.update([Signal("c2", "s", {"level": "high"}, 0.9, 1.0, 1.0, {"words": 3, "lang": None})], 1.0) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("version = 2\n[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]", "unsupported policy version"),
        ("[[rules]]\nname='a'\nqueue='q'\nall=[{signal='x'}]", "priority"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x', op='~'}]", "unknown op"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x', op='>=', value='old'}]", "needs a number"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x', colour=1}]", r"unknown key\(s\) colour"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1", "needs conditions"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nnone=[{signal='x'}]", "needs conditions"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]\nnone=[{signal='y', op='~'}]", "none\\[0\\].*unknown op"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]\n[[rules]]\nname='a'\nqueue='r'\npriority=2\nall=[{signal='y'}]", "used twice"),
        ("[hysteresis]\ncooldown='soon'\n[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]", "unknown key"),
        ("rules = []", "at least one"),
        ("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x', min_confidence=2}]", "within 0..1"),
    ],
)
def test_bad_policies_are_refused_with_a_reason(text, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_policy(tomllib.loads(text), "bad.toml")
    assert "bad.toml" in str(e.value)


def test_load_policy_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_policy(bad)
    good = tmp_path / "mine.toml"
    good.write_text("[[rules]]\nname='a'\nqueue='q'\npriority=1\nall=[{signal='x'}]\n", encoding="utf-8")
    assert load_policy(good).name == "mine"


def test_skipping_idle_evaluations_changes_nothing(default):
    """update([], t) skips work until something can change; the hints must be those of a
    policy evaluated on every tick."""
    import random

    rng = random.Random(7)
    names = ["language", "speaking_rate", "human_request", "age_band", "low_comprehension", "x", "y"]
    flap = policy(FLAP + """
[[rules]]
name = "sustained"
queue = "qs"
priority = 20
all = [{ signal = "y", field = "slow", sustain_s = 3.0, max_age_s = 6.0 }]
""")
    for pol in (default, flap):
        for trial in range(8):
            events = {}
            for _ in range(12):
                t = round(rng.randrange(2000) * 0.02, 2)  # on a tick of the clock below
                name = rng.choice(names)
                conf = round(rng.uniform(0.3, 1.0), 2)
                value = {
                    "language": {"cantonese": conf, "mandarin": 1 - conf},
                    "speaking_rate": 2.5,
                    "age_band": "65+",
                    "low_comprehension": conf,
                }.get(name, True)
                ev = {"slow": rng.random() < 0.7, "slow_for_s": rng.uniform(0, 15), "utterances": rng.randint(1, 4)}
                events.setdefault(t, []).append(sig(name, value, conf, t=t, **ev))
            every, lazy = pol.start("c"), pol.start("c")
            a, b = [], []
            for i in range(2500):
                now = round(i * 0.02, 2)
                new = events.get(now, [])
                a += every.update(new, now) if new else every.evaluate(now)
                b += lazy.update(new, now)
            assert [to_message(h) for h in a] == [to_message(h) for h in b]


def test_docs_table_names_the_default_rules(default):
    """docs/policy.md's table of the default policy lists its rules and no other
    (it listed a `voice_senior` rule long after the policy dropped it)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    section = doc.split("## The default policy and why", 1)[1].split("\n## ", 1)[0]
    named = {n for row in re.findall(r"^\| (`[^|]+) \|", section, re.M) for n in re.findall(r"`([a-z_]+)`", row)}
    assert named == {r.name for r in default.rules}
