"""Genesys Cloud AudioHook (protocol version 2), server side, sans-I/O.

The client (Genesys Cloud, or the reference client in
purecloudlabs/audiohook-reference-implementation) sends JSON text messages
and binary audio frames; every text message in either direction carries
``version: "2"``, the session ``id``, its sender's ``seq`` (1, 2, 3, ... per
direction) and the last ``seq`` seen from the other side (``serverseq`` in
client messages, ``clientseq`` in ours). Client messages also carry
``position``: the duration of audio in the stream so far (``PT<seconds>S``),
which counts audio the client discarded (``discarded``, or paused and
``resumed``) as well as audio sent.

Client -> server, handled here: ``open``, ``ping``, ``update``, ``paused``,
``resumed``, ``discarded``, ``error``, ``close``, ``dtmf`` (``parameters.digit``;
not in the reference implementation's types but accepted where a client sends it)
and binary PCMU frames.
Server -> client, produced here: ``opened``, ``pong``, ``updated``, ``event``
(transcript entities for finals, ``voicetriage.<kind>`` entities for hints;
which kinds go out is configurable, see ``DEFAULT_EVENT_KINDS``),
``closed`` and ``disconnect``. We never send ``pause``/``resume`` (we want all
the audio) nor ``reconnect`` (we keep no session state to move).

Our call clock is the AudioHook position: audio received plus discarded
durations (pushed as gaps: the session fills a short one with silence and jumps
its clock over a longer one), so transcript ``offset`` values are positions in
the client's own stream.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from decimal import Decimal
from typing import Any, Mapping, Sequence

from voicetriage.audio.codecs import AudioSpec
from voicetriage.core.errors import ProtocolError
from voicetriage.core.events import CallInfo
from voicetriage.core.logsafe import brief, safe
from voicetriage.core.serialize import dumps, to_dict
from voicetriage.protocols.actions import (
    Action,
    EndCall,
    EndUtterance,
    PushAudio,
    PushDigit,
    PushGap,
    Send,
    StartCall,
)
from voicetriage.protocols.audiohook_wire import (
    _DURATION_RE,
    _LANG_RE,
    CHANNEL_TRACKS,
    RATE,
    _confidence,
    _is_seq,
    _is_uuid,
    format_duration,
    parse_duration,
    samples_duration,
    select_media,
    validate_open,
    word_tokens,
)
from voicetriage.protocols.machine import (
    CLOSE_GOING_AWAY,
    CLOSE_GRACE_S,
    CLOSE_NORMAL,
    Close,
    Machine,
)

log = logging.getLogger(__name__)

PLATFORM = "audiohook"
VERSION = "2"
NULL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_TEXT_CHARS = 65535  # the protocol's limit on one text message, both ways
TRACK_CHANNELS = {v: k for k, v in CHANNEL_TRACKS.items()}
DIGITS = frozenset("0123456789*#ABCD")
CLOSE_REASONS = ("end", "error", "disconnect", "reconnect")
DEFAULT_LANGUAGES = ("zh-CN", "zh-HK", "zh-TW", "yue-HK", "en-US", "en-GB")
# pipeline event kinds sent back as ``event`` messages unless configured otherwise: finals
# (transcript entities) and routing hints; "partial" adds non-final transcripts, any other
# kind (e.g. "signal") goes out as a ``voicetriage.<kind>`` entity
DEFAULT_EVENT_KINDS = ("final", "hint")
# Whisper's language codes -> the language tag we report when the open message gave none that fits
_REGION = {"en": "en-US", "zh": "zh-CN", "yue": "yue-HK", "es": "es-ES", "fr": "fr-FR", "de": "de-DE",
           "it": "it-IT", "ru": "ru-RU", "ja": "ja-JP", "ko": "ko-KR", "pt": "pt-BR", "nl": "nl-NL"}
_CLIENT_TYPES = ("open", "close", "discarded", "error", "ping", "update", "paused", "resumed", "dtmf")
# a discarded/resumed gap shorter than this is a hole in the audio inside speech (the clock
# runs on, the utterance goes on: PushGap hold); a longer one is a pause. The session fills a
# gap up to [stream] gap_fill_max_s with silence and jumps its clock over a longer one
# (counted, not materialised: PT1800S was 1800 s of zeros, 6.5 GB and a 27.6 s stall)
SPLIT_GAP_S = Decimal("1.0")
_ENTITY_NS = uuid.UUID("7f0c7a52-4a57-4d2e-9a3e-2f3d1b0d7a11")  # transcript ids: uuid5(ns, session/track/utt)


class _ClientError(Exception):
    """A client message that breaks the protocol: answered with disconnect(error)."""


class AudioHookSession(Machine):
    """One AudioHook session (one websocket), server side.

    ``session_id`` comes from the ``Audiohook-Session-Id`` header,
    ``organization_id`` from ``Audiohook-Organization-Id`` (it must match the
    ``open`` message), ``correlation_id`` from ``Audiohook-Correlation-Id``.
    """

    name = "audiohook"
    _draining = False  # the server is stopping: we wait a little for the close transaction
    _gave_up = False  # no close transaction came in time

    def __init__(
        self,
        session_id: str,
        *,
        organization_id: str | None = None,
        correlation_id: str | None = None,
        supported_languages: Sequence[str] = DEFAULT_LANGUAGES,
        event_kinds: Sequence[str] = DEFAULT_EVENT_KINDS,
        position_tolerance_samples: int = 8,
    ) -> None:
        self.id = session_id or NULL_UUID
        self.organization_id = organization_id
        self.correlation_id = correlation_id
        self.supported_languages = tuple(supported_languages)
        self.event_kinds = frozenset(event_kinds)
        self.tolerance = position_tolerance_samples
        self.seq = 0  # our last seq
        self.clientseq = 0  # client's last seq
        self.state = "preparing"  # -> active <-> paused -> closing -> closed; or failed
        self.probe = False
        self.media: dict[str, Any] | None = None
        self.tracks: tuple[str, ...] = ()
        self.language: str | None = None
        self.channel_languages: dict[str, str | None] = {}
        self.info: CallInfo | None = None
        self.samples = 0  # stream position in samples (audio + discarded)
        self.origin = 0  # position (samples) where our call clock starts (normally 0)
        self.has_call = False  # the pipeline has the call (between StartCall and the end)
        self._opened: dict[str, Any] = {}
        self.disconnect_sent = False
        self.position_mismatches = 0
        self.rtt: str | None = None
        self.close_reason: str | None = None

    # -- input ----------------------------------------------------------------
    def receive_text(self, text: str) -> list[Action]:
        if self.state == "closed":
            return []
        try:
            if len(text) > MAX_TEXT_CHARS:
                raise _ClientError(f"Text message too large (>64K). Length: {len(text)}")
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):  # ValueError: also an integer over 4,300 digits
                raise _ClientError("Text message not valid JSON") from None
            self._check_base(msg)
            return self._dispatch(msg)
        except _ClientError as e:
            return self.fail(f"Client Error: {e}")
        except ProtocolError as e:
            return self.fail(f"Client Error: {e}")

    def receive_bytes(self, data: bytes) -> list[Action]:
        if self.state == "active":
            if self.media is None:  # pragma: no cover - active implies media
                return self.fail("Client Error: Unexpected binary message: No media selected")
            channels = len(self.media["channels"])
            if len(data) % channels:
                return self.fail(
                    f"Client Error: Binary data not a valid audio frame ({len(data)} bytes "
                    f"for {channels} PCMU channels)"
                )
            self.samples += len(data) // channels
            if not self.has_call or not data:
                return []  # a connection probe streams nothing we transcribe
            return [PushAudio(bytes(data))]
        if self.state in ("closing", "closed", "failed"):
            return []  # stragglers after close/disconnect are not worth an error
        return self.fail(f"Client Error: Received audio in state {self.state}")

    def connection_lost(self) -> list[Action]:
        """The websocket closed; end the call if the close transaction did not."""
        was = self.state
        self.state = "closed"
        if self.has_call and was not in ("closing", "closed"):
            return [EndCall("disconnect")]
        return []

    def idle_timeout(self, seconds: float) -> list[Action]:
        if self._draining or self.state == "failed":
            log.warning("audiohook %s: no close transaction within %g s", self.id, seconds)
            self._gave_up = True
            return []
        return self.fail(f"Client Error: no message for {seconds:g} s")

    def shutdown(self) -> list[Action]:
        self._draining = True
        return self.abort("server shutting down", "server_shutdown")

    @property
    def reading(self) -> bool:
        return self.state != "closed" and not self._gave_up and not self.lost

    def read_timeout(self, idle_s: float) -> float | None:
        return CLOSE_GRACE_S if (self._draining or self.state == "failed") else idle_s

    def close_frame(self) -> Close | None:
        """After ``closed`` the client closes the websocket; we close ours if it did not."""
        if self.lost:
            return None
        return Close(CLOSE_GOING_AWAY if self._draining else CLOSE_NORMAL, "",
                     wait_peer_s=CLOSE_GRACE_S if self.state == "closed" else 0.01)

    def on_event(self, event: object) -> list[Action]:
        """A pipeline event of this call -> an ``event`` message, where one applies."""
        if self.state not in ("active", "paused", "closing") or self.probe:
            return []
        kind = getattr(event, "kind", None)
        if kind not in self.event_kinds:
            return []
        if kind in ("final", "partial"):
            entity = self._transcript_entity(event, final=kind == "final")
            if entity is None:
                return []
        else:
            data = to_dict(event)
            entity = {"type": f"voicetriage.{kind}", "data": data}
        msg = self._message("event", {"entities": [entity]})
        if len(msg) > MAX_TEXT_CHARS:
            log.warning("audiohook %s: %s event of %d chars not sent (limit %d)",
                        self.id, kind, len(msg), MAX_TEXT_CHARS)
            self.seq -= 1
            return []
        return [Send(msg)]

    def finish(self) -> list[Action]:
        """After the call was flushed on ``close``: answer ``closed``."""
        if self.state != "closing":
            return []
        self.state = "closed"
        return [Send(self._message("closed", {}))]

    def abort(self, message: str, code: str) -> list[Action]:
        """We end the session (idle, shutdown, limits, server busy): ``disconnect``."""
        if code == "call_too_long":
            return self.fail(message, reason="completed")
        return self.fail(f"Server error: {message}")

    def fail(self, info: str, reason: str = "error") -> list[Action]:
        """Tell the client we are giving up (``disconnect``) and end the call.

        The client answers with a close transaction; ``close`` is still
        answered with ``closed``. ``reason`` is "error", "unauthorized" or "completed".
        """
        log.warning("audiohook session %s: disconnect (%s): %s", self.id, reason, safe(info, 400))
        actions: list[Action] = []
        if not self.disconnect_sent and self.state in ("preparing", "opening", "active", "paused"):
            self.disconnect_sent = True
            actions.append(Send(self._message("disconnect", {"reason": reason, "info": info})))
        if self.has_call and self.state in ("active", "paused"):
            actions.append(EndCall("error" if reason == "error" else reason, error=info,
                                   code="unauthorized" if reason == "unauthorized" else "protocol_error"))
        if self.state in ("preparing", "opening", "active", "paused"):
            self.state = "failed"
        return actions

    # -- message plumbing ---------------------------------------------------
    def _message(self, type_: str, parameters: Mapping[str, Any]) -> str:
        self.seq += 1
        msg = {
            "version": VERSION,
            "type": type_,
            "id": self.id,
            "seq": self.seq,
            "clientseq": self.clientseq,
            "parameters": parameters,
        }
        return dumps(msg)

    def _check_base(self, msg: object) -> None:
        if not isinstance(msg, dict):
            raise _ClientError("Message not a well-formed client message")
        if (msg.get("version") != VERSION or not _is_uuid(msg.get("id")) or not isinstance(msg.get("type"), str)
                or not _is_seq(msg.get("seq")) or not isinstance(msg.get("parameters"), dict)
                or not _is_seq(msg.get("serverseq")) or not isinstance(msg.get("position"), str)
                or not _DURATION_RE.match(msg["position"])):
            raise _ClientError("Message not a well-formed client message")
        if msg["seq"] != self.clientseq + 1:
            if self.state == "failed" and msg["seq"] > self.clientseq:
                pass  # after our disconnect, let the close transaction through
            else:
                raise _ClientError(
                    f"Invalid seq value (not monotonically increasing): expected {self.clientseq + 1}, "
                    f"got {brief(msg['seq'])}"
                )
        self.clientseq = msg["seq"]
        if msg["serverseq"] > self.seq:
            raise _ClientError(f"Invalid serverseq value {brief(msg['serverseq'])} (we sent {self.seq})")
        if msg["id"] != self.id:
            if self.id == NULL_UUID:
                self.id = msg["id"]
            else:
                raise _ClientError("Session identifier mismatch")

    def _dispatch(self, msg: dict[str, Any]) -> list[Action]:
        type_ = msg["type"]
        params = msg["parameters"]
        if type_ not in _CLIENT_TYPES:
            raise _ClientError(f"Invalid Message: {brief(type_)} is not a supported client message")
        if type_ == "close":
            return self._on_close(params)
        if self.state in ("closing", "closed"):
            log.info("audiohook %s: ignoring '%s' in state %s", self.id, type_, self.state)
            return []
        if type_ == "ping":
            rtt = params.get("rtt")
            if rtt is not None:
                parse_duration(rtt)
                self.rtt = rtt
            return [Send(self._message("pong", {}))]
        if type_ == "error":
            return self._on_error(params)
        if self.state == "failed":
            return []
        if type_ == "open":
            return self._on_open(msg, params)
        if self.state == "preparing":
            raise _ClientError(f"Unexpected '{type_}' message before 'open'")
        if type_ == "update":
            return self._on_update(msg, params)
        if type_ == "paused":
            was = self.state
            if self.state == "active":
                self.state = "paused"
            self._check_position(msg)
            # the stream stops here (hold, mute, secure pause): so does the utterance
            return [EndUtterance()] if self.has_call and was == "active" else []
        if type_ in ("resumed", "discarded"):
            return self._on_discarded(msg, type_, params)
        return self._on_dtmf(msg, params)

    # -- transactions ---------------------------------------------------------
    def _on_open(self, msg: Mapping[str, Any], p: Mapping[str, Any]) -> list[Action]:
        if self.state != "preparing":
            log.warning("audiohook %s: ignoring 'open' in state %s", self.id, self.state)
            return []
        problem = validate_open(p)
        if problem:
            raise _ClientError(f"Invalid Message: 'open' parameters: {problem}")
        if self.organization_id is not None and p["organizationId"].lower() != self.organization_id.lower():
            return self.fail(
                'Mismatch between "organizationId" open parameter and "audiohook-organization-id" header field',
                reason="unauthorized",
            )
        choice = select_media(p["media"])
        self.probe = p["conversationId"] == NULL_UUID
        if choice is None and not self.probe:
            return self.fail(
                "No supported media offered: voicetriage accepts PCMU at 8000 Hz "
                "(external, internal, or both)"
            )
        self.media = choice
        self.tracks = tuple(CHANNEL_TRACKS[c] for c in choice["channels"]) if choice else ()
        self.language = p.get("language")
        start = parse_duration(msg["position"])
        self.samples = self.origin = int((start * RATE).to_integral_value())
        opened: dict[str, Any] = {"media": [choice] if choice else [], "startPaused": False}
        if p.get("supportedLanguages") is True:
            opened["supportedLanguages"] = list(self.supported_languages)
        actions: list[Action] = []
        if self.probe or choice is None:
            log.info("audiohook %s: connection probe from organization %s", self.id, p["organizationId"])
            self.state = "active"
            return [Send(self._message("opened", opened))]
        participant = p["participant"]
        ids = {
            "sessionId": self.id,
            "conversationId": p["conversationId"],
            "organizationId": p["organizationId"],
            "participantId": participant["id"],
        }
        if self.correlation_id:
            ids["correlationId"] = self.correlation_id
        self.channel_languages = self._channel_languages(choice["channels"], p.get("customConfig") or {})
        metadata: dict[str, Any] = {
            "dnis": participant.get("dnis", ""),
            "aniName": participant.get("aniName", ""),
            "media": choice,
        }
        if p.get("customConfig") is not None:
            metadata["customConfig"] = p["customConfig"]
        if self.language:
            metadata["language"] = self.language
        self.info = CallInfo(
            call_id=self.id,
            caller_id=participant.get("ani") or None,
            language_hint=self.language,
            platform=PLATFORM,
            platform_ids=ids,
            metadata=metadata,
        )
        # 'opened' goes out only once the pipeline has taken the call (call_started);
        # if it refuses, the client gets 'disconnect' with the next seq instead
        self.state = "opening"
        self._opened = opened
        caller_language = self.channel_languages.get("external", self.language)
        self.info = dataclasses.replace(self.info, language_hint=caller_language)
        per_track = {CHANNEL_TRACKS[c]: lang for c, lang in self.channel_languages.items() if c != "external"}
        return [StartCall(self.info, AudioSpec("mulaw", RATE, len(choice["channels"])), self.tracks,
                          track_languages=per_track or None)]

    def _channel_languages(self, channels: Sequence[str], custom: Mapping[str, Any]) -> dict[str, str | None]:
        """Language per opened channel: the session's ``language`` is the customer's
        (external); the agent (internal) is detected on its own. ``customConfig``
        ``{"languages": {"internal": "zh-CN", "external": null}}`` overrides
        either (null: detect)."""
        langs: dict[str, str | None] = {c: (self.language if c == "external" else None) for c in channels}
        given = custom.get("languages")
        if given is None:
            return langs
        if not isinstance(given, dict):
            raise _ClientError("Invalid Message: 'open' parameters: customConfig.languages must map "
                               "a channel (external, internal) to a language code or null")
        for channel, lang in given.items():
            if channel not in CHANNEL_TRACKS:
                raise _ClientError(f"Invalid Message: 'open' parameters: customConfig.languages: "
                                   f"unknown channel {brief(channel)} (external or internal)")
            if lang is not None and not (isinstance(lang, str) and _LANG_RE.match(lang)):
                raise _ClientError(f"Invalid Message: 'open' parameters: customConfig.languages.{channel}: "
                                   f"{brief(lang)} is not a language code like en-US (or null)")
            if channel in langs:
                langs[channel] = lang
        return langs

    def call_started(self) -> list[Action]:
        """The pipeline accepted the call opened by ``open``: answer ``opened``."""
        if self.state != "opening":
            return []
        self.state = "active"
        self.has_call = True
        return [Send(self._message("opened", self._opened))]

    def _on_update(self, msg: Mapping[str, Any], p: Mapping[str, Any]) -> list[Action]:
        lang = p.get("language")
        if not (isinstance(lang, str) and _LANG_RE.match(lang)):
            raise _ClientError("Invalid Message: 'update' parameters: language must be a code like en-US")
        log.info("audiohook %s: language updated %s -> %s", self.id, self.language, lang)
        self.language = lang
        self._check_position(msg)
        # an update marks a boundary in the conversation: speech in progress ends here
        split: list[Action] = [EndUtterance()] if self.has_call else []
        return split + [Send(self._message("updated", {}))]

    def _on_discarded(self, msg: Mapping[str, Any], type_: str, p: Mapping[str, Any]) -> list[Action]:
        start = int((parse_duration(p.get("start")) * RATE).to_integral_value())
        discarded = int((parse_duration(p.get("discarded")) * RATE).to_integral_value())
        if type_ == "resumed":
            if self.state == "paused":
                self.state = "active"
            else:
                log.info("audiohook %s: 'resumed' while %s", self.id, self.state)
        actions: list[Action] = []
        target = start + discarded
        if start != self.samples:
            self.position_mismatches += 1
            log.warning("audiohook %s: %s.start %s but the stream is at %s", self.id, type_,
                        samples_duration(start), samples_duration(self.samples))
        # the message's own position is the client's clock: if it does not count the
        # discarded span, neither do we (offsets must stay positions in its stream)
        pos = int((parse_duration(msg["position"]) * RATE).to_integral_value())
        if target > pos:
            log.warning("audiohook %s: %s claims %s discarded up to %s, but its position is %s; "
                        "following the position", self.id, type_, samples_duration(discarded),
                        samples_duration(target), samples_duration(pos))
            target = pos
        if target > self.samples:
            gap = target - self.samples
            self.samples = target
            if self.has_call:  # the call clock is the stream position: it runs on by the gap
                actions.append(PushGap(gap / RATE, hold=Decimal(gap) / RATE < SPLIT_GAP_S))
        self._check_position(msg)
        return actions

    def _on_dtmf(self, msg: Mapping[str, Any], p: Mapping[str, Any]) -> list[Action]:
        digit = p.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit.upper() not in DIGITS:
            raise _ClientError(f"Invalid Message: 'dtmf' parameters: digit {brief(digit)}")
        pos = int((parse_duration(msg["position"]) * RATE).to_integral_value())
        if not self.has_call:
            return []
        track = "caller" if "caller" in self.tracks else self.tracks[0]
        return [PushDigit(digit.upper(), track, max(0, pos - self.origin) / RATE)]

    def _on_error(self, p: Mapping[str, Any]) -> list[Action]:
        code, message = p.get("code"), p.get("message")
        if not (isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 10000) \
                or not isinstance(message, str):
            raise _ClientError("Invalid Message: 'error' parameters: code and message required")
        log.warning("audiohook %s: client error %s: %s (retryAfter=%s)", self.id, code, safe(message),
                    brief(p.get("retryAfter")))
        return []  # the client follows up with a close transaction

    def _on_close(self, p: Mapping[str, Any]) -> list[Action]:
        reason = p.get("reason")
        if reason not in CLOSE_REASONS:
            if self.state == "failed":
                reason = "error"
            else:
                raise _ClientError(f"Invalid Message: 'close' parameters: reason {brief(reason)}")
        if self.state in ("closing", "closed"):
            return []
        was = self.state
        self.state = "closing"
        self.close_reason = str(reason)
        if self.has_call and was in ("active", "paused"):
            return [EndCall("stop" if reason == "end" else str(reason))]
        return self.finish()  # nothing to flush: answer at once

    def _check_position(self, msg: Mapping[str, Any]) -> None:
        pos = int((parse_duration(msg["position"]) * RATE).to_integral_value())
        if abs(pos - self.samples) > self.tolerance:
            self.position_mismatches += 1
            log.warning("audiohook %s: client position %s, ours %s", self.id, samples_duration(pos),
                        samples_duration(self.samples))

    # -- events -------------------------------------------------------------
    def _language_tag(self, whisper_lang: str) -> str | None:
        if self.language and self.language.split("-")[0].lower() == whisper_lang:
            return self.language
        return _REGION.get(whisper_lang)

    def _transcript_entity(self, f: Any, final: bool = True) -> dict[str, Any] | None:
        text = (getattr(f, "text", "") or "").strip()
        if not text:
            return None
        channel = TRACK_CHANNELS.get(getattr(f, "track", "caller"), "external")
        channels = list(self.media["channels"]) if self.media else [channel]
        if channel not in channels:
            return None
        start = float(getattr(f, "start", 0.0))
        end = float(getattr(f, "end", start))
        # partials carry no score; their language probability is the best we have
        score = _confidence(float(f.avg_logprob)) if final else round(float(getattr(f, "language_probability", 0.0)), 3)
        lang = self._language_tag(str(getattr(f, "language", "") or ""))
        offset = Decimal(self.origin) / RATE + Decimal(str(round(start, 3)))
        duration = Decimal(str(round(max(0.0, end - start), 3)))
        interpretation: dict[str, Any] = {"type": "display", "transcript": text}
        if final:
            interpretation["tokens"] = word_tokens(text, offset, duration, score, lang)
        alternative: dict[str, Any] = {"confidence": score}
        if lang:
            alternative["languages"] = [lang]
        alternative["interpretations"] = [interpretation]
        return {
            "type": "transcript",
            "data": {
                "id": str(uuid.uuid5(_ENTITY_NS, f"{self.id}/{getattr(f, 'track', '')}/{getattr(f, 'utterance', 0)}")),
                "channelId": channels.index(channel),
                "isFinal": final,
                "offset": format_duration(offset),
                "duration": format_duration(duration),
                "alternatives": [alternative],
            },
        }


__all__ = [
    "AudioHookSession",
    "PLATFORM",
    "NULL_UUID",
    "format_duration",
    "parse_duration",
    "word_tokens",
    "samples_duration",
]
