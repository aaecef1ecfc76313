"""Leave-one-speaker-group-out log-odds (Cantonese/Wu minus Mandarin) per tuning-half group: python benchmarks/explore_dialect_cv.py FEATURES.npz (the --cache file of benchmarks.train_dialect)."""
import sys, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(__import__('os').path.abspath(__file__))))
from benchmarks.train_dialect import fit, sample_weights, standardise, LABELS
z = np.load(sys.argv[1]); x=z['x'].astype(np.float64); y=z['y']; g=np.array([str(v) for v in z['g']]); base=z['base']
def run(l2, pca=None, meanonly=False):
    X = x[:, :x.shape[1]//2] if meanonly else x
    res = {}
    for grp in sorted(set(g)):
        tr = g != grp; te = (g == grp) & base
        m, s = standardise(X[tr]); Xt = (X[tr]-m)/s; Xe = (X[te]-m)/s
        if pca:
            u, sv, vt = np.linalg.svd(Xt - Xt.mean(0), full_matrices=False); P = vt[:pca].T
            Xt, Xe = Xt @ P, Xe @ P
            m2, s2 = Xt.mean(0), Xt.std(0)+1e-6; Xt=(Xt-m2)/s2; Xe=(Xe-m2)/s2
        W, b = fit(Xt, y[tr], sample_weights(y[tr], list(g[tr])), l2)
        sc = Xe @ W.T + b
        res[grp] = (LABELS[y[te][0]], (sc[:,1]-sc[:,0]), (sc[:,2]-sc[:,0]))
    return res
for cfg in [dict(l2=0.01), dict(l2=0.1, pca=16), dict(l2=0.1, pca=32), dict(l2=0.01, meanonly=True), dict(l2=0.3, pca=8)]:
    r = run(**cfg)
    print(cfg)
    for lab in LABELS:
        rows = [(k, v) for k, v in r.items() if v[0]==lab]
        print('  ', lab, ' '.join(f"{k.split(':')[-1][:10]}:{np.median(v[1]):+.1f}/{np.median(v[2]):+.1f}" for k, v in rows))
