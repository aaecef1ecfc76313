"""Estimated age band of the caller from the voice: a weak, honestly calibrated signal.

No speaker-age model ships in any registry package, so this is a small
hand-set model over cues the ageing-voice literature agrees on (Linville 2001,
"Vocal Aging"; Torre & Barlow 2009, J. Commun. Disord. 42(5)):

* fundamental frequency: men's F0 rises in old age, women's falls (so the cue
  depends on a pitch-based sex guess: median F0 below 165 Hz = male voice);
* harmonics-to-noise ratio falls with age (breathier, rougher voices);
* articulation rate falls with age;
* pitch variability: older voices are less steady (frame perturbation proxy).

The cues are standardised with typical adult values, summed into an "older"
score and mapped to a distribution over "<40", "40-64", "65+" that is then
shrunk towards the base rates, because on the labelled clips of ../shared/eval
(WenetSpeech-Wu speakers with corpus-estimated ages, plus JFK) the bands are
only a little better than always answering "40-64" (see docs/signals.md).
The confidence is that measured accuracy, never the model's own certainty:
a policy rule "65+ with confidence >= 0.6" therefore cannot fire on voice
alone, which is the honest outcome.
"""

from __future__ import annotations

import math

import numpy as np

from voicetriage.core.events import Final, Signal
from voicetriage.triage.signals.base import CALLER
from voicetriage.triage.signals.options import AgeOptions
from voicetriage.triage.signals.prosody import FeedsProsody, ProsodyTracker, VoiceStats
from voicetriage.triage.signals.text import count_syllables

BANDS = ("<40", "40-64", "65+")
BASE_RATES = {"<40": 0.35, "40-64": 0.45, "65+": 0.20}
# measured band accuracy on ../shared/eval (docs/signals.md: 9 of 19 clips, while always
# answering "40-64" gets 10): the confidence ceiling
MEASURED_ACCURACY = 0.47
SHRINK = 0.5  # weight of the model against the base rates

# typical adult values and spreads for the standardisation
MALE_F0, FEMALE_F0, F0_SD = 120.0, 210.0, 25.0
HNR_TYPICAL, HNR_SD = 9.0, 3.0
RATE_TYPICAL, RATE_SD = 5.0, 1.2
JITTER_TYPICAL, JITTER_SD = 0.03, 0.02
WEIGHTS = {"f0": 0.6, "hnr": 0.5, "rate": 0.7, "jitter": 0.2}


def older_score(stats: VoiceStats, rate: float | None) -> tuple[float, dict[str, float]]:
    """Positive: sounds older than a typical adult; with the per-cue parts."""
    male = stats.f0_median_hz < 165.0
    if male:
        z_f0 = (stats.f0_median_hz - MALE_F0) / F0_SD
    else:
        z_f0 = (FEMALE_F0 - stats.f0_median_hz) / F0_SD
    parts = {
        "f0": float(np.clip(z_f0, -2, 2)),
        "hnr": float(np.clip((HNR_TYPICAL - stats.hnr_db) / HNR_SD, -2, 2)),
        "jitter": float(np.clip((stats.jitter_proxy - JITTER_TYPICAL) / JITTER_SD, -2, 2)),
    }
    if rate is not None:
        parts["rate"] = float(np.clip((RATE_TYPICAL - rate) / RATE_SD, -2, 2))
    score = sum(WEIGHTS[k] * v for k, v in parts.items())
    return score, parts


def band_distribution(score: float) -> dict[str, float]:
    """Older score -> shrunk distribution over BANDS."""
    p_old = 1 / (1 + math.exp(-(1.2 * score - 1.0)))
    p_young = 1 / (1 + math.exp(1.2 * score + 0.3))
    p_mid = max(0.0, 1 - p_old - p_young)
    model = {"<40": p_young, "40-64": p_mid, "65+": p_old}
    z = sum(model.values())
    return {b: SHRINK * model[b] / z + (1 - SHRINK) * BASE_RATES[b] for b in BANDS}


class AgeBandExtractor(FeedsProsody):
    """Signal "age_band": value = distribution over "<40", "40-64", "65+"."""

    name = "age_band"

    def __init__(self, call_id: str, prosody: ProsodyTracker, options: AgeOptions | None = None) -> None:
        self.call_id = call_id
        self.prosody = prosody
        self.options = options or AgeOptions()
        self._spans: list[tuple[float, float]] = []
        self._syllables = 0
        self._speech_s = 0.0
        self._last: dict[str, float] | None = None
        self._now = 0.0

    def on_event(self, event: object) -> list[Signal]:
        if not isinstance(event, Final) or event.track != CALLER or not event.text.strip():
            return []
        self._spans.append((event.start, event.end))
        self._syllables += count_syllables(event.text)
        self._speech_s += event.speech_s if event.speech_s > 0 else event.end - event.start
        self._now = max(self._now, event.end)
        return self._estimate()

    def _estimate(self) -> list[Signal]:
        f0s, rs, dbs = [], [], []
        for start, end in self._spans[-20:]:
            self.prosody.stats(start, end)  # analyses what is pending
            f, r, d = self.prosody.frames(start, end)
            f0s.append(f)
            rs.append(r)
            dbs.append(d)
        from voicetriage.triage.signals.prosody import voice_stats

        stats = voice_stats(np.concatenate(f0s), np.concatenate(rs), np.concatenate(dbs))
        if stats is None or stats.voiced_s < self.options.min_voiced_s:
            return []
        rate = self._syllables / self._speech_s if self._speech_s > 1.0 else None
        score, parts = older_score(stats, rate)
        dist = band_distribution(score)
        if self._last is not None and max(abs(dist[b] - self._last[b]) for b in BANDS) < 0.03:
            return []
        self._last = dist
        label = max(dist, key=dist.get)
        amount = min(1.0, stats.voiced_s / 6.0)
        confidence = round(min(dist[label], MEASURED_ACCURACY) * (0.6 + 0.4 * amount), 3)
        return [
            Signal(
                self.call_id,
                self.name,
                {b: round(dist[b], 4) for b in BANDS},
                confidence,
                self._now,
                self._spans[0][0],
                {
                    "label": label,
                    "older_score": round(score, 3),
                    "cues": {k: round(v, 2) for k, v in parts.items()},
                    "voice": stats.to_dict(),
                    "articulation_rate": None if rate is None else round(rate, 2),
                    "sex_guess": "male" if stats.f0_median_hz < 165.0 else "female",
                    "measured_accuracy": MEASURED_ACCURACY,
                    "note": "weak estimate; see docs/signals.md",
                },
            )
        ]

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["AgeBandExtractor", "BANDS", "older_score", "band_distribution"]
