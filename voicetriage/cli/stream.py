"""``voicetriage stream``: play an audio file into a server and print the events."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

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


def run(args: argparse.Namespace) -> int:
    try:
        events = asyncio.run(stream_file(args.url, args.file, options_from_args(args), make_printer(args.json)))
    except OSError as e:
        print(f"voicetriage stream: cannot connect to {args.url}: {e}", file=sys.stderr)
        return 1
    return exit_code(events)
