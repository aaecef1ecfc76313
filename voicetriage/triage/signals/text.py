"""Transcript text helpers shared by the extractors: normalisation, script, syllables.

Whisper base writes Chinese in a mix of Traditional and Simplified characters
(Cantonese comes out mostly Traditional), so every phrase match runs on a
normalised form: Traditional folded to Simplified, full-width folded to
half-width, case folded, punctuation and spaces removed.

The Traditional -> Simplified table (``data/hanzi_t2s.tsv``) was generated from
OpenCC's single-character t2s/s2t conversions and ships with the package, so
the core gives the same answers whether or not OpenCC is installed; a test
checks the table against OpenCC when the test extra is there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_DATA = "data/hanzi_t2s.tsv"


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, str], frozenset[str], frozenset[str]]:
    """(t2s translate table, traditional-only chars, simplified-only chars)."""
    t2s: dict[int, str] = {}
    simplified_only: set[str] = set()
    text = resources.files(__package__).joinpath(_DATA).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        left, _, right = line.partition("\t")
        if left == "=":
            simplified_only.add(right)
        else:
            t2s[ord(left)] = right
    traditional = set(map(chr, t2s))
    # a character that both conversions change (乾/干 style) says nothing about the script
    ambiguous = traditional & simplified_only
    return t2s, frozenset(traditional - ambiguous), frozenset(simplified_only - ambiguous)


def to_simplified(text: str) -> str:
    """Fold Traditional characters to Simplified, one character at a time."""
    return text.translate(_tables()[0])


def is_han(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2FA1F
        or 0xF900 <= cp <= 0xFAFF
    )


_DROP = re.compile(r"[\s\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Matching form: NFKC (full-width -> ASCII), Simplified, lower case, no punctuation/space.

    Latin words keep single spaces between them so English phrases still match
    on word boundaries; Han characters are joined without spaces.
    """
    t = to_simplified(unicodedata.normalize("NFKC", text)).casefold()
    t = t.replace("'", "").replace("\u2019", "")  # don't -> dont: one token
    tokens = [tok for tok in _DROP.split(t) if tok]
    out: list[str] = []
    for tok in tokens:
        if out and (tok[0].isascii() and out[-1][-1].isascii()):
            out.append(" ")
        out.append(tok)
    return "".join(out)


@dataclass(frozen=True)
class ScriptStats:
    """How many Han characters a text has and in which script."""

    han: int
    traditional: int  # characters only Traditional text uses
    simplified: int  # characters only Simplified text uses
    latin_words: int

    @property
    def traditional_ratio(self) -> float | None:
        """Share of script-specific characters that are Traditional (None: no evidence)."""
        n = self.traditional + self.simplified
        return self.traditional / n if n else None


_LATIN_WORD = re.compile(r"[A-Za-z\u00C0-\u024F']+")


def script_stats(text: str) -> ScriptStats:
    _, trad, simp = _tables()
    han = t = s = 0
    for ch in text:
        if is_han(ch):
            han += 1
            if ch in trad:
                t += 1
            elif ch in simp:
                s += 1
    return ScriptStats(han, t, s, len(_LATIN_WORD.findall(unicodedata.normalize("NFKC", text))))


_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def english_syllables(word: str) -> int:
    """Estimated syllables of one English word (vowel groups, silent final e)."""
    w = word.lower().strip("'")
    if not w:
        return 0
    if w.isdigit():
        return max(1, len(w))  # digits are read out one by one on phone lines
    n = len(_VOWEL_GROUPS.findall(w))
    if len(w) > 2 and w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    if w.endswith("ed") and len(w) > 3 and w[-3] not in "td" and n > 1:
        n -= 1
    return max(1, n)


_WORD = re.compile(r"[A-Za-z\u00C0-\u024F']+|\d+")


def count_syllables(text: str) -> int:
    """Spoken syllables in a transcript: one per Han character, estimated per Latin word."""
    t = unicodedata.normalize("NFKC", text)
    n = sum(1 for ch in t if is_han(ch))
    for m in _WORD.finditer(t):
        n += english_syllables(m.group())
    return n


def countable(text: str, min_share: float = 0.8) -> bool:
    """Whether :func:`count_syllables` can count this text: mostly Han, Latin or digits.

    Whisper sometimes writes a dialect it cannot follow in Thai or another
    script whose syllables are not counted here.
    """
    letters = [ch for ch in unicodedata.normalize("NFKC", text) if ch.isalnum()]
    if not letters:
        return False
    ok = sum(1 for ch in letters if is_han(ch) or ch.isascii() or "\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff")
    return ok / len(letters) >= min_share


def char_bigrams(text: str) -> set[str]:
    """Character bigrams of the normalised text (for repeat detection)."""
    t = normalize(text).replace(" ", "")
    if len(t) < 2:
        return {t} if t else set()
    return {t[i : i + 2] for i in range(len(t) - 1)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of character bigrams, 0..1."""
    x, y = char_bigrams(a), char_bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


__all__ = [
    "to_simplified",
    "normalize",
    "is_han",
    "ScriptStats",
    "script_stats",
    "english_syllables",
    "count_syllables",
    "countable",
    "similarity",
]
