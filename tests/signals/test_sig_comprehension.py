"""Low comprehension from the recogniser's own confidence."""

from voicetriage.triage.signals.comprehension import (
    ComprehensionExtractor,
    not_followed,
)


def test_clean_speech_is_followed(final):
    score, _ = not_followed(final("我想查一下我的账户余额", logprob=-0.25, prob=0.99))
    assert score < 0.1


def test_garbled_speech_is_not(final):
    score, parts = not_followed(final("O som de venta, o som mere", language="pt", prob=0.34, logprob=-1.2))
    assert score > 0.9 and parts["logprob"] == 1.0
    score, parts = not_followed(final("Liang Xiao " + "Ke " * 20, logprob=-0.1))
    assert parts["degenerate"] > 0.5
    # long, clean text is not degenerate (a low share of distinct letters is normal there)
    long_text = ("Congratulations! You have successfully installed and executed the Asterisk open source "
                 "PBX software that should help you get started. Like a normal PBX, you will")
    assert not_followed(final(long_text, language="en", logprob=-0.1))[0] < 0.05


def test_value_is_share_of_recent_speech_not_followed(final):
    ex = ComprehensionExtractor("c1")
    a = ex.on_event(final("我想查一下", 0, 2, logprob=-0.2))[0]
    assert a.value < 0.1 and a.evidence["utterances"] == 1
    b = ex.on_event(final("根本是利多日與利益分配", 3, 5, logprob=-1.3, prob=0.6))[0]
    assert 0.4 < b.value < 0.6
    c = ex.on_event(final("而僙唔搁唔須睇啲", 6, 8, logprob=-1.5, prob=0.5))[0]
    assert c.value > b.value and c.confidence > a.confidence
    # the window forgets: four good utterances later the value is low again
    for i in range(4):
        out = ex.on_event(final("好的谢谢", 10 + 3 * i, 12 + 3 * i, logprob=-0.2))
    assert out and out[0].value < 0.1
