"""Telephony media streams on the voicetriage server: the asyncio glue.

The protocol logic lives in sans-I/O modules (:mod:`voicetriage.protocols.twilio`,
:mod:`~voicetriage.protocols.audiohook`, :mod:`~voicetriage.protocols.audiosocket`);
here each gets its route or listener, and
:func:`~voicetriage.server.connection.serve_connection` runs it like every
other connection.
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
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicetriage.core.config import Config, build_section, opt
from voicetriage.core.errors import ConfigError
from voicetriage.protocols import audiohook as ah
from voicetriage.protocols.audiohook_auth import AudioHookAuth
from voicetriage.protocols.audiosocket import DEFAULT_MAX_PAYLOAD, AudioSocketCall
from voicetriage.protocols.twilio import TwilioStream
from voicetriage.server.connection import (
    StreamTransport,
    WebSocketTransport,
    serve_connection,
)

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from voicetriage.server.app import App

log = logging.getLogger(__name__)



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
    # a media timestamp jumping further than this is a corrupt message; a shorter gap
    # is counted and the track's clock jumps (nothing is allocated for it)
    twilio_max_gap_s: float = opt(3600.0, gt=0, max=86400)
    audiohook_path: str = "/audiohook"
    audiohook_keys: dict = field(default_factory=dict)
    audiohook_max_signature_age_s: float = opt(30.0, gt=0)
    audiohook_clock_skew_s: float = opt(5.0, min=0)
    audiohook_languages: list = field(default_factory=lambda: list(ah.DEFAULT_LANGUAGES))
    audiohook_events: list = field(default_factory=lambda: list(ah.DEFAULT_EVENT_KINDS))
    audiosocket_host: str | None = None
    audiosocket_port: int | None = opt(None, min=0, max=65535)
    audiosocket_max_payload: int = opt(DEFAULT_MAX_PAYLOAD, min=320, max=65535)


def telephony_config(config: Config, **overrides: Any) -> TelephonyConfig:
    """The typed ``[telephony]`` section (from ``config.extra``) plus CLI overrides."""
    values = dict(config.extra.get("telephony", {}) or {})
    keys = dict(values.get("audiohook_keys", {}) or {})
    extra_key = overrides.pop("audiohook_api_key", None)
    secret = overrides.pop("audiohook_client_secret", None)
    if secret is not None and extra_key is None:
        raise ConfigError("--audiohook-client-secret-file needs --audiohook-api-key")
    if extra_key is not None:
        keys[extra_key] = secret or ""
    if keys:
        values["audiohook_keys"] = keys
    values.update({k: v for k, v in overrides.items() if v is not None})
    return check_telephony(build_section(TelephonyConfig, values, "telephony", config.source))


def check_telephony(cfg: TelephonyConfig) -> TelephonyConfig:
    """What types and ranges cannot say about ``[telephony]``."""
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
        # Twilio signs its requests (X-Twilio-Signature); a token works too (simulators)
        app.add_route(cfg.twilio_path, _twilio_handler(cfg), auth="twilio")
        if app.auth.enabled and app.auth.twilio_token is None:
            log.warning("Twilio endpoint %s: no TWILIO_AUTH_TOKEN configured, so Twilio's own requests "
                        "are refused (only API tokens are accepted)", cfg.twilio_path)
    if cfg.audiohook_path:
        auth = AudioHookAuth(cfg.audiohook_keys, max_age_s=cfg.audiohook_max_signature_age_s,
                             clock_skew_s=cfg.audiohook_clock_skew_s)
        open_door = not auth.enabled and (not app.auth.enabled or app.config.auth.audiohook_unauthenticated)
        if not auth.enabled:
            log.warning("AudioHook endpoint %s %s (configure [telephony] audiohook_keys or --audiohook-api-key)",
                        cfg.audiohook_path, "accepts connections without an API key" if open_door
                        else "refuses every connection: no API key is configured")
        app.add_route(cfg.audiohook_path, _audiohook_handler(cfg), process_request=_audiohook_gate(auth, open_door),
                      auth="own")
    if cfg.audiosocket_port is not None:
        app.add_tcp_server(cfg.audiosocket_port, _audiosocket_handler(cfg), host=cfg.audiosocket_host)


# --- Twilio Media Streams ------------------------------------------------------------------

def _twilio_handler(cfg: TelephonyConfig):
    async def handler(app: "App", ws: "ServerConnection") -> None:
        proto = TwilioStream(max_gap_s=cfg.twilio_max_gap_s)
        # Twilio gets nothing back from a listener
        await serve_connection(app, proto, WebSocketTransport(ws, replies=False))

    return handler


# --- Genesys AudioHook ---------------------------------------------------------------------

def _audiohook_gate(auth: AudioHookAuth, open_door: bool):
    def process_request(app: "App", connection: "ServerConnection", request: "Request") -> "Response | None":
        from voicetriage.server.app import json_response

        if not auth.enabled and not open_door:
            log.warning("AudioHook connection from %s refused: no API key is configured",
                        getattr(connection, "remote_address", None))
            app.count_error("unauthorized")
            return json_response(401, {"error": "unauthorized", "message": "API key or signature not accepted"})
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
        headers = ws.request.headers
        proto = ah.AudioHookSession(
            headers.get("Audiohook-Session-Id", ah.NULL_UUID),
            organization_id=headers.get("Audiohook-Organization-Id"),
            correlation_id=headers.get("Audiohook-Correlation-Id"),
            supported_languages=cfg.audiohook_languages,
            event_kinds=cfg.audiohook_events,
        )
        await serve_connection(app, proto, WebSocketTransport(ws))

    return handler


# --- Asterisk AudioSocket ------------------------------------------------------------------

def _audiosocket_handler(cfg: TelephonyConfig):
    async def handler(app: "App", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else None
        if not app.auth.peer_allowed(host):
            # AudioSocket carries no credential: only allow-listed PBXs may open calls
            log.warning("AudioSocket connection from %s refused: not in [auth] audiosocket_allow", host)
            app.count_error("unauthorized")
            writer.close()
            return
        proto = AudioSocketCall(max_payload=cfg.audiosocket_max_payload,
                                peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None)
        await serve_connection(app, proto, StreamTransport(reader, writer))

    return handler


__all__ = ["TelephonyConfig", "telephony_config", "check_telephony", "install"]
