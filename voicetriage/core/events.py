"""Typed events that cross stage boundaries.

Ingest adapters produce a :class:`CallInfo` and audio; the streaming pipeline
produces :class:`Partial`, :class:`Final`, :class:`Dtmf` and, at the end, a
:class:`CallSummary`. Triage adds :class:`Hint`-like events. All times are
seconds relative to the start of the call's audio (the first sample received).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

#: the sample rate of every stage after audio/ decodes the wire (Whisper's, Silero's)
SAMPLE_RATE = 16000
#: the keypad digits a Dtmf event carries
DTMF_DIGITS = frozenset("0123456789*#ABCD")
#: every event kind a server emits (the ``type`` of its messages)
EVENT_KINDS = ("call", "partial", "final", "dtmf", "error", "signal", "hint", "summary")


@dataclass(frozen=True)
class CallInfo:
    """What is known about a call when it starts.

    ``platform`` names the ingest protocol ("native", "twilio", "audiohook",
    "audiosocket"); ``platform_ids`` keeps that platform's own identifiers
    (streamSid, conversationId, ...) so outputs can be joined back.
    """

    kind: ClassVar[str] = "call"

    call_id: str
    caller_id: str | None = None
    language_hint: str | None = None
    platform: str = "native"
    platform_ids: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class AsrResult:
    """What the recogniser says about one stretch of audio."""

    kind: ClassVar[str] = "asr"

    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    tokens: int = 0
    compression_ratio: float = 0.0
    # the detector's top candidates, most likely first: ((code, probability), ...)
    language_candidates: tuple[tuple[str, float], ...] = ()
    # where ``language`` came from: "detected", "client" (the call's hint), "config"
    # ([asr] language) or "model" (an English-only model)
    language_source: str = "detected"
    temperature: float = 0.0  # the decoding temperature that produced the text
    # a final whose greedy decode failed the checks (the fallback was due, whether or not
    # asr.fallback_logprob_temperatures let it sample): the language signal's cue
    fallback_needed: bool = False
    # Cantonese-vs-Mandarin probe: avg log-prob decoded under a Cantonese prompt minus
    # under a Mandarin prompt (None: not run for this utterance)
    dialect_probe: float | None = None
    # the dialect classifier's margins (voicetriage/asr/dialect.py), zh finals only: per dialect,
    # log-odds over Mandarin minus its cross-validated threshold (> 0: beyond every Mandarin call)
    dialect_scores: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Partial:
    """Hypothesis for the utterance in progress.

    ``stable`` is the prefix confirmed by local agreement (two consecutive
    hypotheses agreed on it); it never shrinks within an utterance.
    ``unstable`` is the rest of the newest hypothesis.
    """

    kind: ClassVar[str] = "partial"

    call_id: str
    track: str
    utterance: int
    start: float
    end: float
    stable: str
    unstable: str
    language: str
    language_probability: float
    # how much the recogniser believes this hypothesis (None: the producer did not say)
    avg_logprob: float | None = None
    compression_ratio: float = 0.0
    # > 0: asked for on a pause of this many seconds after the speech it covers (the
    # utterance may be over: its text is what the final will most likely say)
    pause_s: float = 0.0

    @property
    def text(self) -> str:
        return self.stable + self.unstable


@dataclass(frozen=True)
class Final:
    """The finished transcript of one utterance.

    ``reason`` is why it ended: "silence" (trailing silence), "max_length",
    "stop" (the call ended while speech was going on), or "split" (the platform
    marked a boundary mid-speech, e.g. an AudioHook ``update`` or ``paused``).
    ``speech_s`` is the voiced time inside [start, end] according to the VAD.
    """

    kind: ClassVar[str] = "final"

    call_id: str
    track: str
    utterance: int
    start: float
    end: float
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    reason: str
    speech_s: float = 0.0
    # see AsrResult: the detector's top candidates, where the language came from,
    # the decoding safeguards' outcome and the Cantonese-vs-Mandarin probe
    language_candidates: tuple[tuple[str, float], ...] = ()
    language_source: str = "detected"
    compression_ratio: float = 0.0
    temperature: float = 0.0
    fallback_needed: bool = False
    dialect_probe: float | None = None
    # the dialect classifier's margins (voicetriage/asr/dialect.py), zh finals only: per dialect,
    # log-odds over Mandarin minus its cross-validated threshold (> 0: beyond every Mandarin call)
    dialect_scores: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Dtmf:
    """A keypad digit pressed by a participant."""

    kind: ClassVar[str] = "dtmf"

    call_id: str
    track: str
    digit: str
    time: float


@dataclass(frozen=True)
class CallError:
    """Something of one call failed and the call goes on (for example the
    recogniser failed on an utterance: its final is missing). ``code`` is stable
    (docs/protocol.md); ``start``/``end`` locate the audio concerned (call time)."""

    kind: ClassVar[str] = "error"

    call_id: str
    code: str
    message: str
    track: str | None = None
    utterance: int | None = None
    start: float | None = None
    end: float | None = None
    fatal: bool = False


@dataclass(frozen=True)
class CallSummary:
    """Sent once when a call ends."""

    kind: ClassVar[str] = "summary"

    call_id: str
    reason: str
    audio_s: dict[str, float]
    utterances: int
    finals: tuple[Final, ...]
    languages: dict[str, float]
    duration_s: float
    # audio that never arrived (protocol gaps: Twilio timestamp jumps, AudioHook
    # discards), counted in the call clock (audio_s includes them), not decoded
    gaps: int = 0
    gap_s: float = 0.0


@dataclass(frozen=True)
class Signal:
    """One estimate about a caller, as of ``time`` (seconds into the call).

    ``name`` is stable ("human_request", "language", "speaking_rate", "age_band",
    "distress", "profile", "low_comprehension", ...). ``value`` is the estimate
    (a label, a number, or a distribution as a mapping label -> probability).
    ``evidence_time`` is when the evidence behind it appeared (call time).
    """

    kind: ClassVar[str] = "signal"

    call_id: str
    name: str
    value: Any
    confidence: float
    time: float
    evidence_time: float
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hint:
    """A routing hint for one call: send it to ``queue`` and why.

    ``rules`` are the names of the rules that fired for this queue and
    ``signals`` the signal values behind them (one entry per condition that
    held: rule, signal, value, confidence, call time and evidence time).
    ``time`` is the call time the hint was decided (so also the time since the
    call began); ``evidence_time`` is when the deciding evidence appeared and
    ``since_evidence_s`` the delay between the two. ``reason`` says why it was
    (re-)emitted: "new", "escalation", "confidence" or "change"; ``previous`` is
    the queue it replaces. ``seq`` counts the call's hints from 1.
    """

    kind: ClassVar[str] = "hint"

    call_id: str
    queue: str
    action: str
    priority: int
    confidence: float
    rules: tuple[str, ...]
    signals: tuple[Mapping[str, Any], ...]
    time: float
    evidence_time: float
    since_start_s: float
    since_evidence_s: float
    reason: str
    seq: int
    previous: str | None = None
    wall_time: float | None = None


__all__ = [
    "SAMPLE_RATE",
    "DTMF_DIGITS",
    "EVENT_KINDS",
    "CallInfo",
    "Signal",
    "Hint",
    "AsrResult",
    "Partial",
    "Final",
    "Dtmf",
    "CallError",
    "CallSummary",
]
