"""Telephony options of ``voicetriage serve`` (Twilio, AudioHook, AudioSocket)."""

from __future__ import annotations

import argparse
import os


def add_telephony_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "telephony (also the [telephony] config section; see docs/twilio.md, docs/audiohook.md, docs/audiosocket.md)")
    g.add_argument("--twilio-path", metavar="PATH", help="websocket path for Twilio Media Streams (default /twilio; '' turns it off)")
    g.add_argument("--audiohook-path", metavar="PATH", help="websocket path for Genesys AudioHook (default /audiohook; '' turns it off)")
    g.add_argument("--audiohook-api-key", metavar="KEY", help="accept AudioHook connections with this X-API-KEY (more keys: config file)")
    g.add_argument("--audiohook-client-secret-file", metavar="FILE",
                   help="file holding the integration's base64 client secret (default: "
                        "VOICETRIAGE_AUDIOHOOK_CLIENT_SECRET): connections must carry a valid HMAC signature")
    g.add_argument("--audiosocket-port", type=int, metavar="PORT", help="listen for Asterisk AudioSocket on this TCP port (default: off)")
    g.add_argument("--audiosocket-host", metavar="ADDR", help="address for the AudioSocket port (default: --host)")


def telephony_from_args(args: argparse.Namespace, config):
    """The [telephony] section of ``config`` with the command line on top (validated)."""
    from voicetriage.protocols.audiohook_auth import AudioHookAuth
    from voicetriage.server.telephony import telephony_config

    tc = telephony_config(
        config,
        twilio_path=getattr(args, "twilio_path", None),
        audiohook_path=getattr(args, "audiohook_path", None),
        audiohook_api_key=getattr(args, "audiohook_api_key", None),
        audiohook_client_secret=_client_secret(args),
        audiosocket_port=getattr(args, "audiosocket_port", None),
        audiosocket_host=getattr(args, "audiosocket_host", None),
    )
    AudioHookAuth(tc.audiohook_keys)  # a secret that is not base64 fails here, before the model loads
    return tc


SECRET_ENV = "VOICETRIAGE_AUDIOHOOK_CLIENT_SECRET"


def _client_secret(args: argparse.Namespace) -> str | None:
    """The AudioHook client secret, from a file or the environment (never argv: ``ps`` shows it)."""
    path = getattr(args, "audiohook_client_secret_file", None)
    if path:
        from pathlib import Path

        from voicetriage.core.errors import ConfigError

        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"--audiohook-client-secret-file {path}: {e.strerror or e}") from None
    if getattr(args, "audiohook_api_key", None):
        return os.environ.get(SECRET_ENV) or None
    return None


def describe(tc, host: str, port: int, tcp_ports: list[int]) -> list[str]:
    """Lines for the start-up banner."""
    lines = []
    if tc.twilio_path:
        lines.append(f"  Twilio Media Streams: ws://{host}:{port}{tc.twilio_path}")
    if tc.audiohook_path:
        auth = f"{len(tc.audiohook_keys)} API key(s)" if tc.audiohook_keys else "NO API key configured"
        lines.append(f"  Genesys AudioHook:    ws://{host}:{port}{tc.audiohook_path} ({auth})")
    if tc.audiosocket_port is not None and tcp_ports:
        lines.append(f"  Asterisk AudioSocket: tcp://{tc.audiosocket_host or host}:{tcp_ports[0]}")
    return lines
