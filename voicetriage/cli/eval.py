"""``voicetriage eval MANIFEST``: score the caller signals on labelled clips."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from voicetriage.cli.common import (
    add_config_options,
    add_model_options,
    config_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="run labelled clips through the streaming pipeline and score the triage signals",
        description=(
            "Streams every clip of MANIFEST (JSON lines: file, id, language, optional speaker_age, "
            "speech_rate_chars_per_s_est, emotion; the format of ../shared/eval/manifest.jsonl) as one "
            "call through the streaming pipeline with the triage observer, then prints a table per "
            "signal: language/dialect accuracy and confusion, speaking-rate error, age-band accuracy, "
            "distress and human requests, time to the first routing hint, and the routing table (true language "
            "x queue). Calls are streamed in real time unless --speed says otherwise. Some labels of that kit "
            "are corpus estimates, not ground truth."
        ),
    )
    p.add_argument("manifest", metavar="MANIFEST", help="manifest.jsonl (audio paths relative to its folder)")
    p.add_argument("--out", metavar="FILE.json", help="write the full report (per clip, per signal) as JSON")
    p.add_argument("--speed", type=float, default=1.0,
                   help="stream at this multiple of real time (default 1: as calls arrive; faster replays, "
                        "e.g. 4, or 0 for as fast as possible, are labelled with their speed in the report)")
    p.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="stream N clips at a time through the one engine, as concurrent calls (default 1)")
    p.add_argument("--half", choices=("all", "tune", "test"), default="all",
                   help="only the tuning or the test half of the kit: a deterministic split by speaker/source "
                        "(README, Triage signals and evaluation); default all clips")
    p.add_argument("--only", metavar="PREFIX", action="append",
                   help="only clips whose id starts with PREFIX (repeatable)")
    p.add_argument("--limit", type=int, help="at most this many clips")
    p.add_argument("--no-policy", action="store_true", help="run the signal extractors without the routing policy")
    p.add_argument("--dialect-probe", action="store_true",
                   help="experiment: also decode Chinese clips under Cantonese- and Mandarin-style prompts "
                        "and report the log-probability difference")
    add_config_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


async def _main(args: argparse.Namespace) -> int:
    from voicetriage.evaluation import EvalReport, load_manifest, render, run_manifest
    from voicetriage.pipeline.engine import Engine

    if args.concurrency < 1:
        print("voicetriage eval: --concurrency must be at least 1", file=sys.stderr)
        return 2
    if args.speed < 0:
        print("voicetriage eval: --speed must not be negative", file=sys.stderr)
        return 2
    clips = load_manifest(args.manifest)
    if args.half != "all":
        clips = [c for c in clips if c.half == args.half]
    if args.only:
        clips = [c for c in clips if any(c.id.startswith(p) for p in args.only)]
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        print(f"voicetriage eval: no clips of {args.manifest} match", file=sys.stderr)
        return 2
    missing = [str(c.path) for c in clips if not c.path.is_file()]
    if missing:
        print(f"voicetriage eval: {len(missing)} audio file(s) missing, e.g. {missing[0]}", file=sys.stderr)
        return 2
    config = config_from_args(args)
    engine = await asyncio.to_thread(Engine.load, config)
    t0 = time.monotonic()
    try:
        def progress(run) -> None:
            status = f"error: {run.error}" if run.error else f"{len(run.finals)} finals, {len(run.hints)} hints"
            print(f"  {run.clip.id}: {status}", file=sys.stderr, flush=True)

        runs = await run_manifest(
            engine, clips, speed=args.speed, concurrency=args.concurrency, signals_config=config.extra.get("signals"),
            policy=not args.no_policy, probe=args.dialect_probe, progress=progress,
        )
    finally:
        engine.close()
    report = EvalReport(str(args.manifest), engine.model_id, args.speed, runs, time.monotonic() - t0,
                        half=args.half, concurrency=args.concurrency).to_dict()
    print(render(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        print(f"report written to {args.out}", file=sys.stderr)
    return 1 if report["errors"] else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
