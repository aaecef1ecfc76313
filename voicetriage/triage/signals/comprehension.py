"""Low comprehension: how much of the caller's recent speech the recogniser failed to follow.

A caller the ASR cannot follow is a caller a voice bot cannot follow. Each
caller final is scored 0..1 for "not followed" from Whisper's own numbers:

* ``avg_logprob`` (mean token log-probability): -0.3 or better is clean,
  -1.0 or worse is guesswork (Whisper's own fallback threshold is -1.0);
* ``no_speech_prob`` high while text came out (hallucination over noise);
* ``language_probability`` low (the model is unsure which language it heard);
* degenerate text (one syllable repeated: "Ke Ke Ke Ke ..."), by the gzip
  compression ratio Whisper itself uses to spot repetition loops.

The signal's value is the duration-weighted share of the last
``WINDOW`` caller utterances that were not followed; its confidence grows with
the amount of speech behind it.
"""

from __future__ import annotations

import zlib
from collections import deque

import numpy as np

from voicetriage.core.events import Final, Signal
from voicetriage.triage.signals.base import CALLER


def _ramp(x: float, good: float, bad: float) -> float:
    """0 at ``good``, 1 at ``bad``, linear in between (either direction)."""
    if good == bad:
        return float(x >= bad)
    t = (x - good) / (bad - good)
    return float(min(1.0, max(0.0, t)))


def not_followed(final: Final) -> tuple[float, dict[str, float]]:
    """0 (the ASR followed this utterance) .. 1 (it did not), with the parts."""
    parts = {
        "logprob": _ramp(final.avg_logprob, -0.45, -1.1),
        "no_speech": _ramp(final.no_speech_prob, 0.4, 0.8) if final.text.strip() else 0.0,
        "language_prob": _ramp(final.language_probability, 0.8, 0.35),
    }
    raw = final.text.strip().encode("utf-8")
    if len(raw) >= 24:
        # Whisper's own repetition test: gzip compression ratio (its fallback threshold is 2.4)
        parts["degenerate"] = _ramp(len(raw) / len(zlib.compress(raw)), 1.8, 2.6)
    score = 1 - np.prod([1 - v for v in parts.values()])
    return float(score), parts


class ComprehensionExtractor:
    """Signal "low_comprehension": value 0..1 (share of recent speech not followed)."""

    name = "low_comprehension"
    WINDOW = 4

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=self.WINDOW)  # (score, dur, start)
        self._now = 0.0
        self._last_value: float | None = None

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        if track == CALLER:
            self._now = max(self._now, t0 + len(samples) / 16000.0)
        return []

    def on_event(self, event: object) -> list[Signal]:
        if not isinstance(event, Final) or event.track != CALLER or not event.text.strip():
            return []
        score, parts = not_followed(event)
        dur = event.speech_s if event.speech_s > 0 else max(0.1, event.end - event.start)
        self._recent.append((score, dur, event.start))
        total = sum(d for _, d, _ in self._recent)
        value = sum(s * d for s, d, _ in self._recent) / total
        self._now = max(self._now, event.end)
        if self._last_value is not None and abs(value - self._last_value) < 0.05:
            return []
        self._last_value = value
        # confidence: how much speech the estimate rests on (4 s of speech: full)
        confidence = min(1.0, total / 4.0) * 0.9
        evidence_time = next((st for s, _, st in self._recent if s >= 0.5), event.start)
        return [
            Signal(
                self.call_id,
                self.name,
                round(value, 3),
                round(confidence, 3),
                self._now,
                evidence_time,
                {
                    "utterances": len(self._recent),
                    "speech_s": round(total, 2),
                    "last": {k: round(v, 2) for k, v in parts.items()},
                    "last_avg_logprob": round(event.avg_logprob, 3),
                    "last_language": f"{event.language} {event.language_probability:.2f}",
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["ComprehensionExtractor", "not_followed"]
