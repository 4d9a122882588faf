"""Which day features carry the regime: stage 03's published day regime under each `day_columns` variant, on both families.

Each market is built (`--family noisy`: `volregime.synth.noisy_scenario`, the development family; `heldout`:
`volregime.heldout.heldout_scenario`, the generator designed apart), taken through stages 01-02 in process, and stage
03's day fit (the demo profile: reliability x sparse weights, PCA, k-scan, the persistent k*, the persistent labels)
is run once per variant on the same day features. Per market and variant it prints the published regime's ARI against
the truth, k* beside the true k, and the day weights; the plain K-means peer (true k; `atm_iv_30d`, `skew_25d`,
`rv_21d`) is in every row. Then per variant: median and 10th percentile of the ARI, k* = true k.

    python bench/day_features.py --family heldout --first 8 --n 16
    python bench/day_features.py --family noisy --first 0 --n 12 --variants fwd3,level4
"""
from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np
import polars as pl
from _common import add_market_args, scenario_markets

from volregime.robustness import peer_ari, scenario_params, stage_runners
from volregime.scan import run_scan
from volregime.synth import true_k

VARIANTS = {   # name -> day_columns
    "fwd3": ["fwd_iv_30_91", "skew_25d", "curvature_25d"],                    # the default
    "level4": ["atm_iv_91d", "term_slope", "skew_25d", "curvature_25d"],       # the default before the forward
    "fwd4": ["fwd_iv_30_91", "term_slope", "skew_25d", "curvature_25d"],
    "fwd1": ["fwd_iv_30_91"],                                                  # equal weights (one feature)
}
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_market_args(ap, "heldout", 8)
ap.add_argument("--variants", default="fwd3,level4,fwd4,fwd1", help=f"comma-separated, of {list(VARIANTS)}")
a = ap.parse_args()
variants = a.variants.split(",")
if bad := [v for v in variants if v not in VARIANTS]: raise SystemExit(f"--variants: {bad} unknown; expected some of {list(VARIANTS)}")
runners = list(stage_runners().values())
rows = []
with tempfile.TemporaryDirectory(prefix="volregime-dayfeat-") as work:
    for sc, m, art, exports in scenario_markets(a.family, a.first, a.n, a.years, work):
        base = scenario_params(exports, "demo", "quick", {"granularities": ["day"]})
        for cls, fn in runners[:2]: fn(art, cls.from_dict(base))
        m.truth.select("date", "secid", "regime").write_parquet(art.truth)   # stage 03 scores its regime against it (ari_vs_truth)
        tk = true_k(m.truth)
        row = {"market": sc.name, "true_k": tk, "ari_peer": round(peer_ari(art, m.truth, tk, sc.seed), 3)}
        for v in variants:
            over = {"day_columns": VARIANTS[v], **({"day_weights": "equal"} if len(VARIANTS[v]) == 1 else {})}
            res = run_scan(art, runners[2][0].from_dict({**base, **over}))
            f = res.fits["day"]
            row[f"ari_{v}"] = round(res.headline["ari_vs_truth"], 3)
            row[f"k_{v}"] = f.scan.k_star
            row[f"w_{v}"] = [round(float(x), 2) for x in f.zpca.weights] if f.zpca.weights is not None else None
        rows.append(row)
        print(json.dumps(row), flush=True)
df = pl.DataFrame(rows)
print(f"\n{a.family} family, seeds {a.first}..{a.first + a.n - 1}, {a.years:g} years: the published day regime, ARI vs the truth")
print(f"  {'peer (K-means, true k)':<26} median {df['ari_peer'].median():.3f}  10th pct {np.quantile(df['ari_peer'], 0.1):.3f}")
for v in variants:
    hits = int((df[f"k_{v}"] == df["true_k"]).sum())
    beats = int((df[f"ari_{v}"] > df["ari_peer"]).sum())
    print(f"  {v:<26} median {df[f'ari_{v}'].median():.3f}  10th pct {np.quantile(df[f'ari_{v}'], 0.1):.3f}"
          f"  k* = true k {hits} of {len(df)}  beats the peer {beats} of {len(df)}")
