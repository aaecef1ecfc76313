"""Speaking rate and pauses of the caller, from the transcript and the VAD.

Syllables are counted in the transcript (one per Han character, vowel groups
per English word: :func:`~voicetriage.triage.signals.text.count_syllables`). Per caller
final the segmenter reports the utterance span and its voiced time
(``Final.speech_s``), so:

* articulation rate = syllables / voiced seconds (the signal's value);
* speech rate = syllables / utterance seconds (pauses inside included);
* pause ratio = 1 - voiced / (utterance time + pauses between utterances);
* long pauses = gaps of ``long_pause_s`` or more between consecutive caller
  utterances (shorter than ``MAX_GAP_S``; longer gaps are turn-taking).

* call-time rate = syllables per second of the caller's call time (utterances
  and the pauses between them, turn-taking gaps of ``MAX_GAP_S`` or more
  excluded), also given per minute: what a listener hears as "slow".

"Slow" is either of two patterns, each measured against published figures
(:data:`THRESHOLD_SOURCES`, docs/signals.md), not fitted to a clip:

* drawn-out speech: an articulation rate below a per-language threshold,
  :data:`SLOW_THRESHOLDS`, well under the typical adult rate;
* halting speech: a few words, a stop, a few more. The words themselves may
  come at a normal pace, so the articulation rate stays normal; the call-time
  rate falls below :data:`SLOW_CALL_RATE` (under half of the typical rate),
  with a pause ratio of at least :data:`HALTING_PAUSE_RATIO`, two or more
  pauses, over at least :data:`HALTING_MIN_CALL_S` of call time.

Where the recogniser does not follow the caller (the confidence of the utterance
by :func:`~voicetriage.triage.signals.comprehension.not_followed`), its transcript's
syllable count is not evidence either: slow, elderly or unclear speech is exactly
what Whisper garbles ("喂 / 你好 / Black. / 点费"). With the call's
:class:`~voicetriage.triage.signals.prosody.ProsodyTracker`, the syllable nuclei counted
in the audio itself (:func:`~voicetriage.triage.signals.prosody.syllable_nuclei`,
de Jong & Wempe 2009) take the place of the transcript's count as far as the recogniser
did not follow the utterance, where they are higher (so that both counts must say
"slow"), and the confidence rests on the count's quality rather than on the recogniser
alone.

``slow_for_s`` is the call time the slow pattern has been holding (from the
first slow utterance to now): the policy's ``slow_speech`` rule waits for it.
Text in a script whose syllables cannot be counted (Whisper writes Cantonese
in Thai now and then) is skipped.
"""

from __future__ import annotations

from typing import Callable


from voicetriage.core.events import Final, Signal
from voicetriage.triage.signals.base import CALLER
from voicetriage.triage.signals.comprehension import not_followed
from voicetriage.triage.signals.options import SpeakingRateOptions
from voicetriage.triage.signals.prosody import FeedsProsody, ProsodyTracker, syllable_nuclei
from voicetriage.triage.signals.text import count_syllables, countable

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

# halting speech: syllables per second of call time (pauses included). Typical adult
# articulation is about 5 syl/s (Mandarin 5.18, Pellegrino et al. 2011; English about 5,
# Jacewicz et al. 2010); with the 20-30% of pause time of fluent conversation that is
# 3.5-4 syl/s of call time. Older speakers are slower and pause more often and longer
# (Bona 2014, JASA 136(2) EL116; Kim et al. 2022, Phonetics and Speech Sciences 14(1)):
# below 2.0 syl/s of call time (120 syllables a minute, under 40% of the typical
# articulation rate) with at least 45% of it silent is slow by a wide margin.
SLOW_CALL_RATE = {
    "mandarin": 2.0, "cantonese": 2.0, "wu": 2.0, "hakka": 2.0, "minnan": 2.0,
    "english": 2.0, "other": 2.0,
}
HALTING_PAUSE_RATIO = 0.45
HALTING_MIN_CALL_S = 6.0
HALTING_MIN_PAUSES = 2
# how far the audio's syllable-nuclei count can stand in for a transcript the recogniser
# followed: about the 10th percentile of its ratio to the reference syllables on the kit's
# Mandarin clips (real 0.73, synthetic 0.85; medians 0.92 / 0.94, Cantonese 1.04,
# English 0.97: `python -m benchmarks.syllable_nuclei`, docs/signals.md)
ACOUSTIC_COUNT_QUALITY = 0.8


class SpeakingRateExtractor(FeedsProsody):
    """Signal "speaking_rate": value = articulation rate (syllables per voiced second)."""

    name = "speaking_rate"

    def __init__(
        self,
        call_id: str,
        options: SpeakingRateOptions | None = None,
        language: Callable[[], str] | None = None,
        prosody: ProsodyTracker | None = None,
    ) -> None:
        self.call_id = call_id
        self.prosody = prosody
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
        self._pauses = 0  # gaps between utterances shorter than MAX_GAP_S
        self._slow_since: float | None = None  # call time of the utterance the slow pattern began with
        self._utt_starts: list[float] = []
        self._reliability: list[tuple[float, float]] = []
        self._first: float | None = None
        self._now = 0.0
        self._acoustic = 0.0  # syllable nuclei counted in the audio of the same utterances

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
        bad, _ = not_followed(event)
        acoustic = self._nuclei(event)
        if acoustic is not None:
            # the transcript counts as far as the recogniser followed it; for the rest, the
            # higher of the two counts: each falls short where it fails (Whisper drops
            # characters of dialect speech, the nuclei merge connected syllables: 0.65 of
            # the reference on Wu at the 10th percentile), so speech is slow only when
            # both counts say so
            syl = (1 - bad) * syl + bad * max(syl, acoustic)
            quality = (1 - bad) + bad * ACOUSTIC_COUNT_QUALITY
        else:
            quality = 1 - bad
        lang = self._lang(event)
        threshold = self.thresholds.get(lang, self.thresholds["other"])
        if self._last_end is not None:
            gap = event.start - self._last_end
            if 0 < gap < MAX_GAP_S:
                self._gaps += gap
                self._pauses += 1
                if gap >= self.options.long_pause_s:
                    self._long_pauses += 1
            elif gap >= MAX_GAP_S:
                self._utt_starts.clear()  # a turn-taking gap: the halting stretch starts again
        self._last_end = event.end
        self._syllables += syl
        self._voiced += voiced
        self._span += span
        if syl / voiced < threshold:
            self._slow_s += voiced
        self._reliability.append((quality, voiced))
        if acoustic is not None:
            self._acoustic += acoustic
        if self._first is None:
            self._first = event.start
        self._utt_starts.append(event.start)
        self._now = max(self._now, event.end)
        if self._voiced < self.options.min_speech_s:
            return []
        rate = self._syllables / self._voiced
        call_s = self._span + self._gaps
        call_rate = self._syllables / max(call_s, 1e-3)
        pause_ratio = 1 - self._voiced / max(call_s, 1e-3)
        reliability = sum(r * d for r, d in self._reliability) / sum(d for _, d in self._reliability)
        amount = min(1.0, max(self._voiced / 8.0, call_s / 12.0))
        confidence = round(0.9 * reliability * (0.4 + 0.6 * amount), 3)
        drawn_out = rate < threshold
        halting = (
            call_rate < SLOW_CALL_RATE.get(lang, SLOW_CALL_RATE["other"])
            and pause_ratio >= HALTING_PAUSE_RATIO
            and self._pauses >= HALTING_MIN_PAUSES
            and call_s >= HALTING_MIN_CALL_S
        )
        slow = drawn_out or halting
        if not slow:
            self._slow_since = None
        elif self._slow_since is None:
            # slow since the first utterance of the stretch it was measured on
            # (the call's caller speech since the last turn-taking gap)
            self._slow_since = self._utt_starts[0] if self._utt_starts else event.start
        pattern = [k for k, v in (("drawn_out", drawn_out), ("halting", halting)) if v]
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
                    "pause_ratio": round(pause_ratio, 3),
                    "call_rate": round(call_rate, 3),
                    "syllables_per_minute": round(60 * call_rate, 1),
                    "call_s": round(call_s, 2),
                    "pauses": self._pauses,
                    "long_pauses": self._long_pauses,
                    "pattern": pattern,
                    "slow_for_s": round(self._now - self._slow_since, 2) if self._slow_since is not None else 0.0,
                    "syllables": round(self._syllables, 1),
                    "acoustic_syllables": int(self._acoustic) if self.prosody is not None else None,
                    "count_quality": round(reliability, 3),
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

    def _nuclei(self, final: Final) -> int | None:
        """Syllable nuclei in the utterance's audio; None without a tracker or frames."""
        if self.prosody is None:
            return None
        f0, _, db = self.prosody.frames(final.start, final.end, finish=True)
        if len(db) < 3:
            return None
        return syllable_nuclei(f0, db)

    def on_close(self) -> list[Signal]:
        return []


__all__ = ["SpeakingRateExtractor", "SLOW_THRESHOLDS", "SLOW_CALL_RATE", "THRESHOLD_SOURCES", "ACOUSTIC_COUNT_QUALITY"]
