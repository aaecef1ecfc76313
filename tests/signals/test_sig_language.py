"""Language/dialect distribution from synthetic finals."""

import pytest

from voicetriage.triage.signals.language import LanguageExtractor, utterance_evidence
from voicetriage.triage.signals.options import LANGUAGES, LanguageOptions


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


# the detector's candidates as Whisper base gives them (tuning half of ../shared/eval)
MANDARIN_CANDS = (("zh", 0.9984), ("en", 0.0005), ("ja", 0.0003), ("ko", 0.0001), ("ru", 0.0001))
CANTONESE_CANDS = (("zh", 0.9938), ("vi", 0.0031), ("th", 0.0016), ("en", 0.0008), ("ko", 0.0002))
DIALECT_QUEUES = {"cantonese_agent", "wu_agent", "hakka_agent", "minnan_agent"}


def route(signals):
    """The queues the default policy sends a call to, given its language signals in order."""
    from voicetriage.triage.policy import load_policy

    st = load_policy().start("c1")
    return {h.queue for s in signals for h in st.update([s], s.time)}


def run_all(finals):
    ex = LanguageExtractor("c1")
    return [s for f in finals for s in ex.on_event(f)]


@pytest.mark.parametrize("probe, cands", [(None, ()), (-0.13, MANDARIN_CANDS), (0.02, MANDARIN_CANDS)])
def test_mandarin_in_traditional_script_is_not_cantonese(final, probe, cands):
    # Whisper base writes plain Mandarin in Traditional characters (three of four
    # neutral Mandarin test calls went to cantonese_agent on main)
    texts = ["我的銀行卡被鎖了,輸了三次密碼", "現在取不了錢。", "請問這個月的養老金什麼時候到賬?",
             "你們的營業廳在哪裡,週末幾點下班?"]
    sigs = run_all([final(t, 3 * i, 3 * i + 2.5, utterance=i, prob=1.0, logprob=-0.2, candidates=cands,
                          probe=probe) for i, t in enumerate(texts)])
    assert all(sg.evidence["label"] == "mandarin" for sg in sigs)
    # no cue at all leaves Cantonese at its prior share (about 0.25); cues push it down
    assert max(sg.value["cantonese"] for sg in sigs) < (0.3 if probe is None else 0.1)
    assert not route(sigs) & DIALECT_QUEUES


def test_traditional_script_alone_is_no_cantonese_evidence(final):
    trad = run([final("香港的消費市場從此不一樣")])
    neutral = run([final("我想查一下我的")])  # characters written alike in both scripts
    simp = run([final("香港的消费市场从此不一样")])
    assert trad.evidence["label"] == simp.evidence["label"] == "mandarin"
    assert trad.value["cantonese"] == pytest.approx(neutral.value["cantonese"], abs=0.01)
    assert simp.value["cantonese"] < trad.value["cantonese"]  # Simplified: mildly against


def test_cantonese_particles_route_to_cantonese(final):
    sigs = run_all([final("佢哋嘅服務態度係好好嘅", 0, 3, logprob=-0.5),
                    final("我哋首先處理咗一件", 4, 6, utterance=1, logprob=-0.6)])
    assert sigs[-1].evidence["label"] == "cantonese" and sigs[-1].confidence >= 0.6
    assert "cantonese_agent" in route(sigs)


def test_tone_language_doubt_and_the_probe_point_to_cantonese(final):
    # written-Mandarin text (Whisper rewrites Cantonese), but the detector's doubt goes
    # to Vietnamese/Thai and the Cantonese prompt fits better
    yue = run_all([final("無論是提出任何的要求", 0, 2.3, prob=0.998, logprob=-0.3,
                         candidates=CANTONESE_CANDS, probe=0.24)])
    assert yue[-1].evidence["label"] == "cantonese" and yue[-1].confidence >= 0.6
    assert yue[-1].evidence["last"]["tonal_cue"] > 0 and yue[-1].evidence["last"]["probe_cue"] > 0
    assert "cantonese_agent" in route(yue)
    # the same text with Mandarin's doubt and probe
    cmn = run([final("無論是提出任何的要求", 0, 2.3, prob=0.998, logprob=-0.3,
                     candidates=MANDARIN_CANDS, probe=-0.1)])
    assert cmn.evidence["label"] == "mandarin" and cmn.value["cantonese"] < 0.1


def test_a_broken_probe_is_no_cantonese_evidence(final):
    # the Mandarin-prompt decode collapsed to "。" (avg log-prob -3.9): a delta of 3.4
    s = run([final("希望你以後能夠做得比我還好", 0, 3, prob=0.997, logprob=-0.4, candidates=MANDARIN_CANDS,
                   probe=3.39)])
    assert "probe_cue" not in s.evidence["last"]
    assert s.evidence["label"] == "mandarin" and s.value["cantonese"] < 0.1


def test_chinese_the_model_cannot_follow_goes_to_wu_not_mandarin(final):
    # Wu as Whisper base hears it: zh with little probability, poor log-prob, fallback
    # decodes, Burmese/Tibetan/Korean among the candidates
    wu = [final("加格格的机会奉奉相应", 0, 5, prob=0.64, logprob=-1.5, temperature=1.0,
                candidates=(("zh", 0.64), ("my", 0.28), ("bo", 0.03), ("en", 0.01), ("th", 0.006))),
          final("正方柏阳的边阿转转片", 6, 9, utterance=1, prob=0.66, logprob=-1.29, temperature=1.0,
                candidates=(("zh", 0.66), ("my", 0.21), ("en", 0.07), ("bo", 0.02), ("ms", 0.006)))]
    sigs = run_all(wu)
    assert sigs[-1].evidence["label"] == "wu" and sigs[-1].confidence >= 0.45
    assert "wu_agent" in route(sigs)
    # Mandarin the model follows cleanly counts against Wu, Hakka and Minnan
    cmn = run([final("甚至出现交易几乎停滞的情况", 0, 4, prob=0.999, logprob=-0.21, candidates=MANDARIN_CANDS)])
    assert cmn.value["wu"] + cmn.value["hakka"] + cmn.value["minnan"] < 0.1


def test_the_call_decides_not_one_utterance(final):
    # a Mandarin caller with one doubtful, faintly Cantonese-like utterance among clean ones
    finals = [final("我想查一下這個月的電費是多少", 0, 4, prob=1.0, logprob=-0.12, candidates=MANDARIN_CANDS,
                    probe=-0.13),
              final("聽說你們有客服", 5, 7, utterance=1, prob=0.99, logprob=-0.7, candidates=CANTONESE_CANDS,
                    probe=0.1),
              final("它能幫我查賬單嗎", 8, 10, utterance=2, prob=0.99, logprob=-0.3, candidates=MANDARIN_CANDS,
                    probe=-0.08)]
    sigs = run_all(finals)
    assert sigs[-1].evidence["label"] == "mandarin"
    assert not route(sigs) & DIALECT_QUEUES


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


# --- the dialect classifier's margins (Final.dialect_scores) as call-level evidence ---

MANDARIN_TEXTS = ["我的銀行卡被鎖了,輸了三次密碼", "現在取不了錢。", "請問這個月的養老金什麼時候到賬?",
                  "你們的營業廳在哪裡,週末幾點下班?"]


def _calls(final, margins, texts=MANDARIN_TEXTS, cands=CANTONESE_CANDS):
    return run_all([final(t, 3 * i, 3 * i + 2.5, utterance=i, prob=1.0, logprob=-0.4, candidates=cands,
                          dialect=m) for i, (t, m) in enumerate(zip(texts, margins))])


def test_classifier_margins_past_the_bound_route_to_cantonese(final):
    sigs = _calls(final, [{"cantonese": 2.0, "wu": -1.0}] * 4)
    assert sigs[-1].evidence["label"] == "cantonese"
    assert "cantonese_agent" in route(sigs)
    assert sigs[-1].evidence["classifier"]["cantonese"] > 0


def test_classifier_below_the_bound_is_no_dialect_evidence(final):
    # Mandarin callers' margins sit below 0 by construction (the bound is above every
    # cross-validated Mandarin call): margins well below it pull the call back from a
    # dialect queue that the tone-language doubt alone would have sent it to
    with_clf = _calls(final, [{"cantonese": -2.5, "wu": -3.0}] * 4)
    without = _calls(final, [None] * 4)
    assert "cantonese_agent" in route(without)
    assert not route(with_clf) & DIALECT_QUEUES
    assert with_clf[-1].value["cantonese"] < without[-1].value["cantonese"]
    assert with_clf[-1].value["mandarin"] > without[-1].value["mandarin"]
    # Mandarin-like on both classified dialects counts against Hakka and Minnan too
    clf = with_clf[-1].evidence["classifier"]
    assert clf["hakka"] == clf["minnan"] == min(clf["cantonese"], clf["wu"]) < 0


def test_classifier_is_call_level_not_one_final(final):
    # one final far past the bound among three below it does not make the call Cantonese
    sigs = _calls(final, [{"cantonese": 2.0, "wu": 0.0}] + [{"cantonese": -1.5, "wu": -2.0}] * 3,
                  cands=MANDARIN_CANDS)
    assert not route(sigs) & DIALECT_QUEUES
    assert sigs[-1].evidence["label"] == "mandarin"


def test_classifier_wu_margin_goes_to_wu_only(final):
    sigs = _calls(final, [{"cantonese": -1.0, "wu": 2.0}] * 4, cands=MANDARIN_CANDS)
    v = sigs[-1].value
    assert v["wu"] > v["hakka"] and v["wu"] > v["minnan"] and v["wu"] > v["cantonese"]
    assert "cantonese_agent" not in route(sigs)


def test_a_short_fragment_past_the_bound_counts_little(final):
    one = run_all([final("好的", 0, 0.6, speech_s=0.5, candidates=MANDARIN_CANDS,
                         dialect={"cantonese": 2.0, "wu": 2.0})])
    assert not route(one) & DIALECT_QUEUES


def test_the_fallback_cue_reads_the_flag_when_the_fallback_did_not_sample():
    """asr.fallback_logprob_temperatures = 0 leaves an unsure final at temperature 0;
    its ``fallback_needed`` flag keeps the "cannot follow" cue (and the routing)."""
    import dataclasses

    from tests.signals.sigtools import make_final
    from voicetriage.triage.signals.language import _unfamiliar_cue

    sampled = make_final("加格格的机会奉奉相应", prob=0.64, logprob=-1.5, temperature=0.2)
    greedy = make_final("加格格的机会奉奉相应", prob=0.64, logprob=-1.5)
    flagged = dataclasses.replace(greedy, fallback_needed=True)
    assert _unfamiliar_cue(flagged, 0.64) == _unfamiliar_cue(sampled, 0.64) == _unfamiliar_cue(greedy, 0.64) + 0.3
