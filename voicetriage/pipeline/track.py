"""The per-call pieces a :class:`~voicetriage.pipeline.session.CallSession` is built of:
the observer hook protocol (triage) and one audio track's streaming state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from voicetriage.asr.agreement import LocalAgreement
from voicetriage.asr.engine import _round_prob
from voicetriage.audio.codecs import StreamDecoder
from voicetriage.audio.segmenter import Segmenter
from voicetriage.core.events import CallInfo, CallSummary


class CallObserver(Protocol):
    """Per-call extension point (triage). Methods run on the event loop and
    return further events (hints, signals) to emit after the one that caused them.

    An observer may also define ``prepare_audio(track, samples, t0) -> None``:
    with a DSP pool it runs on a DSP thread before ``on_audio`` of the same
    samples (one call's audio in order, never two at once), for numeric work
    whose state it guards itself (:class:`~voicetriage.triage.signals.prosody.ProsodyTracker`).
    Without a pool it is not called: ``on_audio`` must still do the work alone."""

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]: ...

    def on_event(self, event: object) -> list[object]: ...

    def on_close(self, summary: CallSummary) -> list[object]: ...


ObserverFactory = Callable[[CallInfo], "CallObserver | None"]



@dataclass
class Track:
    name: str
    segmenter: Segmenter
    decoder: StreamDecoder | None
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    partial_at: float = 0.0  # utterance audio length at the last partial request
    partial_busy: bool = False
    # provisional language of the utterance in progress (from its first confident
    # partial): partials are decoded in it, finals never inherit it
    language: str | None = None
    shown: bool = False  # a partial of the utterance in progress went out
    last_final: asyncio.Future | None = None
    # the call-level language prior: detector probability summed per language over
    # this track's earlier detected finals
    evidence: dict[str, float] = field(default_factory=dict)
    previous: tuple[str, str] | None = None  # (text, language) of the last final
    probes: int = 0  # finals that carried a dialect probe
    pause_partial: bool = False  # the current pause already asked for a partial
    finished: int = -1  # the last utterance whose final was decided (sent or dropped)
    late_shown: set[int] = field(default_factory=set)  # ended utterances a late pause partial showed
    vad: Callable[[np.ndarray], np.ndarray] | None = None  # the segmenter's VAD stream (DSP thread)
    queued: int = 0  # samples handed to the segmenter or queued for it (the track clock)
    vad_reset: Callable[[], None] | None = None  # a fresh VAD state (after a gap the clock jumped)


def language_probability(result) -> float:
    """1.0 only where the client, the config or an English-only model set the
    language; a detection keeps its own (rounded, never up to 1.0) probability."""
    if getattr(result, "language_source", "detected") in ("client", "config", "model"):
        return round(result.language_probability, 4)
    return _round_prob(result.language_probability)


__all__ = ["CallObserver", "ObserverFactory", "Track", "language_probability"]
