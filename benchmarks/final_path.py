"""A final's critical path after its pause partial, per config variant, at one call.

    python -m benchmarks.final_path --variant "asr.speculate=false;asr.split_final_work=false" \\
        --variant "asr.speculate=false" --variant ""

Each real clip (yue, wuu: the finals that need the fallback and the probe) goes to
:meth:`AsrEngine.transcribe_batch` as the session sends it: the pause partial
(200 ms into the pause, cached; speculating when ``asr.speculate``), then the final
of the same audio (probe on). The final waits while its pause partial runs and is
asked 300 ms after it (end_silence_ms 500 - pause_partial_ms 200), so its
end-of-speech-to-final is about 0.2 + max(partial s, 0.3) + final s; both are
timed, variants interleaved clip by clip so they share the host's load. The work
counters say how many rows each took; a host's load moves the seconds, not the counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .decode_cost import EVAL, _clips, _overrides


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def run(variants: list[str], root: Path = EVAL, limit: int = 0, log=print) -> list[dict]:
    import ctranslate2

    from voicetriage.asr.engine import AsrEngine, AsrRequest
    from voicetriage.core.config import load_config

    clips = _clips(root, langs=("yue", "wuu"), limit=limit)
    base = AsrEngine.load(load_config(asr={"model": "base", "compute_type": "int8"}).asr)
    engines = [AsrEngine(base.model, base.resolved, dataclasses.replace(base.config, **_overrides(v)))
               for v in variants]
    ctranslate2.set_random_seed(0)
    rows = {v: {"partial_s": [], "final_s": [], "path_s": []} for v in variants}
    for _rec, audio in clips:
        for v, eng in zip(variants, engines):
            spec = eng.config.speculate
            t0 = time.perf_counter()
            eng.transcribe_batch([AsrRequest(audio, cache=True, speculate=spec, dialect_probe=spec)])
            t1 = time.perf_counter()
            eng.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])
            t2 = time.perf_counter()
            r = rows[v]
            r["partial_s"].append(t1 - t0)
            r["final_s"].append(t2 - t1)
            r["path_s"].append(0.2 + max(t1 - t0, 0.3) + (t2 - t1))
    out = []
    for v, eng in zip(variants, engines):
        r, c = rows[v], eng.counters.snapshot()
        row = {"variant": v or "defaults", "clips": len(clips), "work": c,
               **{f"{k}_mean": round(sum(x) / len(x), 3) for k, x in r.items()},
               **{f"{k}_p95": round(_pct(x, 0.95), 3) for k, x in r.items()}}
        n = c["counts"]
        log(f"{row['variant']}: {len(clips)} clips; partial mean {row['partial_s_mean']:.2f} s, final mean "
            f"{row['final_s_mean']:.2f} p95 {row['final_s_p95']:.2f} s; end-of-speech-to-final est. mean "
            f"{row['path_s_mean']:.2f} p95 {row['path_s_p95']:.2f} s; rows per clip: fallback "
            f"{n['fallback'] / len(clips):.2f} probe {n['probe'] / len(clips):.2f} speculated "
            f"{n['speculated'] / len(clips):.2f} used {n['speculation_used'] / len(clips):.2f}")
        out.append(row)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.final_path", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", default=None, help='asr overrides joined by ";" ("": defaults)')
    p.add_argument("--limit", type=int, default=0, help="clips per language (default: all)")
    p.add_argument("--eval", default=str(EVAL))
    p.add_argument("--out", help="JSON results here")
    args = p.parse_args(argv)
    res = run(args.variant or [""], Path(args.eval), args.limit)
    if args.out:
        Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
