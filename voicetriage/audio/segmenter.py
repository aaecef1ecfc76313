"""Utterance segmentation: VAD probabilities in, utterances out.

A small deterministic state machine per audio track. An utterance starts on
``min_speech_ms`` of speech (with ``pre_roll_ms`` of audio kept before it) and
ends after ``end_silence_ms`` of trailing silence, when it reaches
``max_utterance_s`` (cut at the quietest recent point), or when the call stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from voicetriage.audio.vad import WINDOW
from voicetriage.core.config import StreamConfig
from voicetriage.core.events import SAMPLE_RATE as RATE


@dataclass(frozen=True)
class SpeechStarted:
    utterance: int
    start: float


@dataclass(frozen=True)
class SpeechEnded:
    """A finished utterance with its audio (16 kHz float32)."""

    utterance: int
    start: float
    end: float
    audio: np.ndarray
    reason: str  # "silence" | "max_length" | "stop" | "split" | "gap"
    speech_s: float


SegmentEvent = SpeechStarted | SpeechEnded


class Segmenter:
    """Turns a track's audio into utterances, given a VAD function.

    ``vad`` maps new samples to one speech probability per 512-sample window
    (a :class:`voicetriage.audio.vad.VadStream` ``feed``); tests pass a fake.
    """

    def __init__(self, config: StreamConfig, vad: Callable[[np.ndarray], np.ndarray]) -> None:
        self.config = config
        self._vad = vad
        self._buf = np.zeros(RATE * 4, dtype=np.float32)  # grows by doubling
        self._len = 0  # valid samples in _buf, from _audio_start on
        self._audio_start = 0  # absolute sample index of _audio[0]
        self._probs: list[float] = []  # per window, from window _probs_start on
        self._probs_start = 0  # absolute window index of _probs[0]
        self._windows = 0  # windows classified so far
        self._next_id = 0
        self.active: int | None = None  # utterance id in progress
        self._utt_start = 0  # absolute sample where the active utterance begins
        self._speech_run = 0  # consecutive speech windows (before start)
        self._silence_run = 0  # consecutive silence windows (inside an utterance)
        self._voiced = 0  # speech windows inside the active utterance
        self._pending_start = 0  # window index where the current speech run began
        self._floor = 0  # no utterance starts before this sample (where the last one was split)

    # -- public -----------------------------------------------------------------
    @property
    def _audio(self) -> np.ndarray:
        return self._buf[: self._len]

    @property
    def samples(self) -> int:
        """Samples received so far (the track's clock, times 16000)."""
        return self._audio_start + self._len

    @property
    def active_start(self) -> float:
        return self._utt_start / RATE

    def active_audio(self) -> np.ndarray:
        """Audio of the utterance in progress (empty if none)."""
        if self.active is None:
            return np.zeros(0, dtype=np.float32)
        return self._audio[self._utt_start - self._audio_start :]

    def ending_audio(self) -> np.ndarray:
        """The audio the utterance in progress gets as its final if its trailing
        silence goes on to end it: the speech and the same 0.2 s tail a silence end
        keeps (exactly, once that much silence has passed); without a pause, the
        audio up to the last window the VAD classified."""
        if self.active is None:
            return np.zeros(0, dtype=np.float32)
        tail = max(1, round(0.2 * RATE / WINDOW))
        end = (self._windows - self._silence_run + min(self._silence_run, tail)) * WINDOW
        return self._audio[self._utt_start - self._audio_start : end - self._audio_start]

    @property
    def trailing_silence_s(self) -> float:
        """Silence at the end of the utterance in progress (0 outside one)."""
        return self._silence_run * WINDOW / RATE if self.active is not None else 0.0

    @property
    def active_speech_s(self) -> float:
        return self._voiced * WINDOW / RATE

    def feed(self, samples: np.ndarray, *, hold: bool = False, probs: np.ndarray | None = None) -> list[SegmentEvent]:
        """New audio; ``hold``: it is a hole in the stream (audio the platform
        discarded), so it neither ends nor starts an utterance. ``probs``: the
        VAD's output for exactly these samples, computed elsewhere (a DSP
        thread, :mod:`voicetriage.pipeline.dsp`) by the same VAD function
        (default: the segmenter calls it here)."""
        samples = np.asarray(samples, dtype=np.float32)
        need = self._len + len(samples)
        if need > len(self._buf):  # amortised growth: no copy of the utterance per frame
            grown = np.zeros(max(need, 2 * len(self._buf)), dtype=np.float32)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : need] = samples
        self._len = need
        events: list[SegmentEvent] = []
        for p in self._vad(samples) if probs is None else probs:
            events.extend(self._step(float(p), hold))
        self._trim()
        return events

    def flush(self, reason: str = "stop") -> list[SegmentEvent]:
        """Close the utterance in progress here, if there is one: at the end of
        the call ("stop"), or where the platform split it ("split").

        A split in the utterance's trailing silence (speech had ended, ``end_silence_ms``
        had not yet passed) ends it where a silence end would have: the last speech and
        the same 0.2 s tail, not the split point, so its duration is the speech's."""
        end = self.samples
        if reason != "stop":  # the next utterance's pre-roll must not reach back over the split
            self._floor = end
            self._speech_run = 0
        if self.active is None:
            return []
        tail = max(1, round(0.2 * RATE / WINDOW))
        if reason != "stop" and self._silence_run > tail:
            end = min(end, (self._windows - self._silence_run + tail) * WINDOW)
        return [self._end(end, reason)]

    def jump(self, samples: int, reset: Callable[[], None] | None = None) -> list[SegmentEvent]:
        """Advance the clock by ``samples`` with no audio (a gap counted, not decoded).

        The utterance in progress ends where the gap begins (reason "gap"), and the
        next one cannot reach back over it. At most two VAD windows of zeros are fed
        (to finish the window in progress and to land on the exact sample); the whole
        windows between are skipped, so memory and work do not depend on the gap's
        length. ``reset`` (the VAD's) is called once the skipped windows are passed."""
        events = self.flush("gap")
        samples = max(0, int(samples))
        pad = min(samples, -self.samples % WINDOW)  # finish the VAD window in progress
        if pad:
            events += self.feed(np.zeros(pad, dtype=np.float32), hold=True)
        whole = (samples - pad) // WINDOW * WINDOW
        if whole:
            to = self.samples + whole
            if len(self._buf) > RATE * 4:  # a long utterance grew it: give that back
                self._buf = np.zeros(RATE * 4, dtype=np.float32)
            self._len = 0
            self._audio_start = to
            self._windows += whole // WINDOW
            self._probs = []
            self._probs_start = self._windows
            self._floor = to
            self._speech_run = 0
            if reset is not None:
                reset()
        rest = samples - pad - whole
        if rest:
            events += self.feed(np.zeros(rest, dtype=np.float32), hold=True)
        return events

    # -- state machine --------------------------------------------------------------
    def _step(self, p: float, hold: bool = False) -> list[SegmentEvent]:
        c = self.config
        w = self._windows
        self._windows += 1
        self._probs.append(p)
        out: list[SegmentEvent] = []
        if hold:  # the clock runs on; speech and silence counts stay as they were
            return out
        min_speech = max(1, round(c.min_speech_ms / 1000 * RATE / WINDOW))
        end_silence = max(1, round(c.end_silence_ms / 1000 * RATE / WINDOW))
        if self.active is None:
            if p >= c.vad_threshold:
                if self._speech_run == 0:
                    self._pending_start = w
                self._speech_run += 1
                if self._speech_run >= min_speech:
                    pre = int(c.pre_roll_ms / 1000 * RATE)
                    start = max(self._audio_start, self._pending_start * WINDOW - pre, self._floor)
                    self.active = self._next_id
                    self._next_id += 1
                    self._utt_start = start
                    self._voiced = self._speech_run
                    self._silence_run = 0
                    out.append(SpeechStarted(self.active, start / RATE))
            else:
                self._speech_run = 0
            return out
        # inside an utterance
        if p >= c.vad_threshold:
            self._voiced += 1
            self._silence_run = 0
        elif p < c.vad_neg_threshold:
            self._silence_run += 1
        else:
            self._silence_run = 0 if self._silence_run == 0 else self._silence_run + 1
        win_end = (w + 1) * WINDOW
        if self._silence_run >= end_silence:
            # keep a little of the silence: Whisper needs the word's tail
            tail = min(self._silence_run, max(1, round(0.2 * RATE / WINDOW)))
            end = win_end - (self._silence_run - tail) * WINDOW
            out.append(self._end(end, "silence"))
        elif (win_end - self._utt_start) / RATE >= c.max_utterance_s:
            out.extend(self._cut_long(win_end))
        return out

    def _cut_long(self, now: int) -> list[SegmentEvent]:
        """Cut a long utterance at its quietest window in the last 3 s."""
        c = self.config
        look = round(3.0 * RATE / WINDOW)
        first_w = max(self._utt_start // WINDOW + 1, now // WINDOW - look)
        probs = self._probs[first_w - self._probs_start : now // WINDOW - self._probs_start]
        if probs:
            q = int(np.argmin(probs))
            cut = (first_w + q + 1) * WINDOW
            if probs[q] >= c.vad_neg_threshold:
                cut = now
        else:
            cut = now
        ended = self._end(cut, "max_length")
        out: list[SegmentEvent] = [ended]
        # the rest goes on as a new utterance (speech has not stopped)
        self.active = self._next_id
        self._next_id += 1
        self._utt_start = cut
        self._voiced = sum(1 for p in self._probs[cut // WINDOW - self._probs_start :] if p >= c.vad_threshold)
        self._silence_run = 0
        out.append(SpeechStarted(self.active, cut / RATE))
        return out

    def _end(self, end: int, reason: str) -> SpeechEnded:
        start = self._utt_start
        audio = self._audio[start - self._audio_start : end - self._audio_start].copy()
        first_w = start // WINDOW
        voiced = sum(
            1 for p in self._probs[max(0, first_w - self._probs_start) : end // WINDOW - self._probs_start]
            if p >= self.config.vad_threshold
        )
        ev = SpeechEnded(self.active, start / RATE, end / RATE, audio, reason, voiced * WINDOW / RATE)
        self.active = None
        self._speech_run = 0
        self._silence_run = 0
        self._voiced = 0
        return ev

    def _trim(self) -> None:
        """Drop audio and probabilities nobody can need any more."""
        keep_from = self._utt_start if self.active is not None else self.samples - int(
            self.config.pre_roll_ms / 1000 * RATE
        ) - WINDOW * (self._speech_run + 1)
        keep_from = max(self._audio_start, min(keep_from, self.samples))
        drop = keep_from - self._audio_start
        if drop > RATE:  # trim in chunks, not on every frame
            self._buf[: self._len - drop] = self._buf[drop : self._len]
            self._len -= drop
            self._audio_start = keep_from
            wdrop = keep_from // WINDOW - 1 - self._probs_start
            if wdrop > 0:
                del self._probs[:wdrop]
                self._probs_start += wdrop
