"""Stage benchmark: the recogniser alone, per window setting, on every real eval clip.

The streaming latency of a final is dominated by one decode of the utterance;
this measures that decode (``AsrEngine.transcribe_batch`` on one clip, as the
worker runs it for a final) for several ``min_window_s`` values in one
process, interleaved clip by clip so machine load hits every variant alike.
It reports time per decode, error rate and how often the decoder loops
(repeats itself until the output cap: compression ratio > 2.4), which is what
makes some finals several times slower than others.
"""

from __future__ import annotations

import dataclasses
import time

from .corpus import eval_dir, load_clips, read_wav, trim_silence
from .scoring import error_counts, metric_name, percentile

LOOP_COMPRESSION = 2.4  # Whisper's own threshold for a repetitive (failed) decode


def run_windows(model: str = "base", windows=(5.0, 10.0, 15.0, 30.0), languages=("yue", "wuu", "cmn", "en"),
                root=None, repeat: int = 1, log=print) -> dict:
    from voicetriage.asr.engine import AsrEngine, AsrRequest
    from voicetriage.core.config import AsrConfig

    base = AsrConfig(model=model)
    engines = {}
    first = AsrEngine.load(base)
    for w in windows:
        cfg = dataclasses.replace(base, min_window_s=w, window_step_s=min(base.window_step_s, w))
        engines[w] = AsrEngine(first.model, first.resolved, cfg)
    clips = load_clips(eval_dir(root), tuple(languages), max_s=15.5, min_s=0.5, exclude_requests=False)
    rows = {w: [] for w in windows}
    engines[windows[0]].transcribe_batch([AsrRequest(read_wav(clips[0].path).astype("float32") / 32768)])  # warm
    for c in clips:
        audio = trim_silence(read_wav(c.path)).astype("float32") / 32768
        for _ in range(repeat):
            for w, eng in engines.items():
                t0 = time.perf_counter()
                (res,) = eng.transcribe_batch([AsrRequest(audio)])
                dt = time.perf_counter() - t0
                e, n = error_counts(c.transcript, res.text, c.language)
                rows[w].append({"clip": c.id, "language": c.language, "audio_s": round(len(audio) / 16000, 2),
                                "window_s": eng.window_seconds(len(audio) / 16000), "decode_s": round(dt, 3),
                                "tokens": res.tokens, "loop": res.compression_ratio > LOOP_COMPRESSION,
                                "metric": metric_name(c.language), "edits": e, "units": n})
        log(f"  {c.id:36s} " + "  ".join(f"{w:>4g}s: {rows[w][-1]['decode_s']:.2f}s"
                                           f"{'*' if rows[w][-1]['loop'] else ' '}" for w in windows))
    summary = {}
    for w, rs in rows.items():
        cjk = [r for r in rs if r["metric"] == "cer"]
        en = [r for r in rs if r["metric"] == "wer"]
        summary[str(w)] = {
            "decode_s_p50": round(percentile([r["decode_s"] for r in rs], 50), 3),
            "decode_s_p95": round(percentile([r["decode_s"] for r in rs], 95), 3),
            "decode_s_total": round(sum(r["decode_s"] for r in rs), 2),
            "loops": sum(r["loop"] for r in rs),
            "cer": round(sum(r["edits"] for r in cjk) / max(1, sum(r["units"] for r in cjk)), 4) if cjk else None,
            "wer": round(sum(r["edits"] for r in en) / max(1, sum(r["units"] for r in en)), 4) if en else None,
            "clips": len(rs),
        }
    return {"model": model, "windows": list(windows), "summary": summary, "rows": rows}


def markdown(res: dict) -> str:
    lines = [f"### Recogniser alone: `min_window_s` ({res['model']}, one decode per real clip, "
             f"{res['summary'][str(res['windows'][0])]['clips']} clips)", "",
             "| min_window_s | decode p50 s | decode p95 s | total s | loops | CER | WER |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for w in res["windows"]:
        s = res["summary"][str(w)]
        lines.append(f"| {w:g} | {s['decode_s_p50']:.3f} | {s['decode_s_p95']:.3f} | {s['decode_s_total']:.1f} | "
                     f"{s['loops']} | {s['cer'] if s['cer'] is not None else '–'} | "
                     f"{s['wer'] if s['wer'] is not None else '–'} |")
    return "\n".join(lines) + "\n"


__all__ = ["run_windows", "markdown"]
