"""What a final costs: every clip of the evaluation kit decoded as one final, per config variant.

    python -m benchmarks.decode_cost --variant "" --variant asr.temperatures=[0.0]

Each clip (cmn, yue, wuu, en) goes to :meth:`AsrEngine.transcribe_batch` as a
final with the dialect probe on, as the first finals of a call get it; the
recogniser's work counters (voicetriage/asr/reuse.py) say how many encoder
passes, greedy decodes, fallback rows and probe decodes that took, and the
CER/WER beside them says what the work bought. Counts and CPU seconds are
host-independent; the sampling seed is fixed so a variant is repeatable.

``--segmented`` cuts each clip into the utterances the server's VAD and
segmenter make of it and decodes each as a final, in order, the first
``dialect_probe_finals`` of them probed: the short finals of a streamed call,
where greedy loops happen (the report counts them, the fallback rows and
seconds spent on them, and the finals still looping after the fallback).
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


def _utterances(clips, stream_config) -> list[list[np.ndarray]]:
    """Each clip cut into utterances by the server's own VAD and segmenter, fed in 20 ms
    frames as a call's audio arrives (what the streaming path's finals decode)."""
    from voicetriage.audio.segmenter import Segmenter, SpeechEnded
    from voicetriage.audio.vad import VadModel

    vad = VadModel()
    out = []
    for _, audio in clips:
        seg = Segmenter(stream_config, vad.stream_for(stream_config).feed)
        events = []
        for off in range(0, len(audio), 320):
            events += seg.feed(audio[off : off + 320])
        events += seg.flush()
        out.append([e.audio for e in events if isinstance(e, SpeechEnded) and len(e.audio)])
    return out


def run(variants: list[str], root: Path = EVAL, limit: int = 0, log=print, seed: int = 0,
        segmented: bool = False) -> list[dict]:
    import ctranslate2

    from voicetriage.asr.engine import AsrEngine, AsrRequest
    from voicetriage.core.config import load_config

    clips = _clips(root, limit=limit)
    config = load_config(asr={"model": "base", "compute_type": "int8"})
    base = AsrEngine.load(config.asr)
    # the whole clip as one final, or the utterances the streaming segmenter cuts it into,
    # decoded as finals in order (the first dialect_probe_finals zh finals probed, as a call's are)
    pieces = _utterances(clips, config.stream) if segmented else [[a] for _, a in clips]
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
        for (rec, _), utts in zip(clips, pieces):
            parts = [eng.transcribe_batch([AsrRequest(u, final=True, dialect_probe=k < eng.config.dialect_probe_finals
                                                      or not segmented)])[0].text for k, u in enumerate(utts)]
            text = ("" if rec["language"] != "en" else " ").join(parts)
            e, n = error_counts(rec["transcript"], text, rec["language"])
            errs.setdefault(rec["language"], [0, 0])
            errs[rec["language"]][0] += e
            errs[rec["language"]][1] += n
            texts.append(text)
        cpu = time.process_time() - cpu0
        audio_s = sum(len(a) for _, a in clips) / 16000
        work = eng.counters.snapshot()
        row = {
            "variant": spec or "defaults", "clips": len(clips), "audio_s": round(audio_s, 1),
            "cpu_s": round(cpu, 2), "cpu_s_per_audio_s": round(cpu / audio_s, 4), "wall_s": round(time.monotonic() - t0, 1),
            "errors": {lang: {"metric": metric_name(lang), "value": round(e / max(1, n), 4), "units": n}
                       for lang, (e, n) in errs.items()},
            "work": work, "texts": texts, "segmented": segmented,
        }
        c = work["counts"]
        finals = max(1, c["finals"])
        row["loops"] = {"finals": c["finals"], "greedy_looped": c.get("loop_finals", 0),
                        "guarded": c.get("loop_guard", 0),
                        "guarded_rate": round(c.get("loop_guard", 0) / finals, 4),
                        "fallback_loop_rows": c.get("fallback_loop", 0),
                        "fallback_loop_s": work["seconds"].get("fallback_loop", 0.0)}
        log(f"{row['variant']}: {len(clips)} clips {audio_s:.0f} s audio, {c['finals']} finals, cpu {cpu:.1f} s "
            f"({row['cpu_s_per_audio_s']:.3f} per audio s); per final encode {c['encode'] / finals:.2f} "
            f"greedy {c['greedy_final'] / finals:.2f} fallback rows {c['fallback'] / finals:.2f} "
            f"({work['seconds']['fallback']:.1f} s) probe {c['probe'] / finals:.2f} "
            f"({work['seconds']['probe']:.1f} s); greedy loops {row['loops']['greedy_looped']} "
            f"(fallback rows {row['loops']['fallback_loop_rows']}, {row['loops']['fallback_loop_s']:.1f} s), "
            f"still looping after it {row['loops']['guarded']} ({100 * row['loops']['guarded_rate']:.1f}%); "
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
    p.add_argument("--segmented", action="store_true",
                   help="cut each clip into utterances with the server's VAD and segmenter and decode "
                        "each as a final (as a streamed call's finals), instead of one final per clip")
    args = p.parse_args(argv)
    res = run(args.variant or [""], Path(args.eval), args.limit, seed=args.seed, segmented=args.segmented)
    if args.out:
        Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
