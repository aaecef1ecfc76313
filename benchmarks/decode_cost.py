"""What a final costs: every clip of the evaluation kit decoded as one final, per config variant.

    python -m benchmarks.decode_cost --variant "" --variant asr.temperatures=[0.0]

Each clip (cmn, yue, wuu, en) goes to :meth:`AsrEngine.transcribe_batch` as a
final with the dialect probe on, as the first finals of a call get it; the
recogniser's work counters (voicetriage/asr/reuse.py) say how many encoder
passes, greedy decodes, fallback rows and probe decodes that took, and the
CER/WER beside them says what the work bought. Counts and CPU seconds are
host-independent; the sampling seed is fixed so a variant is repeatable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np

from .scoring import error_counts, metric_name

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
LANGS = ("cmn", "yue", "wuu", "en")


def _clips(root: Path, langs=LANGS, limit: int = 0):
    out = []
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line) if line.strip() else None
        if rec and rec.get("language") in langs and not rec.get("synthetic"):
            with wave.open(str(root / rec["file"])) as w:
                if w.getframerate() != 16000 or w.getnchannels() != 1:
                    continue
                audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
            if len(audio) <= 30 * 16000:
                out.append((rec, audio))
    by = {}
    for rec, a in out:
        by.setdefault(rec["language"], []).append((rec, a))
    return [x for lang in langs for x in (by.get(lang, [])[:limit] if limit else by.get(lang, []))]


def _overrides(spec: str) -> dict:
    out = {}
    for kv in filter(None, spec.split(";")):
        k, v = kv.split("=", 1)
        assert k.startswith("asr."), k
        out[k[4:]] = json.loads(v)
    return out


def run(variants: list[str], root: Path = EVAL, limit: int = 0, log=print, seed: int = 0) -> list[dict]:
    import ctranslate2

    from voicetriage.asr.engine import AsrEngine, AsrRequest
    from voicetriage.core.config import load_config

    clips = _clips(root, limit=limit)
    base = AsrEngine.load(load_config(asr={"model": "base", "compute_type": "int8"}).asr)
    results = []
    for spec in variants:
        over = _overrides(spec)
        if "temperatures" in over:
            over["temperatures"] = tuple(over["temperatures"])
        eng = AsrEngine(base.model, base.resolved, dataclasses.replace(base.config, **over))
        ctranslate2.set_random_seed(seed)
        errs: dict[str, list[int]] = {}
        cpu0, t0 = time.process_time(), time.monotonic()
        texts = []
        for rec, audio in clips:
            r = eng.transcribe_batch([AsrRequest(audio, final=True, dialect_probe=True)])[0]
            e, n = error_counts(rec["transcript"], r.text, rec["language"])
            errs.setdefault(rec["language"], [0, 0])
            errs[rec["language"]][0] += e
            errs[rec["language"]][1] += n
            texts.append(r.text)
        cpu = time.process_time() - cpu0
        audio_s = sum(len(a) for _, a in clips) / 16000
        work = eng.counters.snapshot()
        row = {
            "variant": spec or "defaults", "clips": len(clips), "audio_s": round(audio_s, 1),
            "cpu_s": round(cpu, 2), "cpu_s_per_audio_s": round(cpu / audio_s, 4), "wall_s": round(time.monotonic() - t0, 1),
            "errors": {lang: {"metric": metric_name(lang), "value": round(e / max(1, n), 4), "units": n}
                       for lang, (e, n) in errs.items()},
            "work": work, "texts": texts,
        }
        c = work["counts"]
        log(f"{row['variant']}: {len(clips)} clips {audio_s:.0f} s audio, cpu {cpu:.1f} s "
            f"({row['cpu_s_per_audio_s']:.3f} per audio s); per final encode {c['encode'] / len(clips):.2f} "
            f"greedy {c['greedy_final'] / len(clips):.2f} fallback rows {c['fallback'] / len(clips):.2f} "
            f"({work['seconds']['fallback']:.1f} s) probe {c['probe'] / len(clips):.2f} "
            f"({work['seconds']['probe']:.1f} s); "
            + " ".join(f"{lang} {v['metric']} {v['value']:.3f}" for lang, v in row["errors"].items()))
        results.append(row)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.decode_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", default=None,
                   help='asr overrides joined by ";", e.g. "asr.best_of=1;asr.temperatures=[0.0,0.4]" ("": defaults)')
    p.add_argument("--limit", type=int, default=0, help="clips per language (default: all)")
    p.add_argument("--eval", default=str(EVAL))
    p.add_argument("--out", help="JSON results here")
    p.add_argument("--seed", type=int, default=0, help="the fallback's sampling seed (default 0)")
    args = p.parse_args(argv)
    res = run(args.variant or [""], Path(args.eval), args.limit, seed=args.seed)
    if args.out:
        Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
