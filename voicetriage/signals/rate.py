"""Speaking rate and pauses of the caller, from the transcript and the VAD.

Syllables are counted in the transcript (one per Han character, vowel groups
per English word: :func:`~voicetriage.signals.text.count_syllables`). Per caller
final the segmenter reports the utterance span and its voiced time
(``Final.speech_s``), so:

* articulation rate = syllables / voiced seconds (the signal's value);
* speech rate = syllables / utterance seconds (pauses inside included);
* pause ratio = 1 - voiced / (utterance time + pauses between utterances);
* long pauses = gaps of ``long_pause_s`` or more between consecutive caller
  utterances (shorter than ``MAX_GAP_S``; longer gaps are turn-taking).

"Slow" is an articulation rate below a per-language threshold,
:data:`SLOW_THRESHOLDS`, well under the typical adult rate reported in the
literature (see :data:`THRESHOLD_SOURCES` and docs/signals.md). Text in a
script whose syllables cannot be counted (Whisper writes Cantonese in Thai
now and then) is skipped.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..events import Final
from .base import CALLER, Signal
from .comprehension import not_followed
from .options import SpeakingRateOptions
from .text import count_syllables, countable

# syllables per voiced second below which speech counts as slow
SLOW_THRESHOLDS = {
    "mandarin": 3.0,
    "cantonese": 3.0,
    "wu": 3.0,
    "hakka": 3.0,
    "minnan": 3.0,
    "english": 3.3,
    "other": 3.3,
}
THRESHOLD_SOURCES = {
    "mandarin": "58% of 5.18 syl/s, the Mandarin rate in Pellegrino, Coupé & Marsico 2011 "
    "(Language 87(3)); real Mandarin clips of ../shared/eval measure 4.1-5.2",
    "cantonese": "as Mandarin: Whisper writes Cantonese as standard Chinese with fewer characters "
    "than spoken syllables (5-40% fewer on ../shared/eval), so a higher threshold would flag "
    "normal Cantonese",
    "wu": "as Mandarin; not calibrated (no slow Wu speech here)",
    "hakka": "as Mandarin; not calibrated",
    "minnan": "as Mandarin; not calibrated",
    "english": "below conversational English articulation, about 5 syl/s (Jacewicz et al. 2010, "
    "JASA 128(2)), and above the 100 wpm espeak clip of ../shared/eval (2.9)",
    "other": "as English",
}
MAX_GAP_S = 5.0


class SpeakingRateExtractor:
    """Signal "speaking_rate": value = articulation rate (syllables per voiced second)."""

    name = "speaking_rate"

    def __init__(
        self,
        call_id: str,
        options: SpeakingRateOptions | None = None,
        language: Callable[[], str] | None = None,
    ) -> None:
        self.call_id = call_id
        self.options = options or SpeakingRateOptions()
        self.thresholds = {**SLOW_THRESHOLDS, **self.options.slow_syllables_per_s}
        self._language = language
        self._syllables = 0.0
        self._voiced = 0.0
        self._span = 0.0
        self._gaps = 0.0
        self._long_pauses = 0
        self._last_end: float | None = None
        self._slow_s = 0.0  # voiced seconds of utterances that were slow by themselves
        self._reliability: list[tuple[float, float]] = []
        self._first: float | None = None
        self._now = 0.0

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / 16000.0)
        return []

    def _lang(self, final: Final) -> str:
        if self._language is not None:
            return self._language()
        return {"zh": "mandarin", "yue": "cantonese", "en": "english"}.get(final.language, "other")

    def on_event(self, event: object) -> list[Signal]:
        if not isinstance(event, Final) or event.track != CALLER or not event.text.strip():
            return []
        if not countable(event.text):
            return []
        syl = count_syllables(event.text)
        span = max(0.0, event.end - event.start)
        voiced = event.speech_s if event.speech_s > 0 else span
        if syl == 0 or voiced <= 0.05:
            return []
        lang = self._lang(event)
        threshold = self.thresholds.get(lang, self.thresholds["other"])
        if self._last_end is not None:
            gap = event.start - self._last_end
            if 0 < gap < MAX_GAP_S:
                self._gaps += gap
                if gap >= self.options.long_pause_s:
                    self._long_pauses += 1
        self._last_end = event.end
        self._syllables += syl
        self._voiced += voiced
        self._span += span
        if syl / voiced < threshold:
            self._slow_s += voiced
        bad, _ = not_followed(event)
        self._reliability.append((1 - bad, voiced))
        if self._first is None:
            self._first = event.start
        self._now = max(self._now, event.end)
        if self._voiced < self.options.min_speech_s:
            return []
        rate = self._syllables / self._voiced
        reliability = sum(r * d for r, d in self._reliability) / sum(d for _, d in self._reliability)
        amount = min(1.0, self._voiced / 8.0)
        confidence = round(0.9 * reliability * (0.4 + 0.6 * amount), 3)
        slow = rate < threshold
        return [
            Signal(
                self.call_id,
                self.name,
                round(rate, 3),
                confidence,
                self._now,
                self._first,
                {
                    "slow": slow,
                    "articulation_rate": round(rate, 3),
                    "speech_rate": round(self._syllables / max(self._span, 1e-3), 3),
                    "pause_ratio": round(1 - self._voiced / max(self._span + self._gaps, 1e-3), 3),
                    "long_pauses": self._long_pauses,
                    "syllables": int(self._syllables),
                    "speech_s": round(self._voiced, 2),
                    "slow_speech_s": round(self._slow_s, 2),
                    "language": lang,
                    "threshold": threshold,
                    "threshold_source": THRESHOLD_SOURCES.get(lang, "configured")
                    if lang not in self.options.slow_syllables_per_s
                    else "configured",
                    "unit": "syllables per voiced second",
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["SpeakingRateExtractor", "SLOW_THRESHOLDS", "THRESHOLD_SOURCES"]
