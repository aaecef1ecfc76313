"""``voicetriage triage FILES...``: replay recordings through the live triage.

Exit status: 0 every file replayed; 1 some file failed (named on stderr);
2 usage, policy, model or missing-extra error before any file is replayed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from voicetriage.cli.common import (
    add_config_options,
    add_model_options,
    config_from_args,
)
from voicetriage.core.errors import ConfigError, VoiceTriageError

_EPILOG = """\
examples:
  voicetriage triage calls/*.wav                                  # mono: diarize, replay the caller
  voicetriage triage stereo/*.wav --channels split --caller-channel 0
  voicetriage triage calls/ --policy new.toml --compare voicetriage/policies/default.toml
  voicetriage triage calls/ --out hints.jsonl

The caller's side is streamed as fast as possible (--speed 0) through the same
signal extractors and routing policy as `voicetriage serve`; hint times are
call times. Mono recordings need the optional extra 'diarize'.
"""


def register(subparsers) -> None:
    from voicetriage.cli.transcribe import _speakers
    from voicetriage.diarize.roles import RULES

    p = subparsers.add_parser(
        "triage",
        help="replay recorded calls (the caller's side) through the routing policy and list the hints",
        description=(
            "For each recording, find the caller's side (a stereo channel, or the speaker diarization "
            "names as caller in a mono recording), silence the other speakers, and stream it through an "
            "in-process engine with the server's triage (signals and routing policy). Prints the hints "
            "that would have fired, with their call times, and the queue each call ends in; with "
            "--compare, the calls whose queue changes between the two policies."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="recordings and/or folders")
    p.add_argument("--policy", metavar="B.toml", help="routing policy (default: the one shipped with voicetriage)")
    p.add_argument("--compare", metavar="A.toml",
                   help="also replay under this policy and list calls whose queue differs (A -> B)")
    p.add_argument("--out", type=Path, metavar="FILE.jsonl", help="write every hint and per-call summary as JSON lines")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    p.add_argument("--channels", choices=("mono", "split"), default="mono",
                   help="mono: diarize to find the caller (default); split: stereo, one speaker per channel")
    p.add_argument("--caller-channel", type=int, choices=(0, 1), default=0,
                   help="with --channels split: the caller's channel (default 0)")
    p.add_argument("--speakers", type=_speakers, default=2, metavar="N|auto",
                   help="speakers per mono recording (default 2)")
    p.add_argument("--roles", choices=RULES[:-1], default="greeting",
                   help="which speaker is the agent (see transcribe --help; default greeting)")
    p.add_argument("--diarization-pipeline", type=Path, metavar="DIR", help="own pyannote pipeline folder")
    p.add_argument("--speed", type=float, default=0.0,
                   help="stream at this multiple of real time (default 0: as fast as possible)")
    add_config_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


def _factories(args: argparse.Namespace, config):
    from voicetriage.triage.observer import TriageFactory
    from voicetriage.triage.policy import load_policy

    signals_config = config.extra.get("signals")
    out = [(args.policy or "default", TriageFactory(load_policy(args.policy), signals_config=signals_config,
                                                    emit_signals=False))]
    if args.compare:
        out.append((args.compare, TriageFactory(load_policy(args.compare), signals_config=signals_config,
                                                emit_signals=False)))
    return out


def _print_replay(r) -> None:
    print(f"{r.file}  ({r.duration_s:.1f} s; caller: {r.caller_source}"
          + (f", {r.caller_speech_s:.1f} s of speech" if r.caller_speech_s is not None else "") + ")")
    for run in r.runs:
        label = f"  [{run.name}]" if len(r.runs) > 1 else " "
        if not run.hints:
            print(f"{label} no hint fired")
        for h in run.hints:
            print(f"{label} {h['time']:7.2f} s  {h['queue']:<14} {h['action']:<10} conf {h['confidence']:.2f}  "
                  f"({h['reason']}; rules: {', '.join(h['rules'])})")
        print(f"{label} ends in queue: {run.queue or '(none)'}")


async def _main(args: argparse.Namespace) -> int:
    from voicetriage.diarize.replay import (
        ReplayOptions,
        as_records,
        changes,
        replay_file,
    )
    from voicetriage.offline.batch import discover
    from voicetriage.pipeline.engine import Engine

    config = config_from_args(args)
    found = discover(args.inputs)
    if not found.files:
        raise ConfigError("no audio files found in " + ", ".join(map(str, args.inputs)))
    factories = _factories(args, config)  # bad policy files fail before models load
    diarizer = None
    if args.channels == "mono":
        from voicetriage.diarize.pipeline import DiarizationOptions, Diarizer

        diarizer = await asyncio.to_thread(Diarizer.load, DiarizationOptions(
            speakers=args.speakers, pipeline_dir=args.diarization_pipeline, cache_dir=config.asr.model_cache_dir))
    engine = await asyncio.to_thread(Engine.load, config)
    options = ReplayOptions(args.channels, args.caller_channel, args.roles, args.speed, config.asr.language)
    replays, failed = [], 0
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    try:
        for f in found.files:
            try:
                r = await replay_file(f.path, engine, factories, options, diarizer)
            except VoiceTriageError as e:
                print(f"voicetriage triage: error: {f.path}: {e}", file=sys.stderr)
                failed += 1
                continue
            replays.append(r)
            for rec in as_records(r):
                line = json.dumps(rec, ensure_ascii=False)
                if out:
                    out.write(line + "\n")
                if args.json:
                    print(line)
            if not args.json:
                _print_replay(r)
    finally:
        engine.close()
        if out:
            out.close()
    for name, fac in factories:
        fac.close()
    if args.compare:
        moved = changes(replays)
        if args.json:
            for m in moved:
                print(json.dumps({"type": "change", **m}, ensure_ascii=False))
        else:
            print(f"\n{len(moved)} of {len(replays)} call(s) change queue ({args.compare} -> {args.policy or 'default'}):")
            for m in moved:
                print(f"  {m['file']}: {m['queue_before'] or '(none)'} -> {m['queue_after'] or '(none)'}")
    speed = "as fast as possible" if args.speed == 0 else f"{args.speed:g}x real time"
    print(f"replayed {len(replays)} call(s) ({speed}), {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
