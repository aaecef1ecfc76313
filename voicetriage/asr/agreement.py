"""Local agreement for partial results (as whisper_streaming does it).

Each new hypothesis for the utterance in progress is compared with the one
before; the longest common prefix of the two is confirmed ("stable") and never
taken back within the utterance. Chinese/Japanese text is compared character
by character, other text word by word.
"""

from __future__ import annotations

import re
import unicodedata

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def split_units(text: str) -> list[str]:
    """Comparable units: CJK characters one by one, other words with their space."""
    units: list[str] = []
    for token in re.findall(r"\s*\S+", text):
        if _CJK.search(token):
            lead = token[: len(token) - len(token.lstrip())]
            chars = list(token.strip())
            if chars:
                chars[0] = lead + chars[0]
            units.extend(chars)
        else:
            units.append(token)
    return units


def _key(unit: str) -> str:
    # punctuation and case wobble between hypotheses; they should not block agreement
    u = unicodedata.normalize("NFKC", unit).strip().lower()
    return "".join(ch for ch in u if not unicodedata.category(ch).startswith("P"))


class LocalAgreement:
    """Tracks one utterance's hypotheses; ``update`` returns (stable, unstable)."""

    def __init__(self) -> None:
        self._committed: list[str] = []
        self._previous: list[str] | None = None

    def reset(self) -> None:
        self._committed = []
        self._previous = None

    @property
    def stable(self) -> str:
        return "".join(self._committed).strip()

    def update(self, hypothesis: str) -> tuple[str, str]:
        units = split_units(hypothesis)
        if self._previous is not None:
            n = 0
            for a, b in zip(self._previous, units):
                if _key(a) != _key(b):
                    break
                n += 1
            if n > len(self._committed):
                self._committed = self._committed + units[len(self._committed) : n]
        self._previous = units
        # what follows the committed units in the newest hypothesis; where the
        # newest one disagrees inside the committed part, the committed text stands
        rest = "".join(units[len(self._committed) :])
        stable = "".join(self._committed).strip()
        unstable = rest if stable else rest.strip()
        return stable, unstable
