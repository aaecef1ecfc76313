"""The native voicetriage websocket protocol (docs/protocol.md), sans I/O.

:func:`parse_text` validates one JSON text message from a client into a typed
command; :class:`NativeConnection` is the connection's state machine (one call
from ``start`` to ``stop``), run like the telephony protocols by
:mod:`voicetriage.server.connection`.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.errors import ProtocolError, VoiceTriageError
from voicetriage.core.events import DTMF_DIGITS, CallInfo
from voicetriage.core.serialize import client_message, dumps
from voicetriage.protocols.actions import (
    Action,
    EndCall,
    PushAudio,
    PushDigit,
    QueryHealth,
    Send,
    StartCall,
)
from voicetriage.protocols.machine import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Close,
    Machine,
)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_ID_LEN = 128


@dataclass(frozen=True)
class Start:
    info: CallInfo
    spec: AudioSpec
    tracks: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    reason: str = "stop"


@dataclass(frozen=True)
class DtmfIn:
    digit: str
    track: str | None = None


@dataclass(frozen=True)
class Health:
    pass


@dataclass(frozen=True)
class ErrorOut:
    """An ``error`` message. ``fatal``: the server closes the connection after it."""

    code: str
    message: str
    fatal: bool = False
    call_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = {"type": "error", "code": self.code, "message": self.message, "fatal": self.fatal}
        if self.call_id is not None:
            d["call_id"] = self.call_id
        d.update(self.extra)
        return d

    @classmethod
    def of(cls, e: VoiceTriageError, fatal: bool = False, call_id: str | None = None) -> "ErrorOut":
        return cls(e.code, str(e), fatal, call_id)


Command = Start | Stop | DtmfIn | Health


def _str(msg: Mapping[str, Any], key: str, required: bool = False, max_len: int = MAX_ID_LEN) -> str | None:
    v = msg.get(key)
    if v is None:
        if required:
            raise ProtocolError(f"'{key}' is required", code="missing_field")
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > max_len:
        raise ProtocolError(f"'{key}' must be a non-empty string of at most {max_len} characters", code="bad_field")
    if not v.isprintable():  # a newline in a call id would forge log lines
        raise ProtocolError(f"'{key}' must not contain control characters", code="bad_field")
    return v


def parse_text(text: str) -> Command:
    """One client text message to a command, or :class:`ProtocolError`."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"message is not valid JSON: {e}", code="bad_json") from None
    if not isinstance(msg, dict):
        raise ProtocolError("message must be a JSON object", code="bad_json")
    kind = msg.get("type")
    if kind == "start":
        return _parse_start(msg)
    if kind == "stop":
        return Stop()
    if kind == "dtmf":
        digit = msg.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
            raise ProtocolError("'digit' must be one of 0-9 * # A-D", code="bad_dtmf")
        return DtmfIn(digit.upper(), _str(msg, "track"))
    if kind in ("health", "ping"):
        return Health()
    raise ProtocolError(
        f"unknown message type {kind!r}; expected start, stop, dtmf or health",
        code="unknown_message_type",
    )


def _parse_start(msg: Mapping[str, Any]) -> Start:
    call_id = _str(msg, "call_id") or f"call-{uuid.uuid4().hex[:12]}"
    caller_id = _str(msg, "caller_id", max_len=64)
    language = _str(msg, "language", max_len=35)
    spec = AudioSpec.parse(msg.get("encoding", "pcm16"), msg.get("sample_rate", 16000), msg.get("channels", 1))
    tracks_v = msg.get("tracks")
    if tracks_v is None:
        tracks = ("caller", "agent") if spec.channels == 2 else ("caller",)
    else:
        if (
            not isinstance(tracks_v, list)
            or len(tracks_v) != spec.channels
            or not all(isinstance(t, str) and 0 < len(t) <= 32 for t in tracks_v)
            or len(set(tracks_v)) != len(tracks_v)
        ):
            raise ProtocolError(
                f"'tracks' must list {spec.channels} distinct labels, one per channel", code="bad_field"
            )
        tracks = tuple(tracks_v)
    metadata = msg.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ProtocolError("'metadata' must be an object", code="bad_field")
    info = CallInfo(
        call_id=call_id,
        caller_id=caller_id,
        language_hint=language,
        platform="native",
        platform_ids={"call_id": call_id},
        metadata=metadata,
    )
    return Start(info, spec, tracks)


def started_message(start: Start, model: str) -> dict[str, Any]:
    return {
        "type": "started",
        "protocol": PROTOCOL_VERSION,
        "call_id": start.info.call_id,
        "model": model,
        "encoding": start.spec.encoding,
        "sample_rate": start.spec.sample_rate,
        "channels": start.spec.channels,
        "tracks": list(start.tracks),
    }


def event_message(event: object) -> dict[str, Any]:
    """A pipeline event as a server message (``type`` from the event's kind)."""
    return client_message(event)


# how a call that ended for these reasons closes (the native protocol's own reasons)
_CLOSES = {
    "stop": Close(CLOSE_NORMAL, "call ended"),
    "idle_timeout": Close(CLOSE_POLICY, "idle timeout"),
    "call_too_long": Close(CLOSE_POLICY, "call too long"),
    "server_shutdown": Close(CLOSE_GOING_AWAY, "server shutting down"),
    "server_busy": Close(CLOSE_TRY_AGAIN, "server_busy"),
    "server_shutting_down": Close(CLOSE_TRY_AGAIN, "server_shutting_down"),
}
_FATAL_START = ("server_busy", "server_shutting_down")


class NativeConnection(Machine):
    """One native-protocol connection: one call from ``start`` to ``stop``.

    Errors in a message are answered with an ``error`` and the call goes on;
    an idle client, a call over its length and a busy server get a fatal one
    and a close (docs/protocol.md lists the codes).
    """

    name = "native"
    retry_without_language = False  # the client set it: tell the client

    def __init__(self, *, model: str, max_message_bytes: int) -> None:
        self.model = model
        self.max_message_bytes = max_message_bytes
        self.state = "waiting"  # -> "starting" -> "started" -> "ended"
        self._start: Start | None = None

    @property
    def call_id(self) -> str | None:
        return self._start.info.call_id if self._start is not None and self.state == "started" else None

    def _error(self, e: VoiceTriageError, fatal: bool = False) -> Send:
        return Send(dumps(ErrorOut.of(e, fatal, self.call_id).to_json()), kind="error")

    def _end(self, reason: str, error: VoiceTriageError | None = None) -> list[Action]:
        out: list[Action] = []
        if error is not None:
            out.append(self._error(error, fatal=True))  # with the call id while there is one
        self.state = "ended"
        out.append(EndCall(reason, error=str(error) if error else None, code=error.code if error else None))
        return out

    def _too_large(self, n: int) -> list[Action] | None:
        if n > self.max_message_bytes:
            return [self._error(ProtocolError(
                f"message of {n} bytes exceeds the limit of {self.max_message_bytes}", code="message_too_large"))]
        return None

    # -- input ----------------------------------------------------------------
    def receive_bytes(self, data: bytes) -> list[Action]:
        if self.state == "ended":
            return []
        too_large = self._too_large(len(data))
        if too_large is not None:
            return too_large
        if self.state != "started":
            return [self._error(ProtocolError("binary audio before 'start'; send a start message first",
                                              code="audio_before_start"))]
        return [PushAudio(data)]

    def receive_text(self, text: str) -> list[Action]:
        if self.state == "ended":
            return []
        too_large = self._too_large(len(text))
        if too_large is not None:
            return too_large
        try:
            cmd = parse_text(text)
        except VoiceTriageError as e:
            return [self._error(e)]
        if isinstance(cmd, Health):
            return [QueryHealth()]
        if isinstance(cmd, Start):
            if self.state != "waiting":
                return [self._error(ProtocolError("call already started on this connection", code="already_started"))]
            self.state, self._start = "starting", cmd
            return [StartCall(cmd.info, cmd.spec, cmd.tracks)]
        if isinstance(cmd, DtmfIn):
            if self.state != "started":
                return [self._error(ProtocolError("dtmf before 'start'", code="dtmf_before_start"))]
            return [PushDigit(cmd.digit, cmd.track)]
        if self.state != "started":  # Stop
            return [self._error(ProtocolError("'stop' before 'start'", code="stop_before_start"))]
        return self._end("stop")

    def connection_lost(self) -> list[Action]:
        self.lost = True
        was, self.state = self.state, "ended"
        return [EndCall("client_gone")] if was == "started" else []

    def abort(self, message: str, code: str) -> list[Action]:
        return self._end(code, ProtocolError(message, code=code))

    def shutdown(self) -> list[Action]:
        return self._end("server_shutdown")

    # -- the pipeline's answers -------------------------------------------------
    def call_started(self) -> list[Action]:
        assert self._start is not None
        self.state = "started"
        return [Send(dumps(started_message(self._start, self.model)), kind="started")]

    def start_failed(self, error: VoiceTriageError) -> list[Action]:
        self.state, self._start = "waiting", None
        if error.code in _FATAL_START:
            return self._end(error.code, error)
        return [self._error(error)]

    def push_failed(self, error: VoiceTriageError) -> list[Action]:
        return [self._error(error)]

    def health_report(self, health: dict) -> list[Action]:
        return [Send(dumps({"type": "health", **health}), kind="health")]

    def on_event(self, event: object) -> list[Action]:
        kind = getattr(event, "kind", None)
        return [Send(dumps(event_message(event)), kind=kind)]

    # -- the connection ---------------------------------------------------------
    @property
    def reading(self) -> bool:
        return self.state != "ended"

    def close_frame(self) -> Close | None:
        if self.lost:
            return None
        e = self.ended
        reason = e.reason if e is not None else "stop"
        return _CLOSES.get(reason) or Close(CLOSE_POLICY, reason)
