"""The ``voicetriage`` command line.

Each subcommand lives in its own module, which exposes
``register(subparsers) -> None``; that function adds its parser and sets
``func`` (called with the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from voicetriage import __version__
from voicetriage.core.errors import VoiceTriageError
from voicetriage.core.logsafe import install_log_context, install_redaction

# modules of this package that provide subcommands, in --help order
COMMANDS = [
    "demo",
    "serve",
    "relay",
    "stream",
    "transcribe",
    "models",
    "profiles",
    "eval",
    "triage_replay",
    "eval_diarization",
    "setup_diarize",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicetriage",
        description=(
            "Real-time speech triage for phone lines: transcribe calls as they stream in "
            "and emit routing hints so elderly, dialect-speaking and distressed callers "
            "reach a human fast."
        ),
    )
    parser.add_argument("--version", action="version", version=f"voicetriage {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--log-json", action="store_true",
                        help="log one JSON object per line (ts, level, logger, call_id, message)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s [%(call_id)s]: %(message)s")
    install_log_context(json_lines=args.log_json)  # each record names its call
    install_redaction()  # no credential reaches a log, at any level
    try:
        return int(args.func(args) or 0)
    except VoiceTriageError as e:
        print(f"voicetriage {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

