"""Speaking rate: articulation rate, pauses and the per-language slow threshold."""

import pytest

from voicetriage.triage.signals.options import SpeakingRateOptions
from voicetriage.triage.signals.rate import (
    SLOW_THRESHOLDS,
    THRESHOLD_SOURCES,
    SpeakingRateExtractor,
)


def test_normal_and_slow_mandarin(final):
    ex = SpeakingRateExtractor("c1")
    s = ex.on_event(final("我想查一下我的账户余额", 0.0, 2.4, speech_s=2.2))[0]  # 11 syllables / 2.2 s
    assert s.value == pytest.approx(5.0)
    assert s.evidence["slow"] is False and s.evidence["language"] == "mandarin"
    slow = SpeakingRateExtractor("c1")
    s = slow.on_event(final("我想查一下我的账户余额", 0.0, 6.0, speech_s=5.0))[0]  # 2.2 syl/s
    assert s.evidence["slow"] is True
    assert s.evidence["threshold"] == SLOW_THRESHOLDS["mandarin"]
    assert s.evidence["threshold_source"] == THRESHOLD_SOURCES["mandarin"]
    assert s.evidence["slow_speech_s"] == pytest.approx(5.0)


def test_pauses_between_utterances(final):
    ex = SpeakingRateExtractor("c1")
    ex.on_event(final("我想查一下", 0.0, 1.5, speech_s=1.2))
    ex.on_event(final("我的账户", 3.0, 4.2, speech_s=1.0))  # 1.5 s gap: long pause
    s = ex.on_event(final("余额还有多少", 4.8, 6.5, speech_s=1.5))[0]  # 0.6 s gap: not long
    e = s.evidence
    assert e["long_pauses"] == 1
    assert e["pause_ratio"] == pytest.approx(1 - 3.7 / (1.5 + 1.2 + 1.7 + 1.5 + 0.6), abs=1e-3)
    assert e["speech_rate"] < e["articulation_rate"]


def test_no_estimate_before_enough_speech_and_for_uncountable_text(final):
    ex = SpeakingRateExtractor("c1")
    assert ex.on_event(final("好", 0, 0.4, speech_s=0.3)) == []
    assert ex.on_event(final("อยู่ในหวามลิกหวัง", 1, 4, language="th")) == []


def test_english_syllables_and_configured_threshold(final):
    ex = SpeakingRateExtractor("c1", SpeakingRateOptions(slow_syllables_per_s={"english": 5.0}))
    s = ex.on_event(final("I would like to check the balance on my account please", 0, 3.2,
                          speech_s=3.0, language="en"))[0]
    assert s.value == pytest.approx(13 / 3.0, rel=1e-3)
    assert s.evidence["slow"] is True and s.evidence["threshold_source"] == "configured"


def test_low_asr_confidence_lowers_confidence(final):
    good = SpeakingRateExtractor("c1").on_event(final("我想查一下我的账户余额", 0, 3, logprob=-0.2))[0]
    bad = SpeakingRateExtractor("c1").on_event(final("我想查一下我的账户余额", 0, 3, logprob=-1.5))[0]
    assert bad.confidence < good.confidence / 2


def halting_call(final, chunks, gap=2.0, voiced=0.9, rate_lang="zh"):
    """A caller who says a few syllables, stops ``gap`` s, goes on: finals as the segmenter gives them."""
    t, out = 0.0, []
    for i, text in enumerate(chunks):
        out.append(final(text, t, t + voiced + 0.2, utterance=i, speech_s=voiced, language=rate_lang))
        t += voiced + 0.2 + gap
    return out


def test_halting_speech_is_slow_even_at_a_normal_articulation_rate(final):
    # 喂，你好，我，想问一下，我家，电费，怎么，这么多: 2-3 syllables in 0.9 s (about
    # 3 syl/s of articulation, near normal) but 2 s pauses between
    ex = SpeakingRateExtractor("c1")
    chunks = ["喂你好", "我想问", "一下我家", "电费", "怎么", "这么多", "我想问"]
    sigs = [s for f in halting_call(final, chunks) for s in ex.on_event(f)]
    last = sigs[-1].evidence
    assert last["slow"] is True and "halting" in last["pattern"]
    assert last["pause_ratio"] >= 0.45 and last["call_rate"] < 2.0
    # flagged (slow, with slow_for_s >= 8 for the policy) well within 20 s of call time
    first = next(s for s in sigs if s.evidence["slow"] and s.evidence["slow_for_s"] >= 8.0)
    assert first.time <= 20.0 and first.confidence >= 0.5


def test_quick_speech_with_turn_taking_gaps_is_not_slow(final):
    # normal sentences; the caller waits for the bot (6 s gaps are turn-taking, not pauses)
    ex = SpeakingRateExtractor("c1")
    texts = ["我想查一下这个月的电费是多少", "我的户号是一二三四五六", "好的谢谢你"]
    t, sigs = 0.0, []
    for i, text in enumerate(texts):
        d = len(text) / 5.0
        sigs += ex.on_event(final(text, t, t + d + 0.3, utterance=i, speech_s=d))
        t += d + 0.3 + 6.0
    assert sigs and all(s.evidence["slow"] is False for s in sigs)
    # and fluent speech with short breathing pauses is not halting either
    ex = SpeakingRateExtractor("c2")
    sigs = [s for f in halting_call(final, ["我想查一下这个", "月的电费是", "多少钱啊"], gap=0.5, voiced=1.3)
            for s in ex.on_event(f)]
    assert all(s.evidence["slow"] is False for s in sigs)


def test_slow_for_s_restarts_after_a_turn(final):
    ex = SpeakingRateExtractor("c1")
    for f in halting_call(final, ["喂你好", "我想问", "一下我家", "电费"]):
        ex.on_event(f)
    later = ex.on_event(final("我想查一下这个月的电费是多少钱", 40.0, 43.0, utterance=9, speech_s=2.8))
    assert later and later[-1].evidence["slow_for_s"] <= 3.5
