from voicetriage.asr.agreement import LocalAgreement, split_units


def test_split_units():
    assert split_units("and so my") == ["and", " so", " my"]
    assert split_units("今天我 go") == ["今", "天", "我", " go"]


def test_prefix_confirmed_by_two_hypotheses():
    la = LocalAgreement()
    assert la.update("And so my") == ("", "And so my")
    assert la.update("And so my fellow Amer") == ("And so my", " fellow Amer")
    stable, unstable = la.update("And so, my fellow Americans ask")
    assert stable == "And so my fellow" and unstable == " Americans ask"


def test_stable_never_shrinks_or_changes():
    la = LocalAgreement()
    la.update("今天我帶大家")
    la.update("今天我帶大家去")
    assert la.stable == "今天我帶大家"
    stable, unstable = la.update("今天我答大家去見識")
    assert stable == "今天我帶大家"
    assert unstable == "去見識"


def test_reset():
    la = LocalAgreement()
    la.update("hello there")
    la.update("hello there you")
    la.reset()
    assert la.update("new words") == ("", "new words")
