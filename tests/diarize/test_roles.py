import pytest

from voicetriage.core.errors import ConfigError
from voicetriage.diarize.roles import Utterance, assign, is_greeting

SPEECH = [("SPEAKER_00", 10.0), ("SPEAKER_01", 14.0)]


def test_is_greeting():
    assert is_greeting("您好，欢迎致电国家电网")
    assert is_greeting("喂，你好")
    assert is_greeting("Hello, thank you for calling")
    assert is_greeting("Good morning, how can I help?")
    assert not is_greeting("我想查一下电费")
    assert not is_greeting("this is not hi-fi")  # a greeting word inside another word
    assert not is_greeting("I said hello to her yesterday")  # not in the opening words


def test_greeting_speaker_is_agent_even_when_second():
    utts = [Utterance("SPEAKER_01", 0.5, "喂？"), Utterance("SPEAKER_00", 1.5, "您好，请问有什么可以帮您")]
    # both open with a greeting-like word: "喂" counts, so fall back to who spoke first
    assert assign(SPEECH, utts) == {"SPEAKER_01": "agent", "SPEAKER_00": "caller"}
    utts = [Utterance("SPEAKER_01", 0.5, "我的电表坏了"), Utterance("SPEAKER_00", 1.5, "您好，请问有什么可以帮您")]
    assert assign(SPEECH, utts) == {"SPEAKER_00": "agent", "SPEAKER_01": "caller"}


def test_no_greeting_falls_back_to_first_speaker():
    utts = [Utterance("SPEAKER_01", 0.2, "ok"), Utterance("SPEAKER_00", 3.0, "yes")]
    assert assign(SPEECH, utts) == {"SPEAKER_01": "agent", "SPEAKER_00": "caller"}


def test_first_caller_and_none():
    utts = [Utterance("SPEAKER_00", 0.2, ""), Utterance("SPEAKER_01", 3.0, "")]
    assert assign(SPEECH, utts, "first-caller") == {"SPEAKER_00": "caller", "SPEAKER_01": "agent"}
    assert assign(SPEECH, utts, "first-agent") == {"SPEAKER_00": "agent", "SPEAKER_01": "caller"}
    assert assign(SPEECH, utts, "none") == {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01"}
    with pytest.raises(ConfigError, match="unknown roles rule"):
        assign(SPEECH, utts, "loudest")


def test_third_speaker_keeps_its_label():
    speech = SPEECH + [("SPEAKER_02", 2.0)]
    utts = [Utterance("SPEAKER_02", 0.1, "你好"), Utterance("SPEAKER_00", 1.0, "嗯"), Utterance("SPEAKER_01", 2.0, "对")]
    assert assign(speech, utts) == {"SPEAKER_02": "agent", "SPEAKER_01": "caller", "SPEAKER_00": "SPEAKER_00"}
