"""Error rates and percentiles.

Chinese text is scored by characters (CER) after Traditional->Simplified
(opencc t2s: Whisper base mixes both scripts) with punctuation and spaces
stripped; English by words (WER) after lower-casing and stripping punctuation.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

from voicetriage.evaluation.textnorm import edit_distance

CJK_LANGS = {"cmn", "yue", "wuu", "hak", "nan", "zh"}


@lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc
    except ImportError:  # scoring still works, Traditional characters then count as errors
        return None
    return opencc.OpenCC("t2s")


def normalise(text: str, language: str) -> str:
    """Comparable form of ``text``: simplified script, no punctuation, lower case."""
    if language in CJK_LANGS:
        conv = _t2s()
        if conv is not None:
            text = conv.convert(text)
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZ" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


_NUMBERS = "zero one two three four five six seven eight nine ten".split()


def _spell_numbers(words: list[str]) -> list[str]:
    """Small numbers as words ("1 2 3" and "one two three" are the same answer)."""
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) <= 10 else w for w in words]


def units(text: str, language: str) -> list[str]:
    """Characters for Chinese (Latin words inside count as one unit each), words otherwise."""
    norm = normalise(text, language)
    if language in CJK_LANGS:
        return re.findall(r"[a-z0-9']+|\S", norm)
    return _spell_numbers(norm.split())


def error_counts(reference: str, hypothesis: str, language: str) -> tuple[int, int]:
    """(edits, reference length) in characters (Chinese) or words."""
    ref = units(reference, language)
    hyp = units(hypothesis, language)
    return edit_distance(ref, hyp), len(ref)


def metric_name(language: str) -> str:
    return "cer" if language in CJK_LANGS else "wer"


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values, inf stays inf."""
    xs = sorted(values)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi or xs[hi] == xs[lo]:
        return xs[lo]
    if math.isinf(xs[hi]):
        return math.inf
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


__all__ = ["normalise", "units", "edit_distance", "error_counts", "metric_name", "percentile", "CJK_LANGS"]
