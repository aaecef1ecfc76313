"""Speaking rate: articulation rate, pauses and the per-language slow threshold."""

import pytest

from voicetriage.signals.options import SpeakingRateOptions
from voicetriage.signals.rate import SLOW_THRESHOLDS, THRESHOLD_SOURCES, SpeakingRateExtractor


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
