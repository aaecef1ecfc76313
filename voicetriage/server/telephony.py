"""Telephony media streams on the voicetriage server: the asyncio glue.

The protocol logic lives in sans-I/O modules (:mod:`voicetriage.protocols.twilio`,
:mod:`~voicetriage.protocols.audiohook`, :mod:`~voicetriage.protocols.audiosocket`);
here each connection reads from its socket, feeds the protocol object, and
performs the actions it returns against the call's session and the socket.
Every call goes through ``App.open_call``, so its finals, DTMF and hints reach
the same hub (event log, webhook, ``/events``) as native calls, labelled with
the platform's ids in ``CallInfo.platform_ids``.

:func:`install` adds ``/twilio`` and ``/audiohook`` websocket routes to an
:class:`~voicetriage.server.app.App` and, when a port is configured, the
AudioSocket TCP listener. Settings come from the ``[telephony]`` config
section (:class:`TelephonyConfig`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voicetriage.core.config import Config, _section
from voicetriage.core.errors import ConfigError, VoiceTriageError
from voicetriage.protocols import audiohook as ah
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
from voicetriage.protocols.audiohook_auth import AudioHookAuth
from voicetriage.protocols.audiosocket import DEFAULT_MAX_PAYLOAD, AudioSocketCall
from voicetriage.protocols.twilio import TwilioStream

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from voicetriage.pipeline.session import CallSession
    from voicetriage.server.app import App

log = logging.getLogger(__name__)

CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_POLICY, CLOSE_INTERNAL, CLOSE_TRY_AGAIN = (
    1000, 1001, 1007, 1008, 1011, 1013)
CLOSE_GRACE_S = 10.0  # how long we wait for a client's close transaction after ours ended


@dataclass(frozen=True)
class TelephonyConfig:
    """The ``[telephony]`` config section.

    ``twilio_path``/``audiohook_path``: websocket paths ("" turns the adapter off).
    ``audiohook_keys``: API key -> base64 client secret ("" = no signature
    required for that key); empty means AudioHook connections are not
    authenticated (a warning is logged). ``audiohook_events``: pipeline event
    kinds sent back to AudioHook clients as ``event`` messages ("final" and
    "partial" as transcript entities, others as ``voicetriage.<kind>``).
    ``audiosocket_port``: TCP port for Asterisk AudioSocket (None: off; 0: any free port).
    """

    twilio_path: str = "/twilio"
    twilio_max_gap_s: float = 60.0
    audiohook_path: str = "/audiohook"
    audiohook_keys: dict = field(default_factory=dict)
    audiohook_max_signature_age_s: float = 30.0
    audiohook_clock_skew_s: float = 5.0
    audiohook_languages: list = field(default_factory=lambda: list(ah.DEFAULT_LANGUAGES))
    audiohook_events: list = field(default_factory=lambda: list(ah.DEFAULT_EVENT_KINDS))
    audiosocket_host: str | None = None
    audiosocket_port: int | None = None
    audiosocket_max_payload: int = DEFAULT_MAX_PAYLOAD


def telephony_config(config: Config, **overrides: Any) -> TelephonyConfig:
    """The typed ``[telephony]`` section (from ``config.extra``) plus CLI overrides."""
    values = dict(config.extra.get("telephony", {}) or {})
    keys = dict(values.get("audiohook_keys", {}) or {})
    extra_key = overrides.pop("audiohook_api_key", None)
    secret = overrides.pop("audiohook_client_secret", None)
    if secret is not None and extra_key is None:
        raise ConfigError("--audiohook-client-secret needs --audiohook-api-key")
    if extra_key is not None:
        keys[extra_key] = secret or ""
    if keys:
        values["audiohook_keys"] = keys
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = _section(TelephonyConfig, values, "telephony")
    for k, v in cfg.audiohook_keys.items():
        if not isinstance(k, str) or not k or not isinstance(v, str):
            raise ConfigError("telephony.audiohook_keys: map each API key to its base64 client secret (or \"\")")
    for name in ("twilio_path", "audiohook_path"):
        path = getattr(cfg, name)
        if path and not path.startswith("/"):
            raise ConfigError(f"telephony.{name}: {path!r} must start with '/'")
    return cfg


def install(app: "App", cfg: TelephonyConfig) -> None:
    """Add the telephony endpoints to ``app`` (before ``app.start()``)."""
    if cfg.twilio_path:
        app.add_route(cfg.twilio_path, _twilio_handler(cfg))
    if cfg.audiohook_path:
        auth = AudioHookAuth(cfg.audiohook_keys, max_age_s=cfg.audiohook_max_signature_age_s,
                             clock_skew_s=cfg.audiohook_clock_skew_s)
        if not auth.enabled:
            # on loopback (tests, the demo) that is fine; anywhere else it is worth a warning
            exposed = app.config.server.host not in ("127.0.0.1", "localhost", "::1")
            log.log(logging.WARNING if exposed else logging.INFO,
                    "AudioHook endpoint %s accepts connections without an API key "
                    "(configure [telephony] audiohook_keys or --audiohook-api-key)", cfg.audiohook_path)
        app.add_route(cfg.audiohook_path, _audiohook_handler(cfg), process_request=_audiohook_gate(auth))
    if cfg.audiosocket_port is not None:
        app.add_tcp_server(cfg.audiosocket_port, _audiosocket_handler(cfg), host=cfg.audiosocket_host)


# --- performing actions ------------------------------------------------------------------

class _Protocol(Protocol):
    def call_started(self) -> list[Action]: ...
    def on_event(self, event: object) -> list[Action]: ...
    def finish(self) -> list[Action]: ...
    def abort(self, message: str, code: str) -> list[Action]: ...


class _Sender:
    """Ordered sender for one websocket (replies and events keep their seq order)."""

    def __init__(self, ws: "ServerConnection | None") -> None:
        self.ws = ws
        self._queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.gone = False
        self._task = asyncio.ensure_future(self._run()) if ws is not None else None

    def put(self, message: str | bytes) -> None:
        if self.ws is None:
            return
        if self.gone:
            log.debug("peer gone, not sent: %.200s", message)
            return
        self._queue.put_nowait(message)

    async def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        assert self.ws is not None
        while (msg := await self._queue.get()) is not None:
            if self.gone:
                continue
            try:
                await self.ws.send(msg)
            except ConnectionClosed:
                self.gone = True

    async def drain(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task


class _Driver:
    """Runs one connection's actions against its call session and its peer."""

    def __init__(self, app: "App", proto: _Protocol, out: _Sender, name: str) -> None:
        self.app = app
        self.proto = proto
        self.out = out
        self.name = name
        self.session: CallSession | None = None
        self.ended: EndCall | None = None
        self._start_error, self._start_code = "", ""

    def _emit(self, event: object) -> None:
        for action in self.proto.on_event(event):
            if isinstance(action, Send):
                self.out.put(action.message)

    async def run(self, actions: list[Action]) -> None:
        """Perform ``actions`` in order; stops after an ``EndCall``."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Send):
                self.out.put(action.message)
            elif isinstance(action, StartCall):
                if self._start(action):
                    queue = self.proto.call_started() + queue  # e.g. AudioHook's 'opened'
                else:
                    queue = self.proto.abort(self._start_error, self._start_code)
            elif isinstance(action, EndCall):
                await self.end(action)
                return
            elif self.session is not None and not self.session.closed:
                queue = self._push(action) + queue

    def _start(self, a: StartCall) -> bool:
        info, languages = a.info, a.track_languages
        for attempt in (1, 2):
            try:
                self.session = self.app.open_call(info, a.spec, self._emit, tracks=a.tracks,
                                                  track_languages=languages)
                return True
            except VoiceTriageError as e:
                if e.code == "unsupported_language" and attempt == 1:
                    # a platform's language setting must not cost us the call: detect instead
                    log.warning("%s call %s: %s; detecting the language instead", self.name, info.call_id, e)
                    info = dataclasses.replace(info, language_hint=None)
                    languages = {k: None for k in languages or {}}
                    continue
                log.warning("%s call %s not started: %s", self.name, info.call_id, e)
                self._start_error, self._start_code = str(e), e.code
                return False
        return False  # pragma: no cover

    def _push(self, a: Action) -> list[Action]:
        s = self.session
        assert s is not None
        try:
            if isinstance(a, PushAudio):
                s.push_audio(a.data, a.track)
                if s.time(a.track) > self.app.config.server.max_call_s:
                    return self.proto.abort(
                        f"call longer than {self.app.config.server.max_call_s:g} s", "call_too_long")
            elif isinstance(a, PushGap):
                s.push_gap(a.seconds, a.track, hold=a.hold)
            elif isinstance(a, EndUtterance):
                s.end_utterance(a.track, a.reason)
            elif isinstance(a, PushDigit):
                s.push_dtmf(a.digit, a.track, time=a.time)
        except VoiceTriageError as e:
            log.warning("%s call %s: %s", self.name, s.info.call_id, e)
        return []

    async def end(self, a: EndCall) -> None:
        if self.ended is not None:
            return
        self.ended = a
        if self.session is not None:
            try:
                await self.app.end_call(self.session, a.reason)
            except Exception:  # noqa: BLE001 - the peer must still get its last replies
                log.exception("%s call %s: closing failed", self.name, self.session.info.call_id)
        for action in self.proto.finish():
            if isinstance(action, Send):
                self.out.put(action.message)

    async def end_if_open(self, reason: str) -> None:
        if self.ended is None and self.session is not None:
            await self.end(EndCall(reason))


async def _receive(app: "App", ws: "ServerConnection", timeout: float | None, draining: bool):
    """A message, None when the server stops, TimeoutError, or ConnectionClosed."""
    if draining:
        return await asyncio.wait_for(ws.recv(), timeout)
    return await app.receive(ws, timeout)


# --- Twilio Media Streams ------------------------------------------------------------------

def _twilio_handler(cfg: TelephonyConfig):
    async def handler(app: "App", ws: "ServerConnection") -> None:
        from websockets.exceptions import ConnectionClosed

        proto = TwilioStream(max_gap_s=cfg.twilio_max_gap_s)
        out = _Sender(None)  # Twilio gets nothing back from a listener
        driver = _Driver(app, proto, out, "twilio")
        idle = app.config.server.idle_timeout_s
        close: tuple[int, str] | None = (CLOSE_NORMAL, "stream stopped")
        try:
            while driver.ended is None:
                try:
                    message = await app.receive(ws, idle)
                except asyncio.TimeoutError:
                    await driver.run(proto.abort(f"no message for {idle:g} s", "idle_timeout"))
                    break
                except ConnectionClosed:
                    await driver.run(proto.connection_lost())
                    close = None
                    break
                if message is None:
                    await driver.run(proto.abort("server shutting down", "server_shutdown"))
                    break
                if isinstance(message, bytes):
                    await driver.run(proto.receive_bytes(message))
                else:
                    await driver.run(proto.receive_text(message))
        finally:
            await driver.end_if_open("server_error")
        ended = driver.ended
        if close is not None and ended is not None and ended.error:
            code = {"server_shutdown": CLOSE_GOING_AWAY, "server_busy": CLOSE_TRY_AGAIN,
                    "server_shutting_down": CLOSE_TRY_AGAIN}.get(ended.code or "", CLOSE_POLICY)
            if ended.code in ("malformed_message",):
                code = CLOSE_INVALID_DATA
            close = (code, _reason(ended.error))
        if close is not None:
            await ws.close(*close)

    return handler


def _reason(text: str) -> str:
    """A websocket close reason: at most 123 bytes of UTF-8."""
    data = text.encode("utf-8")[:123]
    return data.decode("utf-8", "ignore")


# --- Genesys AudioHook ---------------------------------------------------------------------

def _audiohook_gate(auth: AudioHookAuth):
    def process_request(app: "App", connection: "ServerConnection", request: "Request") -> "Response | None":
        from voicetriage.server.app import json_response

        result = auth.check("GET", request.path, request.headers)
        if result.ok:
            return None
        peer = getattr(connection, "remote_address", None)
        log.warning("AudioHook connection from %s refused (%d): %s", peer, result.status, result.reason)
        if result.status == 401:
            # the detail stays in our log: a prober learns nothing about which check failed
            return json_response(401, {"error": "unauthorized", "message": "API key or signature not accepted"})
        return json_response(result.status, {"error": "bad_request", "message": result.reason})

    return process_request


def _audiohook_handler(cfg: TelephonyConfig):
    async def handler(app: "App", ws: "ServerConnection") -> None:
        from websockets.exceptions import ConnectionClosed

        headers = ws.request.headers
        proto = ah.AudioHookSession(
            headers.get("Audiohook-Session-Id", ah.NULL_UUID),
            organization_id=headers.get("Audiohook-Organization-Id"),
            correlation_id=headers.get("Audiohook-Correlation-Id"),
            supported_languages=cfg.audiohook_languages,
            event_kinds=cfg.audiohook_events,
        )
        out = _Sender(ws)
        driver = _Driver(app, proto, out, "audiohook")
        idle = app.config.server.idle_timeout_s
        draining = False  # after our disconnect or the server's stop: wait a little for 'close'
        close_code = CLOSE_NORMAL
        try:
            while proto.state != "closed":
                timeout = CLOSE_GRACE_S if (draining or proto.state == "failed") else idle
                try:
                    message = await _receive(app, ws, timeout, draining)
                except asyncio.TimeoutError:
                    if draining or proto.state == "failed":
                        log.warning("audiohook %s: no close transaction within %g s", proto.id, timeout)
                        break
                    await driver.run(proto.idle_timeout(idle))
                    continue
                except ConnectionClosed:
                    await driver.run(proto.connection_lost())
                    break
                if message is None:
                    await driver.run(proto.abort("server shutting down", "server_shutdown"))
                    draining, close_code = True, CLOSE_GOING_AWAY
                    continue
                if isinstance(message, bytes):
                    await driver.run(proto.receive_bytes(message))
                else:
                    await driver.run(proto.receive_text(message))
        finally:
            await driver.end_if_open("disconnect")
            await out.drain()
        # after 'closed' the client closes the websocket; close our side if it did not
        try:
            await asyncio.wait_for(ws.wait_closed(), CLOSE_GRACE_S if proto.state == "closed" else 0.01)
        except asyncio.TimeoutError:
            pass
        await ws.close(close_code)

    return handler


# --- Asterisk AudioSocket ------------------------------------------------------------------

def _audiosocket_handler(cfg: TelephonyConfig):
    async def handler(app: "App", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        proto = AudioSocketCall(max_payload=cfg.audiosocket_max_payload,
                                peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None)
        driver = _Driver(app, proto, _Sender(None), "audiosocket")
        idle = app.config.server.idle_timeout_s
        try:
            while driver.ended is None and proto.state != "ended":
                try:
                    data = await _read(app, reader, idle)
                except asyncio.TimeoutError:
                    await driver.run(proto.idle_timeout(idle))
                    break
                except (ConnectionError, OSError):
                    data = b""
                if data is None:
                    await driver.run(proto.abort("server shutting down", "server_shutdown"))
                    break
                await driver.run(proto.receive(data) if data else proto.connection_lost())
                if not data:
                    break
        finally:
            await driver.end_if_open("server_error")
        writer.close()

    return handler


async def _read(app: "App", reader: asyncio.StreamReader, timeout: float | None) -> bytes | None:
    """Bytes from Asterisk; b"" at EOF; None when the server stops; TimeoutError when idle."""
    return await app.until_shutdown(reader.read(65536), timeout)


__all__ = ["TelephonyConfig", "telephony_config", "install"]
