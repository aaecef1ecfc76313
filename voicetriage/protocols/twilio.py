"""Twilio Media Streams, sans-I/O.

Twilio opens a websocket to us (TwiML ``<Connect><Stream>`` or
``<Start><Stream>``) and sends JSON text frames, documented at
https://www.twilio.com/docs/voice/media-streams/websocket-messages:

``connected``  ``{"event":"connected","protocol":"Call","version":"1.0.0"}``
``start``      ``start.{accountSid,streamSid,callSid,tracks,customParameters,mediaFormat}``
``media``      ``media.{track,chunk,timestamp,payload}``: base64 µ-law 8 kHz mono,
               ``timestamp`` = milliseconds since the stream started
``dtmf``       ``dtmf.{track,digit}`` (``track`` is ``"inbound_track"``)
``mark``       ``mark.{name}``: a mark we sent has played (we send none)
``stop``       ``stop.{accountSid,callSid}``: the stream is over

Tracks: ``inbound`` (the caller) -> ``"caller"``, ``outbound`` (agent or bot)
-> ``"agent"``. Each track keeps its own clock from the media timestamps: a
chunk that starts later than the audio received so far means lost packets,
and the difference becomes a gap (:class:`PushGap`: the session fills a short one
with silence and jumps its clock over a longer one), never a shifted clock.

We send nothing back: a bidirectional stream accepts only ``media``, ``mark``
and ``clear`` from the server, and voicetriage only listens. Finals and hints
go to the server's event subscribers, labelled with ``streamSid``/``callSid``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Mapping

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.errors import AudioFormatError, ProtocolError
from voicetriage.core.events import CallInfo
from voicetriage.core.logsafe import brief, safe
from voicetriage.protocols.actions import (
    Action,
    EndCall,
    PushAudio,
    PushDigit,
    PushGap,
    StartCall,
)
from voicetriage.protocols.machine import CLOSE_NORMAL, Close, Machine

log = logging.getLogger(__name__)

PLATFORM = "twilio"
SAMPLE_RATE = 8000
TRACKS = {"inbound": "caller", "outbound": "agent"}
DTMF_TRACKS = {"inbound_track": "caller", "outbound_track": "agent", "inbound": "caller", "outbound": "agent"}
DIGITS = frozenset("0123456789*#ABCD")
MAX_SID_LEN = 128  # Twilio's SIDs are 34 characters
MAX_MARKS = 64  # the last mark names kept (for tests and debugging)

# customParameters (<Parameter name=... value=...> in TwiML) we read; the first present wins.
CALLER_PARAMS = ("caller", "From", "from", "callerId")
CALLED_PARAMS = ("called", "To", "to")
LANGUAGE_PARAMS = ("language",)


def _bad(message: str, code: str = "malformed_message") -> ProtocolError:
    return ProtocolError(message, code=code)


def _obj(msg: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise _bad(f"{where}: '{key}' must be an object")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}: '{key}' must be a non-empty string")
    return value


def _sid(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A SID: it names the call in logs and events, so no control characters and no megabytes."""
    value = _str(obj, key, where)
    if len(value) > MAX_SID_LEN or not value.isprintable():
        raise _bad(f"{where}: '{key}' must be printable and at most {MAX_SID_LEN} characters, "
                   f"got {brief(value)}")
    return value


def _uint(value: Any, what: str) -> int:
    """Twilio sends counters as decimal strings ("5"); accept ints too."""
    if isinstance(value, bool):
        raise _bad(f"{what} must be a non-negative integer, got {value!r}")
    if isinstance(value, int) and 0 <= value < 10**20:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise _bad(f"{what} must be a non-negative integer of at most 20 digits, got {brief(value)}")


class TwilioStream(Machine):
    """One Twilio Media Stream (one websocket), from ``connected`` to ``stop``.

    ``max_gap_s`` bounds the gap a timestamp jump may claim; a larger jump is
    treated as a corrupt message. A gap costs nothing however long (the session
    counts it rather than decoding zeros), so the bound is only a sanity check.
    ``gap_tolerance_ms``: timestamp differences up to this are jitter, not loss.
    """

    name = "twilio"
    normal_close = Close(CLOSE_NORMAL, "stream stopped")

    def __init__(self, *, max_gap_s: float = 3600.0, gap_tolerance_ms: float = 1.0) -> None:
        self.max_gap_s = max_gap_s
        self.tolerance = int(round(gap_tolerance_ms * SAMPLE_RATE / 1000))
        self.state = "connecting"  # -> "started" -> "stopped"
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.tracks: tuple[str, ...] = ()
        self.info: CallInfo | None = None
        self._sample_pos: dict[str, int] = {}  # per track: samples received + gaps
        self._last_seq: int | None = None
        self.sequence_gaps = 0
        self.gap_s = 0.0
        self.late_chunks = 0
        self.marks: list[str] = []  # the last MAX_MARKS names

    # -- input ----------------------------------------------------------------
    def receive_text(self, text: str) -> list[Action]:
        """One websocket text frame from Twilio."""
        if self.state == "stopped":
            return []
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):  # ValueError: also an integer over 4,300 digits
            return self._fail(_bad(f"not valid JSON: {brief(text[:80])}"))
        if not isinstance(msg, dict):
            return self._fail(_bad("a message must be a JSON object"))
        try:
            return self._dispatch(msg)
        except ProtocolError as e:
            return self._fail(e)
        except AudioFormatError as e:
            return self._fail(ProtocolError(str(e), code=e.code))

    def receive_bytes(self, data: bytes) -> list[Action]:
        """Twilio never sends binary frames."""
        if self.state == "stopped":
            return []
        return self._fail(_bad(f"unexpected binary frame ({len(data)} bytes); Twilio sends JSON text"))

    def connection_lost(self) -> list[Action]:
        """The websocket closed without ``stop`` (Twilio hung up or the network broke)."""
        if self.state != "started":
            self.state = "stopped"
            return []
        self.state = "stopped"
        return [EndCall("disconnect")]

    def call_started(self) -> list[Action]:
        """The pipeline took the call; nothing to answer."""
        return []

    def on_event(self, event: object) -> list[Action]:
        """Pipeline events are not sent back to Twilio (see module docstring)."""
        return []

    def finish(self) -> list[Action]:
        return []

    def position(self, track: str = "caller") -> float:
        """Seconds of call time on ``track`` (audio plus gaps)."""
        return self._sample_pos.get(track, 0) / SAMPLE_RATE

    # -- messages -----------------------------------------------------------
    def _dispatch(self, msg: dict[str, Any]) -> list[Action]:
        event = msg.get("event")
        if not isinstance(event, str):
            raise _bad("message has no 'event' string")
        if event == "connected":
            if self.state != "connecting":
                raise _bad("'connected' after 'start'", code="unexpected_message")
            log.debug("twilio connected: protocol=%s version=%s", brief(msg.get("protocol")), brief(msg.get("version")))
            return []
        self._check_sequence(msg, event)
        if event == "start":
            return self._on_start(msg)
        if event not in ("media", "dtmf", "mark", "stop"):
            # Twilio may add events; an unknown one is not a reason to drop a live call.
            log.info("twilio stream %s: ignoring unknown event %s", self.stream_sid, brief(event))
            return []
        if self.state != "started":
            raise _bad(f"'{event}' before 'start'", code="unexpected_message")
        sid = msg.get("streamSid")
        if sid is not None and sid != self.stream_sid:
            raise _bad(f"streamSid {brief(sid)} does not match this stream ({self.stream_sid})")
        if event == "media":
            return self._on_media(_obj(msg, "media", "media"))
        if event == "dtmf":
            return self._on_dtmf(_obj(msg, "dtmf", "dtmf"))
        if event == "mark":
            name = _obj(msg, "mark", "mark").get("name")
            kept = name if isinstance(name, str) and len(name) <= 256 else brief(name)
            self.marks = [*self.marks[1 - MAX_MARKS:], kept]
            log.debug("twilio stream %s: mark %s", self.stream_sid, brief(name))
            return []
        # stop
        self.state = "stopped"
        return [EndCall("stop")]

    def _check_sequence(self, msg: Mapping[str, Any], event: str) -> None:
        if "sequenceNumber" not in msg:
            return
        seq = _uint(msg["sequenceNumber"], "sequenceNumber")
        if self._last_seq is not None and seq != self._last_seq + 1:
            # Over TCP nothing is lost or reordered; a skip is Twilio's business. Log, go on.
            self.sequence_gaps += 1
            log.warning("twilio stream %s: sequenceNumber %d after %d (%s)",
                        self.stream_sid, seq, self._last_seq, brief(event))
        self._last_seq = seq

    def _on_start(self, msg: Mapping[str, Any]) -> list[Action]:
        if self.state != "connecting":
            raise _bad("second 'start' on one stream", code="unexpected_message")
        start = _obj(msg, "start", "start")
        stream_sid = _sid(start, "streamSid", "start")
        call_sid = _sid(start, "callSid", "start")
        account_sid = start.get("accountSid")
        top_sid = msg.get("streamSid")
        if top_sid is not None and top_sid != stream_sid:
            raise _bad(f"start: streamSid {brief(top_sid)} differs from start.streamSid {stream_sid!r}")
        fmt = _obj(start, "mediaFormat", "start")
        spec = AudioSpec.parse(fmt.get("encoding"), fmt.get("sampleRate"), fmt.get("channels", 1))
        if spec.encoding != "mulaw" or spec.sample_rate != SAMPLE_RATE or spec.channels != 1:
            raise ProtocolError(
                f"start: mediaFormat {brief(fmt)} is not Twilio's audio/x-mulaw 8000 Hz mono",
                code="unsupported_media",
            )
        raw_tracks = start.get("tracks", ["inbound"])
        if (not isinstance(raw_tracks, list) or not raw_tracks
                or any(not isinstance(t, str) or t not in TRACKS for t in raw_tracks)
                or len(set(raw_tracks)) != len(raw_tracks)):
            raise _bad(f"start: tracks must be a list of 'inbound'/'outbound', got {brief(raw_tracks)}")
        # caller first: triage looks at tracks[0]-labelled "caller" regardless of Twilio's order
        self.tracks = tuple(TRACKS[t] for t in ("inbound", "outbound") if t in raw_tracks)
        params = start.get("customParameters") or {}
        if not isinstance(params, dict):
            raise _bad("start: customParameters must be an object")
        try:
            params = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        except (ValueError, RecursionError):
            raise _bad("start: customParameters values must be strings") from None

        def first(names: tuple[str, ...]) -> str | None:
            return next((params[n] for n in names if params.get(n)), None)

        ids = {"streamSid": stream_sid, "callSid": call_sid}
        if isinstance(account_sid, str) and account_sid:
            ids["accountSid"] = account_sid
        called = first(CALLED_PARAMS)
        metadata: dict[str, Any] = {"customParameters": params, "tracks": list(raw_tracks)}
        if called:
            metadata["called"] = called
        self.info = CallInfo(
            call_id=stream_sid,
            caller_id=first(CALLER_PARAMS),
            language_hint=first(LANGUAGE_PARAMS),
            platform=PLATFORM,
            platform_ids=ids,
            metadata=metadata,
        )
        self.stream_sid, self.call_sid = stream_sid, call_sid
        self._sample_pos = {t: 0 for t in self.tracks}
        self.state = "started"
        return [StartCall(self.info, spec, self.tracks)]

    def _on_media(self, media: Mapping[str, Any]) -> list[Action]:
        wire_track = media.get("track", "inbound")
        if not isinstance(wire_track, str) or wire_track not in TRACKS or TRACKS[wire_track] not in self.tracks:
            raise _bad(f"media: track {brief(wire_track)} is not one of this stream's tracks")
        track = TRACKS[wire_track]
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise _bad("media: 'payload' must be a base64 string")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("media: 'payload' is not valid base64") from None
        actions: list[Action] = []
        if "timestamp" in media:
            ts = _uint(media["timestamp"], "media.timestamp")
            if "chunk" in media:
                _uint(media["chunk"], "media.chunk")
            expected = self._sample_pos[track]
            due = ts * SAMPLE_RATE // 1000
            gap = due - expected
            if gap > self.tolerance:
                if gap > self.max_gap_s * SAMPLE_RATE:
                    raise _bad(
                        f"media: timestamp {ts} ms jumps {gap / SAMPLE_RATE:.1f} s ahead of the "
                        f"{track} audio received (limit {self.max_gap_s:g} s)"
                    )
                seconds = gap / SAMPLE_RATE
                self.gap_s += seconds
                self._sample_pos[track] = due
                actions.append(PushGap(seconds, track))
            elif gap < -self.tolerance:
                # audio we already have a clock for (a duplicate or late chunk): keep it,
                # dropping speech is worse than a few ms of skew
                self.late_chunks += 1
        if data:
            self._sample_pos[track] += len(data)  # µ-law: one byte per sample
            actions.append(PushAudio(data, track))
        return actions

    def _on_dtmf(self, dtmf: Mapping[str, Any]) -> list[Action]:
        digit = dtmf.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DIGITS:
            raise _bad(f"dtmf: 'digit' must be one of 0-9 * # A-D, got {brief(digit)}")
        wire_track = dtmf.get("track", "inbound_track")
        track = DTMF_TRACKS.get(wire_track) if isinstance(wire_track, str) else None
        if track is None:
            raise _bad(f"dtmf: unknown track {brief(wire_track)}")
        if track not in self._sample_pos:
            track = self.tracks[0]
        # no timestamp on dtmf: it happened at the current end of that track's audio
        return [PushDigit(digit.upper(), track, self._sample_pos[track] / SAMPLE_RATE)]

    def abort(self, message: str, code: str) -> list[Action]:
        """We end the stream (idle, shutdown, limits, server busy)."""
        return self._fail(ProtocolError(message, code=code))

    def _fail(self, error: ProtocolError) -> list[Action]:
        """Bad input ends this stream with a clear reason; the glue flushes and closes."""
        log.warning("twilio stream %s: %s", self.stream_sid or "(not started)", safe(error, 400))
        self.state = "stopped"
        return [EndCall("error", error=str(error), code=error.code)]


__all__ = ["TwilioStream", "TRACKS", "CALLER_PARAMS", "CALLED_PARAMS", "LANGUAGE_PARAMS", "PLATFORM"]
