"""``voicetriage stream``: play an audio file into a server and print the events."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.parse

from voicetriage.cli.common import TOKEN_ENV
from voicetriage.client import StreamOptions, format_event, stream_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="stream an audio file into a server and print events",
        description=(
            "Play FILE into a voicetriage server in real time (or faster) over the native "
            "protocol and print the events it sends back: partial, final, hint, error, summary."
        ),
    )
    p.add_argument("file", help="audio file (WAV, FLAC, MP3, OGG, ...)")
    p.add_argument("--url", default="ws://127.0.0.1:8765/",
                   help="server URL, ws:// or wss:// (default ws://127.0.0.1:8765/); the API token is read "
                        "from VOICETRIAGE_API_TOKEN")
    p.add_argument("--cafile", metavar="PEM", help="trust this CA bundle for a wss:// server's certificate")
    add_client_options(p)
    p.set_defaults(func=run)


def add_client_options(p: argparse.ArgumentParser, language: bool = True) -> None:
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time (default), 4 = four times faster, 0 = as fast as possible")
    p.add_argument("--json", action="store_true", help="print one JSON object per line (each with its 'type')")
    p.add_argument("--encoding", default="pcm16", choices=["pcm16", "mulaw", "alaw"], help="wire encoding (default pcm16)")
    p.add_argument("--rate", type=int, help="wire sample rate: 8000, 16000, 24000 or 48000 (default: the file's, or 8000 for G.711)")
    p.add_argument("--stereo", action="store_true", help="send both channels of a stereo file (channel 0 = caller, 1 = agent)")
    p.add_argument("--call-id", help="call id (default: the file name)")
    p.add_argument("--caller-id", help="caller number, for profile lookups")
    if language:
        p.add_argument("--language", help="language hint (e.g. zh, yue-HK, en-US)")


def options_from_args(args: argparse.Namespace) -> StreamOptions:
    return StreamOptions(
        encoding=args.encoding,
        sample_rate=args.rate,
        channels=2 if args.stereo else 1,
        speed=args.speed,
        call_id=args.call_id,
        caller_id=args.caller_id,
        language=getattr(args, "language", None),
        token=os.environ.get(TOKEN_ENV) or None,
        cafile=getattr(args, "cafile", None),
    )


def make_printer(as_json: bool):
    tty = sys.stdout.isatty()
    state = {"partial": False}

    def show(ev: dict) -> None:
        if as_json:
            ev = {k: v for k, v in ev.items() if k != "_t"}
            print(json.dumps(ev, ensure_ascii=False), flush=True)
            return
        line = format_event(ev)
        if line is None:
            return
        if tty and ev.get("type") == "partial":
            sys.stdout.write("\r\033[K" + line)
            sys.stdout.flush()
            state["partial"] = True
            return
        if tty and state["partial"]:
            sys.stdout.write("\r\033[K")
            state["partial"] = False
        print(line, flush=True)

    return show


def exit_code(events: list[dict]) -> int:
    if not events or events[0].get("type") != "started":
        return 1
    return 0 if any(e.get("type") == "summary" for e in events) else 1


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a native-protocol server URL (None: it can)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
        fix = f" (did you mean {urllib.parse.urlunsplit((scheme, *parts[1:]))}?)" if scheme else ""
        return f"--url must start with ws:// or wss://, got {url!r}{fix}"
    if not parts.hostname:
        return f"--url {url!r} has no host"
    path = parts.path.rstrip("/")
    if path.endswith(("/twilio", "/audiohook", "/events", "/dashboard")):
        return (f"--url {url!r} is the server's {path.rsplit('/', 1)[1]} endpoint; voicetriage stream speaks "
                "the native protocol: use the server's root URL, e.g. ws://HOST:PORT/")
    return None


def stream_error(e: BaseException, url: str) -> str:
    """A one-line explanation of a failed stream."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

    if isinstance(e, InvalidStatus):
        code = e.response.status_code
        if code == 401:
            return (f"the server at {url} refused the connection (401): set {TOKEN_ENV} to a token it accepts")
        if code == 503:
            return f"the server at {url} is busy or stopping (503); try again later"
        return f"the server at {url} refused the connection ({code})"
    if isinstance(e, InvalidURI):
        return f"--url {url!r} is not a websocket URL"
    if isinstance(e, ConnectionClosed):
        rcvd = e.rcvd
        if rcvd is None:
            return f"the connection to {url} was lost before the call ended"
        return f"the server closed the call before it ended ({rcvd.code} {rcvd.reason or 'no reason given'})"
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer from {url} in time"
    return f"cannot connect to {url}: {e}"


def run(args: argparse.Namespace) -> int:
    from websockets.exceptions import WebSocketException

    problem = check_url(args.url)
    if problem:
        print(f"voicetriage stream: {problem}", file=sys.stderr)
        return 2
    try:
        events = asyncio.run(stream_file(args.url, args.file, options_from_args(args), make_printer(args.json)))
    except (OSError, WebSocketException, asyncio.TimeoutError) as e:
        print(f"voicetriage stream: {stream_error(e, args.url)}", file=sys.stderr)
        return 1
    summary = next((e for e in events if e.get("type") == "summary"), None)
    if summary is not None and summary.get("reason") != "stop":
        # the server ended the call before the whole file was sent (shutdown, a limit)
        print(f"voicetriage stream: the server ended the call early ({summary.get('reason')}); "
              "what it sent until then is above", file=sys.stderr)
        return 1
    return exit_code(events)
