"""What a telephony protocol state machine asks its socket glue to do.

The native, Twilio, AudioHook and AudioSocket modules are sans-I/O: they are fed what
arrived on the wire and return a list of these actions, in order. The asyncio
driver (:mod:`voicetriage.server.connection`) performs them against the call's
:class:`~voicetriage.pipeline.session.CallSession` and the socket, so the protocol logic
stays deterministic and testable without sockets or models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.events import CallInfo


@dataclass(frozen=True)
class StartCall:
    """Open the call in the pipeline (``engine.open_call``).

    ``track_languages``: per-track language hints that override the call's
    ``language_hint`` (a code, or None: detect on that track)."""

    info: CallInfo
    spec: AudioSpec
    tracks: tuple[str, ...]
    track_languages: Mapping[str, str | None] | None = None


@dataclass(frozen=True)
class PushAudio:
    """Wire audio in the call's spec; ``track`` None means all tracks (interleaved)."""

    data: bytes
    track: str | None = None


@dataclass(frozen=True)
class PushGap:
    """Audio that never arrived (lost packets, pause, discard): silence, the clock runs on.

    ``hold``: the gap does not count as silence towards ending the utterance in
    progress (a short discard inside speech is a hole in the audio, not a pause)."""

    seconds: float
    track: str | None = None
    hold: bool = False


@dataclass(frozen=True)
class EndUtterance:
    """The platform marked a boundary (AudioHook ``update``, ``paused``): end the
    utterance in progress there (``session.end_utterance``); ``track`` None: all tracks."""

    track: str | None = None
    reason: str = "split"


@dataclass(frozen=True)
class PushDigit:
    """A keypad digit at call time ``time`` (seconds since the call's first sample;
    None: the track's current audio time). ``track`` None: the call's first track."""

    digit: str
    track: str | None
    time: float | None = None


@dataclass(frozen=True)
class Send:
    """A message for the peer: ``str`` goes out as a websocket text frame, ``bytes`` raw.

    ``kind``: the event kind it carries, if any (a final, hint or summary the peer
    can no longer receive is logged as undelivered)."""

    message: str | bytes
    kind: str | None = None


@dataclass(frozen=True)
class QueryHealth:
    """The peer asked for the server's health: the driver answers through the
    protocol's ``health_report``."""


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


Action = StartCall | PushAudio | PushGap | EndUtterance | PushDigit | Send | QueryHealth | EndCall

__all__ = ["StartCall", "PushAudio", "PushGap", "EndUtterance", "PushDigit", "Send", "QueryHealth", "EndCall", "Action"]
