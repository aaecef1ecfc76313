"""Asterisk AudioSocket, sans-I/O.

AudioSocket is plain TCP: Asterisk (the ``AudioSocket()`` dialplan application
or the ``AudioSocket/`` channel) connects to us and sends frames of

    1 byte kind | 2 bytes payload length (big-endian) | payload

with the kinds (Asterisk's ``res_audiosocket.h`` and its protocol page):

``0x00`` hangup (no payload)          ``0x01`` UUID (16 bytes, binary)
``0x03`` DTMF (1 ASCII byte)          ``0x10`` audio: signed linear 16-bit, 8 kHz, mono, little-endian
``0xff`` error (optional payload: an application error code)

The first frame must be the UUID; it names the call. A frame we cannot accept
(unknown kind, wrong payload size, over ``max_payload`` bytes, audio before
the UUID) ends that call with a logged reason and nothing else: we never send
Asterisk a hangup, because closing the socket is enough to end the
application and the caller's call must not be cut by a listener.
"""

from __future__ import annotations

import logging
import struct
import uuid
from dataclasses import dataclass

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.errors import ProtocolError
from voicetriage.core.events import CallInfo
from voicetriage.protocols.actions import (
    Action,
    EndCall,
    PushAudio,
    PushDigit,
    StartCall,
)
from voicetriage.protocols.machine import Machine

log = logging.getLogger(__name__)

PLATFORM = "audiosocket"
KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
RATE = 8000
SPEC = AudioSpec("pcm16", RATE, 1)
HEADER = struct.Struct(">BH")
DIGITS = frozenset(b"0123456789*#ABCDabcd")
# Asterisk's error payload codes (CyCoreSystems/audiosocket, the protocol's reference library)
ERROR_CODES = {0x00: "none", 0x01: "the calling party hung up", 0x02: "frame forwarding error",
               0x04: "memory allocation error"}
DEFAULT_MAX_PAYLOAD = 16000  # one second of 8 kHz slin; Asterisk sends 320 bytes (20 ms)


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """One wire frame (for clients and tests)."""
    if len(payload) > 0xFFFF:
        raise ValueError("AudioSocket payloads are at most 65535 bytes")
    return HEADER.pack(kind, len(payload)) + payload


class FrameDecoder:
    """Stream bytes -> frames.

    A header announcing more than ``max_payload`` bytes stops decoding: the
    frames complete before it are still returned, and ``error`` is set.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self.error: ProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if self.error is not None:
            return []
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                self.error = ProtocolError(
                    f"frame kind 0x{kind:02x} with a {length}-byte payload is over the "
                    f"{self.max_payload}-byte limit",
                    code="oversized_frame",
                )
                break
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append(Frame(kind, bytes(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a frame not yet complete."""
        return len(self._buf)


class AudioSocketCall(Machine):
    """One AudioSocket connection: UUID, then audio and digits until hangup."""

    name = "audiosocket"

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD, peer: str | None = None) -> None:
        self.decoder = FrameDecoder(max_payload)
        self.peer = peer
        self.state = "waiting_uuid"  # -> "streaming" -> "ended"
        self.call_id: str | None = None
        self.info: CallInfo | None = None
        self.samples = 0

    def receive(self, data: bytes) -> list[Action]:
        """Bytes read from the socket."""
        if self.state == "ended":
            return []
        actions: list[Action] = []
        for frame in self.decoder.feed(data):  # frames before a bad header still count
            try:
                actions += self._on_frame(frame)
            except ProtocolError as e:
                return actions + self._fail(e)
            if self.state == "ended":
                return actions
        if self.decoder.error is not None:
            return actions + self._fail(self.decoder.error)
        return actions

    def receive_bytes(self, data: bytes) -> list[Action]:
        return self.receive(data)

    @property
    def reading(self) -> bool:
        return self.state != "ended" and self.ended is None and not self.lost

    def connection_lost(self) -> list[Action]:
        """EOF from Asterisk (socket closure is a valid hangup)."""
        if self.state == "ended":
            return []
        if self.decoder.pending:
            return self._fail(ProtocolError(
                f"connection closed inside a frame ({self.decoder.pending} bytes of it received)",
                code="truncated_frame"))
        was = self.state
        self.state = "ended"
        return [EndCall("hangup")] if was == "streaming" else []

    def call_started(self) -> list[Action]:
        """The pipeline took the call; nothing to answer."""
        return []

    def on_event(self, event: object) -> list[Action]:
        """Nothing goes back to Asterisk: it would play any audio we sent to the caller."""
        return []

    def finish(self) -> list[Action]:
        return []

    def idle_timeout(self, seconds: float) -> list[Action]:
        return self._fail(ProtocolError(f"no frame for {seconds:g} s", code="idle_timeout"))

    @property
    def position(self) -> float:
        return self.samples / RATE

    def _on_frame(self, frame: Frame) -> list[Action]:
        kind, payload = frame.kind, frame.payload
        if kind == KIND_UUID:
            if self.state != "waiting_uuid":
                raise ProtocolError("a second UUID frame on one connection", code="unexpected_message")
            if len(payload) != 16:
                raise ProtocolError(f"UUID frame with {len(payload)} bytes (must be 16)", code="malformed_frame")
            self.call_id = str(uuid.UUID(bytes=payload))
            self.info = CallInfo(
                call_id=self.call_id,
                platform=PLATFORM,
                platform_ids={"uuid": self.call_id},
                metadata={"peer": self.peer} if self.peer else {},
            )
            self.state = "streaming"
            return [StartCall(self.info, SPEC, ("caller",))]
        if kind == KIND_HANGUP:
            if payload:
                raise ProtocolError(f"hangup frame with a {len(payload)}-byte payload", code="malformed_frame")
            was = self.state
            self.state = "ended"
            return [EndCall("hangup")] if was == "streaming" else []
        if kind == KIND_ERROR:
            code = payload[0] if payload else 0
            what = ERROR_CODES.get(code, "application error")
            log.warning("audiosocket %s: Asterisk reported error 0x%02x (%s)", self.call_id, code, what)
            was = self.state
            self.state = "ended"
            if was != "streaming":
                return []
            # 0x01 is the caller hanging up: an ordinary end, not a failure
            if code == 0x01:
                return [EndCall("hangup")]
            return [EndCall("asterisk_error", error=f"Asterisk error 0x{code:02x}: {what}",
                            code="asterisk_error")]
        if self.state != "streaming":
            raise ProtocolError(f"frame kind 0x{kind:02x} before the UUID frame", code="unexpected_message")
        if kind == KIND_AUDIO:
            if len(payload) % 2:
                raise ProtocolError(f"audio frame of {len(payload)} bytes (16-bit samples need an even count)",
                                    code="malformed_frame")
            if not payload:
                return []
            self.samples += len(payload) // 2
            return [PushAudio(payload)]
        if kind == KIND_DTMF:
            if len(payload) != 1 or payload[0] not in DIGITS:
                raise ProtocolError(f"DTMF frame payload {payload!r} is not one digit 0-9 * # A-D",
                                    code="malformed_frame")
            return [PushDigit(chr(payload[0]).upper(), "caller", self.position)]
        raise ProtocolError(
            f"unsupported frame kind 0x{kind:02x} (accepted: 0x00 hangup, 0x01 UUID, 0x03 DTMF, "
            "0x10 slin 8 kHz audio, 0xff error)",
            code="unsupported_kind",
        )

    def abort(self, message: str, code: str) -> list[Action]:
        """We end the call (idle, shutdown, limits, server busy): close the socket."""
        return self._fail(ProtocolError(message, code=code))

    def _fail(self, error: ProtocolError) -> list[Action]:
        log.warning("audiosocket %s%s: closing: %s", self.call_id or "(no uuid yet)",
                    f" from {self.peer}" if self.peer else "", error)
        self.state = "ended"
        return [EndCall("error", error=str(error), code=error.code)]


__all__ = [
    "AudioSocketCall",
    "FrameDecoder",
    "Frame",
    "encode_frame",
    "KIND_HANGUP",
    "KIND_UUID",
    "KIND_DTMF",
    "KIND_AUDIO",
    "KIND_ERROR",
    "PLATFORM",
]
