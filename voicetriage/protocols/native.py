"""The native voicetriage websocket protocol (docs/protocol.md), sans I/O.

:func:`parse_text` validates one JSON text message from a client into a typed
command; :func:`event_message` turns a pipeline event into the JSON the
server sends. The socket handling lives in :mod:`voicetriage.server.app`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.errors import ProtocolError, VoiceTriageError
from voicetriage.core.events import CallInfo, to_message

PROTOCOL_VERSION = 1
MAX_ID_LEN = 128

# close codes (RFC 6455 section 7.4.1)
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


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
        if not isinstance(digit, str) or len(digit) != 1:
            raise ProtocolError("'digit' must be one of 0-9 * # A-D", code="bad_dtmf")
        return DtmfIn(digit, _str(msg, "track"))
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
    msg = to_message(event)
    if msg["type"] == "partial":
        msg["text"] = msg["stable"] + msg["unstable"]
    return msg


def dumps(msg: Mapping[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
