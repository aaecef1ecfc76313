"""Language/dialect distribution from synthetic finals."""

import pytest

from voicetriage.signals.language import LanguageExtractor, utterance_evidence
from voicetriage.signals.options import LANGUAGES, LanguageOptions


def run(finals):
    ex = LanguageExtractor("c1")
    out = []
    for f in finals:
        out += ex.on_event(f)
    return out[-1] if out else None


def test_distribution_over_all_labels(final):
    s = run([final("我想查一下我的账户余额")])
    assert set(s.value) == set(LANGUAGES)
    assert sum(s.value.values()) == pytest.approx(1.0, abs=1e-3)
    assert s.evidence["label"] == max(s.value, key=s.value.get)


def test_simplified_mandarin(final):
    s = run([final("我想查一下我的账户余额", logprob=-0.25)])
    assert s.evidence["label"] == "mandarin" and s.value["mandarin"] > 0.6


def test_cantonese_markers_beat_the_mandarin_prior(final):
    s = run([final("我哋首先第一步處理咗一件", logprob=-0.6), final("佢話冇嘢喺度", 3, 5, logprob=-0.7)])
    assert s.evidence["label"] == "cantonese" and s.confidence >= 0.6


def test_traditional_script_alone_is_only_modest_evidence(final):
    one = run([final("香港的消費市場從此不一樣")])
    assert one.value["cantonese"] > run([final("香港的消费市场从此不一样")]).value["cantonese"]
    assert one.confidence < 0.6  # one Traditional sentence is not enough to route


def test_marker_kei_is_not_confused_with_simplified_xi(final):
    # 係 is Cantonese "to be"; 关系 / 系统 in Simplified text are plain Mandarin
    assert run([final("这个系统和我们有关系")]).value["cantonese"] < 0.2


def test_wu_markers(final):
    s = run([final("侬晓得伐阿拉屋里向老好个", logprob=-0.8), final("伊拉侪勿来", 3, 5, logprob=-0.9)])
    assert s.evidence["label"] == "wu"


def test_garbled_chinese_after_chinese_points_to_an_unseen_dialect(final):
    s = run([final("阿拉今朝", logprob=-0.6),
             final("O som de venta o som mere", 3, 6, language="pt", prob=0.34, logprob=-1.2),
             final("根本是利多日與利益分配", 7, 10, prob=0.67, logprob=-1.1)])
    assert s.value["wu"] + s.value["hakka"] + s.value["minnan"] > s.value["mandarin"]


def test_english_and_other(final):
    assert run([final("I would like to check my balance", language="en", prob=0.98)]).evidence["label"] == "english"
    s = run([final("Veuillez laisser votre message", language="fr", prob=0.95, logprob=-0.3),
             final("après le signal sonore", 3, 5, language="fr", prob=0.97, logprob=-0.3)])
    assert s.evidence["label"] == "other"


def test_vietnamese_mistake_is_cantonese_evidence(final):
    e = utterance_evidence(final("Thế này là đại ca", language="vi", prob=1.0, logprob=-1.9))
    assert e.scores["cantonese"] > e.scores["mandarin"]


def test_configured_prior(final):
    ex = LanguageExtractor("c1", LanguageOptions(prior={"cantonese": 3.0}))
    s = ex.on_event(final("香港的消費市場從此不一樣"))[0]
    assert s.evidence["label"] == "cantonese"


def test_ignores_agent_and_empty(final):
    ex = LanguageExtractor("c1")
    assert ex.on_event(final("我想查一下", track="agent")) == []
    assert ex.on_event(final("")) == []


def test_evidence_is_bounded_so_the_call_can_change_its_mind(final):
    ex = LanguageExtractor("c1")
    for i in range(12):
        ex.on_event(final("我想查一下我的账户余额", i * 3, i * 3 + 2, logprob=-0.2))
    for i in range(12, 20):
        s = ex.on_event(final("佢話冇嘢喺度我哋睇咗", i * 3, i * 3 + 2, logprob=-0.5))
    assert s[0].evidence["label"] == "cantonese"
