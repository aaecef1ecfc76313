"""Asterisk AudioSocket, sans-I/O.

AudioSocket is plain TCP: Asterisk (the ``AudioSocket()`` dialplan application
or the ``AudioSocket/`` channel) connects to us and sends frames of

    1 byte kind | 2 bytes payload length (big-endian) | payload

with the kinds of Asterisk's ``include/asterisk/res_audiosocket.h`` (20+):

``0x00`` hangup (no payload)          ``0x01`` UUID (16 bytes, binary)
``0x03`` DTMF (1 ASCII byte)          ``0xff`` error (optional payload: an error code)
``0x10``-``0x18`` audio: signed linear 16-bit little-endian mono at 8, 12, 16, 24,
32, 44.1, 48, 96 and 192 kHz (:data:`AUDIO_KINDS`)

The first frame must be the UUID; it names the call. The call starts at the first
audio frame, whose kind gives its sample rate (the pipeline resamples); digits
that come before it are held and delivered right after, at time 0. A call with no
audio at all before it ends starts at 8 kHz then, so its digits and summary are
still recorded.

Asterisk's channel driver sends any format that is not signed linear under kind
``0x10`` too: ``Dial(AudioSocket/host:port/uuid/c(ulaw))`` sends µ-law bytes. While
a ``0x10`` call's codec is not known its frames are held, up to
:data:`MAX_HOLD_BYTES`, and each :data:`~voicetriage.audio.sniff.WINDOW_BYTES` of
them is classified (:mod:`voicetriage.audio.sniff`); µ-law is logged once with the
fix and transcoded to PCM16, and its odd frame lengths are fine. A window that
cannot be told (silence, noise, tones) is passed on as PCM16 when quiet.

A frame we cannot accept (unknown kind, an audio kind other than the call's,
wrong payload size, over ``max_payload`` bytes, audio before the UUID) ends that
call with a logged reason after what came before it was delivered: we never send
Asterisk a hangup, because closing the socket is enough to end the application
and the caller's call must not be cut by a listener.
"""

from __future__ import annotations

import logging
import struct
import uuid
from dataclasses import dataclass

from voicetriage.audio import sniff
from voicetriage.audio.codecs import AudioSpec, ulaw_decode
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
# audio kind -> (sample rate, Asterisk's format name); res_audiosocket.h, Asterisk 20+
AUDIO_KINDS = {
    0x10: (8000, "slin"), 0x11: (12000, "slin12"), 0x12: (16000, "slin16"), 0x13: (24000, "slin24"),
    0x14: (32000, "slin32"), 0x15: (44100, "slin44"), 0x16: (48000, "slin48"), 0x17: (96000, "slin96"),
    0x18: (192000, "slin192"),
}
RATE = 8000  # kind 0x10, and a call that never sent audio
SPEC = AudioSpec("pcm16", RATE, 1)
HEADER = struct.Struct(">BH")
DIGITS = frozenset(b"0123456789*#ABCDabcd")
# Asterisk's error payload codes (CyCoreSystems/audiosocket, the protocol's reference library)
ERROR_CODES = {0x00: "none", 0x01: "the calling party hung up", 0x02: "frame forwarding error",
               0x04: "memory allocation error"}
DEFAULT_MAX_PAYLOAD = 16000  # 1 s of 8 kHz slin; Asterisk sends 20 ms frames (7680 bytes at 192 kHz)
MAX_HOLD_BYTES = 4 * sniff.WINDOW_BYTES  # undecided 0x10 audio held at most (2 s of µ-law)
ACCEPTED = "0x00 hangup, 0x01 UUID, 0x03 DTMF, 0x10-0x18 signed linear audio, 0xff error"
MULAW_FIX = ("audiosocket %s: the audio under kind 0x10 is G.711 mu-law, not signed linear: Asterisk "
             "sends that for Dial(AudioSocket/...) with c(ulaw). Transcoding it; to send linear audio "
             "use Dial(AudioSocket/host:port/${UUID}/c(slin16)) (or c(slin) for 8 kHz)")


def kind_name(kind: int) -> str:
    if kind in AUDIO_KINDS:
        rate, name = AUDIO_KINDS[kind]
        return f"0x{kind:02x} ({name}, {rate} Hz)"
    return f"0x{kind:02x}"


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
        self.state = "waiting_uuid"  # -> "waiting_audio" -> "streaming" -> "ended"
        self.call_id: str | None = None
        self.info: CallInfo | None = None
        self.kind: int | None = None  # the call's audio kind (its first audio frame's)
        self.rate = RATE
        self.codec: str | None = None  # "pcm16" or "mulaw" once known
        self.samples = 0
        self._held: list[Frame] = []  # audio and digits not yet delivered, in order
        self._held_bytes = 0
        self._window = bytearray()  # held 0x10 audio not yet classified
        self._odd = False  # a held 0x10 frame had an odd length (not slin)
        self.undecided_bytes = 0  # quiet 0x10 audio passed on as PCM16 before the codec was known

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
        return self._hang_up()

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
        """Seconds of audio delivered so far."""
        return self.samples / self.rate

    @property
    def spec(self) -> AudioSpec:
        return AudioSpec("pcm16", self.rate, 1)

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
            self.state = "waiting_audio"
            return []
        if kind == KIND_HANGUP:
            if payload:
                raise ProtocolError(f"hangup frame with a {len(payload)}-byte payload", code="malformed_frame")
            return self._hang_up()
        if kind == KIND_ERROR:
            code = payload[0] if payload else 0
            what = ERROR_CODES.get(code, "application error")
            log.warning("audiosocket %s: Asterisk reported error 0x%02x (%s)", self.call_id, code, what)
            if self.state == "waiting_uuid":
                self.state = "ended"
                return []
            if code == 0x01:  # the caller hanging up: an ordinary end, not a failure
                return self._hang_up()
            actions = self._settle()
            if self.state == "ended":
                return actions
            self.state = "ended"
            return actions + [EndCall("asterisk_error", error=f"Asterisk error 0x{code:02x}: {what}",
                                      code="asterisk_error")]
        if self.state == "waiting_uuid":
            raise ProtocolError(f"frame kind 0x{kind:02x} before the UUID frame", code="unexpected_message")
        if kind in AUDIO_KINDS:
            actions: list[Action] = []
            if self.kind is None:
                actions += self._start(kind)
            elif kind != self.kind:
                raise ProtocolError(f"audio kind changed from {kind_name(self.kind)} to {kind_name(kind)} "
                                    "mid-call", code="audio_kind_changed")
            try:
                return actions + self._media(frame)
            except ProtocolError as e:  # the call started: keep that
                return actions + self._fail(e)
        if kind == KIND_DTMF:
            if len(payload) != 1 or payload[0] not in DIGITS:
                raise ProtocolError(f"DTMF frame payload {payload!r} is not one digit 0-9 * # A-D",
                                    code="malformed_frame")
            return self._media(frame)
        raise ProtocolError(f"unsupported frame kind 0x{kind:02x} (accepted: {ACCEPTED})", code="unsupported_kind")

    def _start(self, kind: int | None) -> list[Action]:
        """The call's first audio (or its end before any): open it at that rate."""
        assert self.info is not None
        self.kind = kind
        if kind is not None:
            self.rate = AUDIO_KINDS[kind][0]
        if kind != KIND_AUDIO:  # only 0x10 may carry another codec
            self.codec = sniff.PCM16
        self.state = "streaming"
        return [StartCall(self.info, self.spec, ("caller",))]

    def _media(self, frame: Frame) -> list[Action]:
        """An audio or DTMF frame, in order: delivered, or held while the codec is not known."""
        if self.codec is not None:
            if not self._held:
                return self._push(frame)
            self._held.append(frame)  # after digits held until the first audio
            return self._release(self.codec)
        self._held.append(frame)
        if frame.kind == KIND_DTMF or self.kind is None:
            return []
        self._held_bytes += len(frame.payload)
        self._window += frame.payload
        if len(frame.payload) % 2:  # never signed linear: decide on what came so far
            self._odd = True
            return self._decide(sniff.classify(bytes(self._window)))
        if len(self._window) < sniff.WINDOW_BYTES:
            return []
        window = bytes(self._window)
        self._window.clear()
        verdict = sniff.classify(window)
        if verdict is not None:
            return self._decide(verdict)
        if sniff.quiet(window) or self._held_bytes >= MAX_HOLD_BYTES:
            self.undecided_bytes += self._held_bytes
            return self._release(sniff.PCM16)  # as PCM16, still undecided
        return []

    def _decide(self, verdict: str | None) -> list[Action]:
        """Fix the 0x10 call's codec (an odd frame length rules out PCM16) and deliver what was held."""
        codec = verdict or (sniff.MULAW if self._odd else sniff.PCM16)
        self.codec = codec
        self._window.clear()
        if codec == sniff.MULAW:
            log.warning(MULAW_FIX, self.call_id)
        return self._release(codec)

    def _release(self, codec: str) -> list[Action]:
        """Deliver the held frames as ``codec``; a bad one ends the call after those before it."""
        actions: list[Action] = []
        current, self.codec = self.codec, codec
        while self._held:
            frame = self._held.pop(0)
            try:
                actions += self._push(frame)
            except ProtocolError as e:
                self._held.clear()
                return actions + self._fail(e)
        self.codec, self._held_bytes = current, 0
        return actions

    def _push(self, frame: Frame) -> list[Action]:
        payload = frame.payload
        if frame.kind == KIND_DTMF:
            return [PushDigit(chr(payload[0]).upper(), "caller", self.position)]
        if self.codec == sniff.MULAW:
            self.samples += len(payload)
            return [PushAudio(ulaw_decode(payload).astype("<i2").tobytes())] if payload else []
        if len(payload) % 2:
            raise ProtocolError(f"audio frame of {len(payload)} bytes (16-bit samples need an even count)",
                                code="malformed_frame")
        if not payload:
            return []
        self.samples += len(payload) // 2
        return [PushAudio(payload)]

    def _settle(self) -> list[Action]:
        """The call is ending: start it if no audio came, deliver what is held."""
        if self.state in ("waiting_uuid", "ended"):
            return []
        actions = self._start(None) if self.state == "waiting_audio" else []
        if self._held:
            if self.codec is None:
                tail = bytes(self._window)
                actions += self._decide(sniff.classify(tail) if tail else None)
            else:
                actions += self._release(self.codec)
        return actions

    def _hang_up(self) -> list[Action]:
        actions = self._settle()
        if self.state == "ended":
            return actions
        was, self.state = self.state, "ended"
        return actions + [EndCall("hangup")] if was == "streaming" else actions

    def abort(self, message: str, code: str) -> list[Action]:
        """We end the call (idle, shutdown, limits, server busy): close the socket."""
        return self._fail(ProtocolError(message, code=code))

    def _fail(self, error: ProtocolError) -> list[Action]:
        if self.state == "ended":
            return []
        actions = self._settle()  # what came before the bad frame is still delivered
        if self.state == "ended":  # a held frame was bad: that is the reason
            return actions
        log.warning("audiosocket %s%s: closing: %s", self.call_id or "(no uuid yet)",
                    f" from {self.peer}" if self.peer else "", error)
        self.state = "ended"
        return actions + [EndCall("error", error=str(error), code=error.code)]


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
    "AUDIO_KINDS",
    "PLATFORM",
    "kind_name",
]
