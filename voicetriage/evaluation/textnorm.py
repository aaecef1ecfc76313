"""Text normalisation and error rates for evaluations, tests and benchmarks."""

from __future__ import annotations

import functools
import re
import unicodedata


@functools.lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc  # optional: the test and bench extras install it
    except ImportError:
        return None
    return opencc.OpenCC("t2s")


def normalise(text: str, to_simplified: bool = True) -> str:
    """Lowercase, Traditional→Simplified (when opencc is installed), no punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    conv = _t2s() if to_simplified else None
    if conv is not None:
        text = conv.convert(text)
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two token lists."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate after :func:`normalise` (spaces ignored)."""
    ref = list(normalise(reference).replace(" ", ""))
    hyp = list(normalise(hypothesis).replace(" ", ""))
    return edit_distance(ref, hyp) / max(1, len(ref))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after :func:`normalise`."""
    ref = normalise(reference).split()
    hyp = normalise(hypothesis).split()
    return edit_distance(ref, hyp) / max(1, len(ref))
