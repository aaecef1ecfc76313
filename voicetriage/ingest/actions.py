"""What a telephony protocol state machine asks its socket glue to do.

The Twilio, AudioHook and AudioSocket modules are sans-I/O: they are fed what
arrived on the wire and return a list of these actions, in order. The asyncio
glue (:mod:`voicetriage.telephony`) performs them against the call's
:class:`~voicetriage.session.CallSession` and the socket, so the protocol logic
stays deterministic and testable without sockets or models.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..audio.codecs import AudioSpec
from ..events import CallInfo


@dataclass(frozen=True)
class StartCall:
    """Open the call in the pipeline (``engine.open_call``)."""

    info: CallInfo
    spec: AudioSpec
    tracks: tuple[str, ...]


@dataclass(frozen=True)
class PushAudio:
    """Wire audio in the call's spec; ``track`` None means all tracks (interleaved)."""

    data: bytes
    track: str | None = None


@dataclass(frozen=True)
class PushGap:
    """Audio that never arrived (lost packets, pause, discard): silence, the clock runs on."""

    seconds: float
    track: str | None = None


@dataclass(frozen=True)
class PushDigit:
    """A keypad digit at call time ``time`` (seconds since the call's first sample)."""

    digit: str
    track: str
    time: float


@dataclass(frozen=True)
class Send:
    """A message for the peer: ``str`` goes out as a websocket text frame, ``bytes`` raw."""

    message: str | bytes


@dataclass(frozen=True)
class EndCall:
    """The call is over: flush it (``session.close(reason)``), then call the protocol's
    ``finish()`` for its last replies.

    ``error`` is set when the call ends because of bad input (a human-readable
    reason for logs and close frames); ``code`` is the stable error code.
    """

    reason: str
    error: str | None = None
    code: str | None = None


Action = StartCall | PushAudio | PushGap | PushDigit | Send | EndCall

__all__ = ["StartCall", "PushAudio", "PushGap", "PushDigit", "Send", "EndCall", "Action"]
