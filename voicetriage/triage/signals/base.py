"""The value every signal extractor produces, and the extractor contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np


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


CALLER = "caller"  # the only track triage looks at


@runtime_checkable
class SignalExtractor(Protocol):
    """Per-call state machine that turns the caller's audio and events into Signals.

    One instance per call (see :func:`voicetriage.triage.signals.default_extractors`).
    All methods are synchronous, cheap and called on the event loop: heavy work
    is done in small increments or once per utterance on buffered audio.
    """

    name: str

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        """16 kHz float32 mono of one track; ``t0`` is the call time of ``samples[0]``."""
        ...

    def on_event(self, event: object) -> list[Signal]:
        """Partial, Final and Dtmf events (voicetriage.core.events); others are ignored."""
        ...

    def on_close(self) -> list[Signal]:
        """The call ended: last estimates, if any."""
        ...
