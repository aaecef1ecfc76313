"""Text helpers: normalisation, Traditional/Simplified, syllable counts."""

import pytest

from voicetriage.triage.signals.text import (
    count_syllables,
    countable,
    english_syllables,
    normalize,
    script_stats,
    similarity,
    to_simplified,
)


def test_normalize_folds_script_width_case_and_punctuation():
    assert normalize("轉人工服務！") == "转人工服务"
    assert normalize("ＡＧＥＮＴ，please") == "agent please"
    assert normalize("I don't   know.") == "i dont know"
    assert normalize("我要 转 人工") == "我要转人工"


def test_script_stats_tells_traditional_from_simplified():
    trad = script_stats("香港的消費市場從此不一樣")
    simp = script_stats("香港的消费市场从此不一样")
    assert trad.traditional_ratio == 1.0 and trad.traditional >= 3
    assert simp.traditional_ratio == 0.0 and simp.simplified >= 3
    assert script_stats("我们").traditional_ratio == 0.0
    assert script_stats("hello").traditional_ratio is None


def test_table_agrees_with_opencc():
    opencc = pytest.importorskip("opencc", reason="OpenCC (test extra) not installed")
    cc = opencc.OpenCC("t2s")
    sample = "劉備還說哪一指熟兵一齊嚴殺過去打到吾兵界敗去遺留給個八路兵馬以雷停萬軍之勢殺到吾兵屍橫遍野血流成河轉人工服務請幫我轉接客服"
    for ch in sample:
        assert to_simplified(ch) == cc.convert(ch), ch


@pytest.mark.parametrize("word,n", [("balance", 2), ("account", 2), ("please", 1), ("representative", 5),
                                    ("I", 1), ("like", 1), ("check", 1), ("123", 3)])
def test_english_syllables(word, n):
    assert english_syllables(word) == n


def test_count_syllables_mixes_han_and_latin():
    assert count_syllables("我想查一下") == 5
    assert count_syllables("I would like to check the balance on my account, please.") == 13
    assert count_syllables("12線城市") == 5  # digits are read one by one: yi er xian cheng shi


def test_countable_rejects_scripts_without_a_syllable_count():
    assert countable("原來黃麗雲是他家中")
    assert countable("lâu bị thung mạp")
    assert not countable("อยู่ในหวามลิกหวัง นี่")
    assert not countable("...")


def test_similarity():
    assert similarity("我要查话费", "我要查話費") == 1.0
    assert similarity("我要查话费", "今天天气很好") == 0.0
