"""The value every signal extractor produces, and the extractor contract."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from voicetriage.core.events import Signal

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
