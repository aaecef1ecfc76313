"""Language and dialect of the caller, as a distribution, from every caller final.

Whisper base alone cannot tell the Chinese varieties apart: Cantonese comes
out as ``zh`` with probability ~0.99, rewritten into written Chinese. So each
final adds log-odds evidence from several weak sources, accumulated over the
call and turned into a distribution with a softmax:

* Whisper's language and its probability (``zh`` -> the Chinese varieties,
  ``en`` -> English, other codes -> other);
* the script: Whisper base writes Cantonese audio in Traditional characters
  and Mandarin audio in Simplified ones (measured on ../shared/eval: 14 of 15
  Cantonese clips Traditional; see docs/signals.md);
* marker characters and words that only Cantonese, Wu, Hakka or Minnan
  use (嘅 咗 佢 冇 / 侬 阿拉 伐 / 𠊎 / 袂 佇 ...), matched on the raw text (so
  係 is not confused with Simplified 系) and on its Simplified form;
* ASR confidence: Chinese speech the model cannot follow (low avg log-prob,
  low language probability, or a made-up language such as ``la``/``pt`` for a
  caller who otherwise speaks Chinese) is evidence for a dialect it was not
  trained on (Wu, Hakka, Minnan) rather than for Mandarin.

The weights are set by hand from those measurements (not fitted to the
evaluation set) and are listed in docs/signals.md with the accuracy they give.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..events import Final
from .base import CALLER, Signal
from .options import LANGUAGES, LanguageOptions
from .text import script_stats, to_simplified

# log-odds before any speech: a Chinese-language hotline
DEFAULT_PRIOR = {
    "mandarin": 1.0,
    "cantonese": 0.0,
    "wu": -0.5,
    "hakka": -1.5,
    "minnan": -1.5,
    "english": 0.0,
    "other": -0.5,
}

CHINESE = ("mandarin", "cantonese", "wu", "hakka", "minnan")

# Whisper language codes that name a variety directly (large-v3 knows "yue")
_WHISPER_DIRECT = {"yue": "cantonese", "en": "english", "zh": None}

# (pattern, weight) per variety; patterns in Simplified form unless noted.
# Strong markers: words a Mandarin speaker would not write.
MARKERS: dict[str, tuple[tuple[str, float], ...]] = {
    "cantonese": (
        ("嘅", 1.5), ("咗", 1.5), ("佢", 1.2), ("冇", 1.5), ("喺", 1.5), ("哋", 1.5),
        ("嘢", 1.5), ("啲", 1.2), ("嚟", 1.5), ("睇", 1.5), ("噉", 1.5), ("乜", 1.0),
        ("咩", 1.0), ("嗰", 1.5), ("畀", 1.2), ("攞", 1.5), ("谂", 1.5), ("嘥", 1.5),
        ("揾", 1.5), ("搵", 1.5), ("啱", 1.5), ("嘞", 1.0), ("㗎", 1.5), ("噃", 1.5),
        ("喎", 1.5), ("瞓", 1.5), ("嬲", 1.5), ("唔", 1.2), ("咁", 0.8), ("仲", 0.4),
        ("琴日", 1.5), ("听日", 1.2), ("而家", 1.2), ("点解", 1.2), ("边度", 1.2),
        ("唔该", 1.5), ("多谢", 0.5), ("靓", 0.6), ("返工", 1.0), ("食饭", 0.6),
    ),
    "wu": (
        ("侬", 1.5), ("阿拉", 1.5), ("伊拉", 1.5), ("搿", 1.5), ("侪", 1.5), ("覅", 1.5),
        ("㑚", 1.5), ("哪能", 1.2), ("辰光", 1.2), ("物事", 1.0), ("事体", 1.0),
        ("今朝", 1.0), ("明朝", 0.6), ("倷", 1.5), ("勿", 0.8), ("伐", 0.8), ("辣辣", 1.0),
        ("交关", 1.0), ("晓得伐", 1.5), ("老好", 0.8), ("屋里向", 1.5), ("里向", 1.0),
        ("弗", 0.6), ("个辰光", 0.5),
    ),
    "hakka": (
        ("𠊎", 2.0), ("厓", 1.2), ("恁", 0.6), ("毋", 0.6), ("么个", 1.2), ("麽个", 1.2),
        ("食饱", 0.6), ("系么", 0.8),
    ),
    "minnan": (
        ("袂", 1.5), ("佇", 1.5), ("伫", 1.0), ("攏", 1.2), ("拢", 0.8), ("按怎", 1.5),
        ("啥物", 1.5), ("阮", 0.8), ("恁", 0.6), ("毋", 0.6), ("欲", 0.5), ("足", 0.2),
        ("歹势", 1.5), ("呷", 1.0),
    ),
}
# raw (unconverted) markers: 係 is Cantonese "is", but its Simplified form 系 is plain Mandarin
RAW_MARKERS: dict[str, tuple[tuple[str, float], ...]] = {
    "cantonese": (("係", 0.8), ("唔係", 1.0), ("嗰", 0.5)),
}
_NOT_MARKER = re.compile("关系|關係|联系|聯繫|係數")
MARKER_CAP = 4.0  # per utterance, per variety

TONAL_MISTAKES = frozenset({"vi", "th", "lo", "km"})
_OTHER_WORD = re.compile(r"[^\W\d_\u3400-\u9fff\uf900-\ufaff]+")  # words of any non-Han script

# evidence weights (log-odds units)
W_ZH = 3.0  # Whisper says zh/yue
W_EN = 4.0  # Whisper says en
W_OTHER = 3.0  # Whisper names another language confidently
W_TRADITIONAL = 1.4  # log likelihood ratio of all-Traditional text, Cantonese vs Mandarin (~0.9/0.25)
W_SIMPLIFIED = 2.0  # all-Simplified text, Mandarin vs Cantonese (~0.75/0.07, damped)
W_TONAL = 2.0  # Whisper says vi/th/lo/km/my on a Chinese line
W_UNSURE_ZH = 1.0
W_GARBLED = 1.5  # Chinese the model could not follow -> unseen dialect


@dataclass(frozen=True)
class UtteranceEvidence:
    """What one final says about the language, in log-odds per label."""

    scores: dict[str, float]
    weight: float
    notes: dict[str, object]


def _markers(raw: str, simp: str) -> dict[str, tuple[float, list[str]]]:
    out: dict[str, tuple[float, list[str]]] = {}
    raw = _NOT_MARKER.sub("", raw)
    simp = _NOT_MARKER.sub("", simp)
    for variety, table in MARKERS.items():
        total, found = 0.0, []
        for pat, w in table:
            n = simp.count(pat)
            if n:
                total += w * min(n, 2)
                found.append(pat)
        for pat, w in RAW_MARKERS.get(variety, ()):
            n = raw.count(pat)
            if n:
                total += w * min(n, 2)
                found.append(pat)
        if found:
            out[variety] = (min(total, MARKER_CAP), found)
    return out


def utterance_evidence(final: Final, min_han: int = 4, chinese_so_far: float = 0.0) -> UtteranceEvidence | None:
    """Log-odds evidence from one final, or None when it carries none.

    ``chinese_so_far`` (0..1) is how Chinese the call looked before: garbled
    text from a caller who spoke Chinese earlier reads as dialect, not as a
    foreign language.
    """
    text = final.text.strip()
    if not text:
        return None
    s = script_stats(text)
    scores = {k: 0.0 for k in LANGUAGES}
    notes: dict[str, object] = {}
    lang = (final.language or "").lower()
    p = max(0.0, min(1.0, final.language_probability))
    logprob = final.avg_logprob
    garbled = logprob < -1.0 or (final.no_speech_prob > 0.6 and logprob < -0.7)
    notes["whisper"] = f"{lang or '?'} {p:.2f}"
    notes["avg_logprob"] = round(logprob, 2)

    if lang in ("zh", "yue"):
        for k in CHINESE:
            scores[k] += W_ZH * p
        if lang == "yue":
            scores["cantonese"] += W_ZH * p
        elif p < 0.85:
            # unsure it is Chinese at all: Wu came out as zh 0.67-0.73 here
            for k in ("wu", "hakka", "minnan"):
                scores[k] += W_UNSURE_ZH * (0.85 - p) / 0.35
    elif lang in TONAL_MISTAKES and not garbled:
        # Whisper base hears Cantonese as Vietnamese/Thai now and then (3 of 19
        # Cantonese calls in ../shared/eval), never Mandarin there
        scores["cantonese"] += W_TONAL * p
        scores["other"] += 0.5 * W_TONAL * p
        notes["tonal_mistake"] = lang
    elif lang and garbled:
        # a language named with a poor score (Wu came out as pt, ja, ko, my, es and
        # even "I don't know." in English): speech the model cannot follow. From a
        # caller who sounded Chinese before, that is a dialect, and Whisper base
        # follows Mandarin well, so it is not Mandarin.
        share = chinese_so_far
        scores["other"] += 1.0 * (1 - share)
        for k in ("wu", "hakka", "minnan"):
            scores[k] += 1.5 * share
        scores["cantonese"] += 0.5 * share
        scores["mandarin"] -= 1.0
        if lang == "en":  # a noisy English line stays possible
            scores["english"] += 1.0 * p
        notes["unfamiliar"] = True
    elif lang == "en":
        scores["english"] += W_EN * p
    elif lang in TONAL_MISTAKES:
        scores["cantonese"] += W_TONAL * p
        scores["other"] += 0.5 * W_TONAL * p
        notes["tonal_mistake"] = lang
    elif lang:
        scores["other"] += W_OTHER * p

    # script: Whisper base writes Cantonese in Traditional characters (14 of 15
    # clips) but Mandarin too now and then (2 of 8), so all-Traditional is
    # modest evidence and all-Simplified strong evidence against Cantonese
    ratio = s.traditional_ratio
    if ratio is not None and s.traditional + s.simplified >= 2:
        tilt = (ratio - 0.5) * 2  # -1 all Simplified .. +1 all Traditional
        amount = min(1.0, (s.traditional + s.simplified) / 4)
        if tilt > 0:
            scores["cantonese"] += W_TRADITIONAL * tilt * amount
            scores["wu"] += 0.5 * W_TRADITIONAL * tilt * amount
        else:
            # against Cantonese only: garbled Wu comes out Simplified as often as not
            scores["cantonese"] -= W_SIMPLIFIED * -tilt * amount
        notes["traditional_ratio"] = round(ratio, 2)

    markers = _markers(text, to_simplified(text))
    if markers:
        for variety, (w, found) in markers.items():
            scores[variety] += w
        notes["markers"] = {v: f for v, (_, f) in markers.items()}

    if lang in ("zh", "yue") and garbled and s.han >= 2:
        for k in ("wu", "hakka", "minnan"):
            scores[k] += W_GARBLED
        scores["mandarin"] -= 0.5
        notes["garbled"] = True

    n = s.han + 2 * len(_OTHER_WORD.findall(text))
    if n < min_han and not markers and lang not in ("en",):
        weight = 0.5 * n / max(1, min_han)
    else:
        weight = 1.0
    return UtteranceEvidence(scores, weight, notes)


def softmax(scores: dict[str, float]) -> dict[str, float]:
    m = max(scores.values())
    e = {k: math.exp(v - m) for k, v in scores.items()}
    z = sum(e.values())
    return {k: v / z for k, v in e.items()}


class LanguageExtractor:
    """Signal "language": value = distribution over LANGUAGES; evidence.label = argmax."""

    name = "language"
    MAX_EVIDENCE = 6.0  # total utterance weight beyond which older evidence decays

    def __init__(self, call_id: str, options: LanguageOptions | None = None) -> None:
        self.call_id = call_id
        self.options = options or LanguageOptions()
        self.prior = {k: DEFAULT_PRIOR[k] + self.options.prior.get(k, 0.0) for k in LANGUAGES}
        self._acc = {k: 0.0 for k in LANGUAGES}
        self._weight = 0.0
        self._first_time: float | None = None
        self._utterances = 0
        self._last_notes: dict[str, object] = {}
        self._now = 0.0

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / 16000.0)
        return []

    def distribution(self) -> dict[str, float]:
        return softmax({k: self.prior[k] + self._acc[k] for k in LANGUAGES})

    def on_event(self, event: object) -> list[Signal]:
        if not isinstance(event, Final) or event.track != CALLER:
            return []
        dist = self.distribution()
        chinese = sum(dist[k] for k in CHINESE) if self._utterances else 0.5
        ev = utterance_evidence(event, self.options.min_han_chars, chinese)
        if ev is None:
            return []
        # keep the evidence bounded so a call can change its mind (and so one
        # long monologue cannot make the distribution absurdly sharp)
        if self._weight + ev.weight > self.MAX_EVIDENCE:
            keep = max(0.0, (self.MAX_EVIDENCE - ev.weight) / self._weight)
            self._acc = {k: v * keep for k, v in self._acc.items()}
            self._weight *= keep
        for k in LANGUAGES:
            self._acc[k] += ev.weight * ev.scores[k]
        self._weight += ev.weight
        self._utterances += 1
        if self._first_time is None:
            self._first_time = event.start
        self._now = max(self._now, event.end)
        dist = self.distribution()
        label = max(dist, key=dist.get)
        # confidence: the top probability, damped while there is little speech
        amount = min(1.0, self._weight / 2.0)
        confidence = dist[label] * (0.5 + 0.5 * amount)
        return [
            Signal(
                self.call_id,
                self.name,
                {k: round(v, 4) for k, v in dist.items()},
                round(confidence, 3),
                self._now,
                self._first_time,
                {
                    "label": label,
                    "utterances": self._utterances,
                    "last": ev.notes,
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["LanguageExtractor", "utterance_evidence", "MARKERS", "DEFAULT_PRIOR"]
