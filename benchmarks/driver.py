"""The benchmark driver: start each system, replay calls in real time at rising concurrency.

For every system and level (1, 2, 4, 8, ... concurrent calls) the driver
streams N different stitched calls at once, each in real time, their starts
spread over ``stagger_s`` seconds so utterances do not end in lockstep. A
sampler records the server's CPU time and resident memory meanwhile. The
level fails when the 95th percentile of end-of-speech-to-final reaches
``p95_limit_s`` or a call errors;
the capacity is the largest level that passed (also: at most 10% of the
utterances, or one, may end without a final, and no call may fail), and one failing level is run to
show how latency grows past it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import machine
from .analysis import CallTrace, analyse, summarise
from .callcheck import call_record
from .corpus import Call, smoke_call
from .procstat import Sampler, rss_bytes, thread_cpu_seconds, tree
from .systems import System, SystemError_


@dataclass
class Plan:
    levels: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24)
    chunk_ms: int = 20
    drain_s: float = 6.0
    stagger_s: float = 3.0
    p95_limit_s: float = 1.5
    call_timeout_s: float = 60.0
    stop_after_fail: bool = True
    warmup: bool = True
    keep_text_levels: tuple[int, ...] = (1,)  # per-utterance texts kept in the JSON for these levels


@dataclass
class LevelResult:
    calls: int
    summary: dict
    usage: dict
    errors: list[str]
    utterances: list[dict]
    passed: bool
    wall_s: float
    load_average: list[float] = field(default_factory=list)
    calls_text: list[dict] = field(default_factory=list)  # whole-call transcripts (keep_text levels)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _usage_dict(u, audio_s: float, idle_rss: int) -> dict:
    return {
        "wall_s": round(u.wall_s, 2),
        "cpu_s": round(u.cpu_s, 2),
        "cpu_cores": round(u.cpu_cores, 3),
        "cpu_s_per_audio_s": round(u.cpu_s / audio_s, 4) if audio_s else None,
        "machine_busy": round(u.machine_busy, 3),
        "audio_s": round(audio_s, 2),
        "idle_rss_mb": round(idle_rss / 2**20, 1),
        "peak_rss_mb": round(u.peak_rss / 2**20, 1),
        "mean_rss_mb": round(u.mean_rss / 2**20, 1),
    }


def histogram_quantile(before: list | None, after: list | None, q: float) -> float | None:
    """Quantile ``q`` of the observations between two readings of a cumulative
    histogram [(upper bound, count)], interpolated inside its bucket (Prometheus'
    histogram_quantile)."""
    if not after:
        return None
    prev = dict(before or [])
    buckets = [(le, c - prev.get(le, 0.0)) for le, c in after]
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank, lo, lo_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return lo
            return lo + (le - lo) * (rank - lo_c) / max(c - lo_c, 1e-12)
        lo, lo_c = le, c
    return lo


async def run_calls(system: System, calls: list[Call], plan: Plan) -> list[CallTrace]:
    chunk = int(16000 * plan.chunk_ms / 1000)
    n = len(calls)

    async def one(k: int, call: Call) -> CallTrace:
        await asyncio.sleep(plan.stagger_s * k / n if n > 1 else 0.0)
        return await system.run_call(call, chunk_samples=chunk, drain_s=plan.drain_s, timeout=plan.call_timeout_s)

    return list(await asyncio.gather(*(one(k, c) for k, c in enumerate(calls))))


MAX_MISSING = 0.10  # share of utterances that may end without any final at a passing level


def passed(summary: dict, errors: list[str], limit: float) -> bool:
    """p95 of end-of-speech-to-final under ``limit``, no call errors, and at most 10% of the
    utterances (or one, in a small sample: a dialect clip the model hears as noise) without a final."""
    p95 = summary["final_s"]["p95"]
    allowed = max(1, int(MAX_MISSING * summary["utterances"]))
    return not errors and p95 is not None and p95 < limit and summary["final_s"]["missing"] <= allowed


async def run_level(system: System, calls: list[Call], plan: Plan, log=print) -> LevelResult:
    n = len(calls)
    idle = rss_bytes(tree(system.pid))
    load = machine.load_average()
    before = await system.stats()
    lag0 = await system.loop_lag()
    loop0 = thread_cpu_seconds(system.pid)
    t0 = time.monotonic()
    with Sampler(system.pid) as sampler:
        traces = await run_calls(system, calls, plan)
    usage = sampler.usage
    after = await system.stats()
    lag1 = await system.loop_lag()
    loop1 = thread_cpu_seconds(system.pid)
    results = [r for t in traces for r in analyse(t)]
    errors = [f"{t.call.id}: {t.error}" for t in traces if t.error]
    summary = summarise(results)
    audio_s = sum(len(t.send_times) for t in traces) * plan.chunk_ms / 1000
    keep_text = n in plan.keep_text_levels
    utts = []
    for r in results:
        d = r.as_dict()
        if not keep_text:
            d.pop("reference")
            d.pop("hypothesis")
        utts.append(d)
    calls_text = [call_record(t) for t in traces] if keep_text else []
    ok = passed(summary, errors, plan.p95_limit_s)
    usage_d = _usage_dict(usage, audio_s, idle)
    if "inference_busy_s" in after and "inference_busy_s" in before and usage.wall_s > 0:
        # share of the level's wall time the inference thread spent decoding
        usage_d["inference_busy"] = round((after["inference_busy_s"] - before["inference_busy_s"]) / usage.wall_s, 3)
    work = _work_delta(before.get("asr_work"), after.get("asr_work"))
    if work:
        usage_d["asr_work"] = work
    if lag1:
        # the server's event loop: how late its timer probe fired, and the CPU of its thread
        for q in (50, 99):
            v = histogram_quantile(lag0, lag1, q / 100)
            usage_d[f"loop_lag_p{q}_ms"] = round(1000 * v, 2) if v is not None else None
        usage_d["loop_lag_probes"] = int(lag1[-1][1] - dict(lag0 or []).get(float("inf"), 0))
    if loop0 is not None and loop1 is not None and audio_s:
        usage_d["loop_cpu_ms_per_audio_s"] = round(1000 * (loop1 - loop0) / audio_s, 2)
    res = LevelResult(n, summary, usage_d, errors, utts, ok, round(time.monotonic() - t0, 1), load, calls_text)
    f, p = summary["final_s"], summary["first_partial_s"]
    log(f"  {system.label}: {n:>2} calls  final p50 {_fmt(f['p50'])} p95 {_fmt(f['p95'])} "
        f"(missing {f['missing']})  first text p50 {_fmt(p['p50'])}  hint p50 {_fmt(summary['hint_s']['p50'])}  "
        f"cpu {res.usage['cpu_cores']:.2f} cores {res.usage.get('cpu_s_per_audio_s') or 0:.3f} cpu-s/audio-s  "
        f"{_work_line(res.usage.get('asr_work'))}loop {res.usage.get('loop_cpu_ms_per_audio_s', '-')} ms/s "
        f"lag p99 {res.usage.get('loop_lag_p99_ms', '-')} ms  infer busy {res.usage.get('inference_busy', '-')}  peak {res.usage['peak_rss_mb']:.0f} MB  "
        f"load {load[0] if load else '?'}  {'ok' if ok else 'OVER'}{'  errors: ' + errors[0] if errors else ''}")
    return res


def _work_delta(before: dict | None, after: dict | None) -> dict:
    """The recogniser's work during a level (/health asr_work, after minus before):
    counts and seconds per kind, and per final."""
    if not after or not after.get("counts"):
        return {}
    b = before or {}
    out = {}
    for part in ("counts", "seconds"):
        out[part] = {k: round(v - b.get(part, {}).get(k, 0), 4) for k, v in after[part].items()}
    finals = out["counts"].get("finals", 0)
    if finals:
        out["per_final"] = {k: round(v / finals, 3) for k, v in out["counts"].items() if k != "finals" and v}
        out["seconds_per_final"] = {k: round(v / finals, 4) for k, v in out["seconds"].items() if v}
    return out


def _work_line(w: dict | None) -> str:
    if not w or "per_final" not in w:
        return ""
    pf = w["per_final"]
    keys = ("encode", "encode_reused", "partials", "greedy_final", "greedy_reused", "fallback", "probe",
            "speculated", "speculation_used", "loop_finals", "fallback_loop", "loop_guard", "probe_beside")
    return "per final " + " ".join(f"{k} {pf.get(k, 0):g}" for k in keys) + "  "


def _fmt(v) -> str:
    if v is None:
        return "  -  "
    if math.isinf(v):
        return " inf "
    return f"{v:5.2f}"


def memory_per_call(levels: list[LevelResult]) -> float | None:
    """Slope of peak RSS over concurrent calls (MB per added call), least squares."""
    pts = [(lv.calls, lv.usage["peak_rss_mb"]) for lv in levels]
    if len(pts) < 2:
        return None
    x = np.array([p[0] for p in pts], float)
    y = np.array([p[1] for p in pts], float)
    if np.ptp(x) == 0:
        return None
    return round(float(np.polyfit(x, y, 1)[0]), 2)


async def run_system(system: System, calls_for: callable, plan: Plan, log=print) -> dict:
    """All levels for one system. ``calls_for(n)`` gives n different calls."""
    out: dict = {**system.describe(), "levels": [], "capacity": 0, "status": "ok"}
    try:
        log(f"[{system.label}] starting server ...")
        await system.start()
        out["start_s"] = round(system.started_s, 1)
        out["command"] = " ".join(system.command())
        if plan.warmup:
            await run_calls(system, [smoke_call()], Plan(drain_s=2.0, stagger_s=0, call_timeout_s=60))
        for n in plan.levels:
            lv = await run_level(system, calls_for(n), plan, log)
            out["levels"].append(lv.as_dict())
            if lv.passed:
                out["capacity"] = n
            elif plan.stop_after_fail:
                break
            if system.server and not system.server.alive():
                out["status"] = f"server died: {system.server.log_tail(5)}"
                break
        out["memory_per_call_mb"] = memory_per_call([LevelResult(**lv) for lv in out["levels"]])
    except SystemError_ as e:
        out["status"] = f"could not run: {e}"
        log(f"[{system.label}] {out['status']}")
    finally:
        await system.stop()
    return out


__all__ = ["histogram_quantile", "Plan", "LevelResult", "run_level", "run_system", "run_calls", "memory_per_call", "passed"]
