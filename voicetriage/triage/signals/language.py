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

* the dialect classifier on the final's Whisper encoder output
  (voicetriage/asr/dialect.py), as call-level evidence: its margins (log-odds
  over Mandarin minus a bound set above every cross-validated Mandarin call)
  are averaged over the caller's finals, and the call's mean moves Cantonese and
  Wu up only once it is past that bound; below it, it counts against them.

The weights are set by hand from those measurements (not fitted to the
evaluation set) and are listed in docs/signals.md with the accuracy they give.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from voicetriage.core.events import Final, Signal
from voicetriage.triage.signals.base import CALLER
from voicetriage.triage.signals.options import LANGUAGES, LanguageOptions
from voicetriage.triage.signals.text import script_stats, to_simplified

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
        ("唔该", 1.5), ("靓仔", 1.0), ("返工", 0.3), ("食饭", 0.6),
    ),
    "wu": (
        ("侬", 1.5), ("阿拉", 1.5), ("伊拉", 1.5), ("搿", 1.5), ("侪", 1.5), ("覅", 1.5),
        ("㑚", 1.5), ("哪能", 1.2), ("辰光", 1.2), ("物事", 1.0), ("事体", 1.0),
        ("今朝", 0.5), ("倷", 1.5), ("勿", 0.3), ("伐", 0.3), ("辣辣", 1.0),
        ("交关", 1.0), ("晓得伐", 1.5), ("屋里向", 1.5), ("里向", 1.0),
        ("弗", 0.2), ("个辰光", 0.5),
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
# Mandarin words that contain a marker character
_NOT_MARKER = re.compile("关系|關係|联系|聯繫|係數|步伐|征伐|讨伐|請勿|请勿|切勿")
MARKER_CAP = 4.0  # per utterance, per variety

TONAL_MISTAKES = frozenset({"vi", "th", "lo", "km"})
_OTHER_WORD = re.compile(r"[^\W\d_\u3400-\u9fff\uf900-\ufaff]+")  # words of any non-Han script

# evidence weights (log-odds units)
W_ZH = 3.0  # Whisper says zh/yue
W_EN = 4.0  # Whisper says en
W_OTHER = 3.0  # Whisper names another language confidently
W_SIMPLIFIED = 1.0  # all-Simplified text: mild evidence against Cantonese (Whisper base writes it in Traditional)
W_TONAL = 2.0  # Whisper's top language is vi/th/lo/km on a Chinese line
W_TONAL_SHARE = 1.0  # per unit of the tonal-share cue (see _tonal_cue)
W_PROBE = 1.0  # per unit of the two-prompt probe cue (see _probe_cue)
W_UNFAMILIAR = 1.5  # per unit of "Chinese the model cannot follow" (see _unfamiliar_cue)

# Whisper hears a tone language in Cantonese: of the probability it does not give to
# zh, Cantonese finals put 25-99% on Vietnamese/Thai, Mandarin finals 0-5% (English,
# Japanese, Korean instead), measured on the tuning half of ../shared/eval at 1x
TONAL_CODES = ("vi", "th", "lo", "km")
TONAL_SHARE_NEUTRAL = 0.15
TONAL_SHARE_SCALE = 0.15
MIN_REST = 2e-4  # below this the non-zh mass is rounding noise: no tonal cue
# two-prompt probe (avg log-prob under a Cantonese prompt minus a Mandarin one):
# neutral at 0.06; beyond +-0.8 one of the two decodes broke down (a loop, an empty
# text), which says nothing about Cantonese
PROBE_NEUTRAL = 0.06
PROBE_SCALE = 0.08
PROBE_BROKEN = 0.8
# Cantonese probes on the tuning half stay under 0.45; larger differences come from one
# decode falling apart (seen on Wu): no Cantonese evidence, some "cannot follow" evidence
PROBE_UNSTABLE = 0.45
W_FOLLOWED = 1.5  # Chinese the model follows cleanly: not Wu/Hakka/Minnan

# dialect classifier (call level): log-odds per unit of the call's mean margin and of
# utterance evidence, the margin's range, and the voiced seconds after which it counts fully
W_CLASSIFIER = 1.5
CLASSIFIER_RANGE = (-3.0, 2.0)
CLASSIFIER_FULL_S = 4.0
CLASSIFIED = ("cantonese", "wu")


def _clip(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _ramp(x: float, good: float, bad: float) -> float:
    """0 at ``good``, 1 at ``bad``, linear between."""
    return _clip((x - good) / (bad - good), 0.0, 1.0)


def candidates_of(final: Final) -> dict[str, float]:
    """The detector's candidates as code -> probability (just the final's language without them)."""
    if final.language_candidates:
        return {str(c).lower(): float(p) for c, p in final.language_candidates}
    lang = (final.language or "").lower()
    return {lang: float(final.language_probability)} if lang else {}


def _tonal_cue(cand: Mapping[str, float]) -> float | None:
    """-1 (Mandarin-like) .. +2 (Cantonese-like): the share of the non-Chinese mass on tone languages."""
    pz = cand.get("zh", 0.0) + cand.get("yue", 0.0)
    rest = sum(p for c, p in cand.items() if c not in ("zh", "yue"))
    if pz < 0.5 or rest < MIN_REST:
        return None
    share = sum(cand.get(c, 0.0) for c in TONAL_CODES) / rest
    return _clip((share - TONAL_SHARE_NEUTRAL) / TONAL_SHARE_SCALE, -1.0, 2.0)


def _probe_cue(probe: float | None) -> float | None:
    """-1.5 .. +1.5 from the Cantonese-vs-Mandarin probe, None when absent or broken."""
    if probe is None or not math.isfinite(probe) or abs(probe) > PROBE_BROKEN or probe > PROBE_UNSTABLE:
        return None
    return _clip((probe - PROBE_NEUTRAL) / PROBE_SCALE, -1.5, 1.5)


def _unfamiliar_cue(final: Final, pz: float) -> float:
    """0 .. 2.5: how badly the model follows this Chinese (low zh probability, poor
    log-probability, the temperature fallback was needed, the two prompts' decodes
    far apart). Whisper base follows Mandarin and, as written Chinese, Cantonese;
    Wu, Hakka and Minnan it cannot."""
    u = 1.0 * _ramp(pz, 0.95, 0.5) + 0.7 * _ramp(final.avg_logprob, -0.8, -1.4)
    if final.temperature > 0 or final.fallback_needed:  # the fallback was due (it may not have run)
        u += 0.3
    probe = final.dialect_probe
    if probe is not None and math.isfinite(probe) and abs(probe) > PROBE_UNSTABLE:
        u += 0.5
    return u


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
    cand = candidates_of(final)
    lang = (final.language or "").lower()
    p = _clip(final.language_probability, 0.0, 1.0)
    pz = cand.get("zh", 0.0) + cand.get("yue", 0.0)
    if lang in ("zh", "yue"):
        pz = max(pz, p)
    logprob = final.avg_logprob
    garbled = logprob < -1.0 or (final.no_speech_prob > 0.6 and logprob < -0.7)
    notes["whisper"] = f"{lang or '?'} {p:.2f}"
    notes["avg_logprob"] = round(logprob, 2)

    chinese_line = False
    if lang in ("zh", "yue"):
        chinese_line = True
        for k in CHINESE:
            scores[k] += W_ZH * p
        if lang == "yue":
            scores["cantonese"] += W_ZH * p
    elif lang in TONAL_MISTAKES:
        # Whisper base hears Cantonese as Vietnamese/Thai now and then (3 of 19
        # Cantonese calls of ../shared/eval), never Mandarin; less so when it is guessing
        w = W_TONAL * p * (0.6 if garbled else 1.0)
        scores["cantonese"] += w
        scores["other"] += 0.5 * w
        notes["tonal_mistake"] = lang
    elif lang and (garbled or p < 0.6) and (chinese_so_far > 0 or pz >= 0.05):
        # a language named with a poor score (Wu came out as pt, es, ko, ja, my, bo and
        # even "Hm." in English): speech the model cannot follow. From a caller who
        # sounded Chinese before, or with zh among the candidates, that is a dialect.
        share = max(chinese_so_far, min(1.0, pz / 0.3))
        scores["other"] += 1.0 * (1 - share)
        for k in ("wu", "hakka", "minnan"):
            scores[k] += W_UNFAMILIAR * share
        scores["mandarin"] -= 1.0 * share
        if lang == "en":  # a noisy English line stays possible
            scores["english"] += 1.0 * p
        notes["unfamiliar"] = round(share, 2)
    elif lang == "en":
        scores["english"] += W_EN * p
    elif lang:
        scores["other"] += W_OTHER * p

    if chinese_line:
        # Cantonese vs Mandarin: the tone-language share of the detector's doubt and the
        # two-prompt probe; the script is no evidence (Whisper base writes both in
        # Traditional characters), all-Simplified text only mildly against Cantonese
        tonal = _tonal_cue(cand)
        probe = _probe_cue(final.dialect_probe)
        if tonal is not None:
            scores["cantonese"] += W_TONAL_SHARE * tonal
            notes["tonal_cue"] = round(tonal, 2)
        if probe is not None:
            scores["cantonese"] += W_PROBE * probe
            notes["probe_cue"] = round(probe, 2)
        u = _unfamiliar_cue(final, pz)
        if s.han >= 2:
            # followed well (u near 0): against the varieties the model cannot follow
            for k in ("wu", "hakka", "minnan"):
                scores[k] += W_UNFAMILIAR * u - W_FOLLOWED * max(0.0, 1 - u / 0.5)
            scores["mandarin"] -= 0.5 * u
            notes["unfamiliar"] = round(u, 2)
        ratio = s.traditional_ratio
        if ratio is not None and ratio < 0.5 and s.traditional + s.simplified >= 2:
            amount = min(1.0, (s.traditional + s.simplified) / 4)
            scores["cantonese"] -= W_SIMPLIFIED * (1 - 2 * ratio) * amount
            notes["traditional_ratio"] = round(ratio, 2)

    markers = _markers(text, to_simplified(text))
    if markers:
        for variety, (w, found) in markers.items():
            scores[variety] += w
        notes["markers"] = {v: f for v, (_, f) in markers.items()}

    n = s.han + 2 * len(_OTHER_WORD.findall(text))
    if n < min_han and not markers and lang not in ("en",):
        weight = 0.5 * n / max(1, min_han)
    else:
        weight = 1.0
    # a fragment under a second says little about how someone speaks
    voiced = final.speech_s if final.speech_s > 0 else final.end - final.start
    if 0 < voiced < 1.0:
        weight *= max(0.3, voiced)
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
        # the dialect classifier's margins over the caller's finals: voiced-seconds-weighted sums
        self._clf = {k: 0.0 for k in CLASSIFIED}
        self._clf_s = 0.0

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / 16000.0)
        return []

    def classifier_evidence(self) -> dict[str, float]:
        """Call-level log-odds from the dialect classifier: its mean margin per dialect over the
        caller's finals (voiced-seconds weighted), clipped, times W_CLASSIFIER per unit of
        utterance evidence the call holds (so it keeps pace with the per-final cues, and one
        final far past the bound among finals below it adds nothing). Positive only past the
        bound set above every cross-validated Mandarin call; below it, against the dialect."""
        if self._clf_s <= 0:
            return {}
        amount = min(self._weight, self.MAX_EVIDENCE) * min(1.0, self._clf_s / CLASSIFIER_FULL_S)
        out = {k: W_CLASSIFIER * amount * _clip(v / self._clf_s, *CLASSIFIER_RANGE) for k, v in self._clf.items()}
        # Mandarin-like on every classified dialect: against the unclassified ones too
        # (otherwise pulling Wu back hands its share to Hakka and Minnan)
        pull = min(0.0, *out.values())
        return {**out, **{k: pull for k in CHINESE if k != "mandarin" and k not in out}}

    def distribution(self) -> dict[str, float]:
        clf = self.classifier_evidence()
        return softmax({k: self.prior[k] + self._acc[k] + clf.get(k, 0.0) for k in LANGUAGES})

    def _add_classifier(self, final: Final) -> None:
        margins = dict(final.dialect_scores)
        if not all(k in margins for k in CLASSIFIED):
            return
        voiced = final.speech_s if final.speech_s > 0 else final.end - final.start
        w = _clip(voiced, 0.0, 10.0)
        for k in CLASSIFIED:
            self._clf[k] += w * float(margins[k])
        self._clf_s += w

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
        self._add_classifier(event)
        self._utterances += 1
        if self._first_time is None:
            self._first_time = event.start
        self._now = max(self._now, event.end)
        dist = self.distribution()
        label = max(dist, key=dist.get)
        # confidence: the top probability, damped while there is little speech
        # (one full utterance: x0.87; a second-long fragment: x0.68)
        amount = min(1.0, self._weight / 1.5)
        confidence = dist[label] * (0.6 + 0.4 * amount)
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
                    **({"classifier": {k: round(v, 2) for k, v in self.classifier_evidence().items()}}
                       if self._clf_s > 0 else {}),
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["LanguageExtractor", "utterance_evidence", "MARKERS", "DEFAULT_PRIOR"]
