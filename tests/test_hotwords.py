"""Issue 9 item 5: ``[asr] hotwords`` primes zh decodes toward the request phrases
(faster-whisper's ``hotwords``: in the previous-text context, before any previous
text). Off by default; the dialect probe never carries it."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from voicetriage.core.config import AsrConfig, load_config
from voicetriage.core.errors import ConfigError

pytestmark = pytest.mark.model


def with_hotwords(asr, words: str):
    hot = copy.copy(asr)
    hot.config = dataclasses.replace(asr.config, hotwords=words)
    return hot


def test_hotwords_go_before_the_previous_text_on_zh_only(base_engine):
    asr = base_engine.asr
    hot = with_hotwords(asr, "转人工 人工服务")
    tok = asr._tokenizer("zh")
    words = tok.encode(" 转人工 人工服务")
    plain = asr._prompt("zh", None)
    assert tok.sot_prev not in plain  # off by default: no context at all
    p = hot._prompt("zh", None)
    assert p[0] == tok.sot_prev and p[1 : 1 + len(words)] == words and p[1 + len(words) :] == plain
    prev = hot._prompt("zh", "我想查电费")
    assert prev[1 : 1 + len(words)] == words and prev[1 + len(words) :] == asr._prompt("zh", "我想查电费")[1:]
    # other languages and the Cantonese/Mandarin probe are decoded as before
    assert hot._prompt("en", None) == asr._prompt("en", None)
    assert hot._prompt("zh", "嘅", hotwords=False) == asr._prompt("zh", "嘅")


def test_hotwords_config_default_and_type():
    assert AsrConfig().hotwords == ""
    assert load_config(asr={"hotwords": "转人工 真人"}).asr.hotwords == "转人工 真人"
    with pytest.raises(ConfigError):
        load_config(asr={"hotwords": ["转人工"]})
