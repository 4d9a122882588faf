"""Causal labels across refits: labels that keep their identity (carry) against labels ordered by IV at every refit.

The published method's causal labels (persistent K-means, expanding-window monthly refits, the causal k-scan, the day
weights stage 03 chose) are scored against each market's truth, pooled over its underlyings as stage 04 scores them,
and per underlying. Each market is built (`volregime.synth.noisy_scenario`: the development family; or
`volregime.heldout.heldout_scenario`: the held-out one) and taken through stages 01-03 in process, or read from
finished stage-03 data dirs (`--data`, each with the market's truth.parquet).

    python bench/causal_align.py [--family noisy|heldout] [--n 6] [--first 0] [--years 6] [--data DIR ...]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from _common import add_market_args
from sklearn.metrics import adjusted_rand_score

from volregime.core import Artifacts, read_headlines
from volregime.scan import SPARSITY, RegimeModel, feature_matrix
from volregime.validate import causal_labels, load_truth

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_market_args(ap, "noisy", 6)
ap.add_argument("--data", nargs="*", default=[], help="finished stage-03 data dirs to score instead of building markets")
a = ap.parse_args()


def score(art: Artifacts, name: str) -> dict:
    "Persistent K-means causal labels with carry and with IV order: ARI vs the truth, pooled and per underlying."
    model = RegimeModel.load(art.model("day"))
    h03 = read_headlines(art).get("03_unsupervised_scan", {})
    weighted = (h03.get("day_weights") or "reliability") if getattr(model.zpca, "weights", None) is not None else False
    f = pl.read_parquet(art.features_daily).sort("secid", "date")
    truth = load_truth(art)
    row = {"market": name, "underlyings": f["secid"].n_unique()}
    for carry in (True, False):
        frames = []
        for _, g in f.group_by("secid", maintain_order=True):
            X, ok = feature_matrix(g, model.columns)
            crow = g.filter(pl.Series(ok)).select("date", "secid", "atm_iv_30d")
            cl = causal_labels(X, crow["atm_iv_30d"].to_numpy(), crow["date"], weighted=weighted,
                               sparsity=float(h03.get("sparsity") or SPARSITY), carry=carry, methods=("persistent",))
            frames.append(crow.with_columns(regime=pl.Series(cl.labels["persistent"])).filter(pl.col("regime") >= 0))
        j = pl.concat(frames).join(truth, on=["date", "secid"], suffix="_true")
        tag = "carry" if carry else "iv"
        row[f"ari_{tag}"] = adjusted_rand_score(j["regime_true"], j["regime"])
        row[f"ari_{tag}_per_name"] = [round(adjusted_rand_score(q["regime_true"], q["regime"]), 3) for _, q in j.group_by("secid", maintain_order=True)]
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row


rows = []
if a.data:
    for d in a.data: rows.append(score(Artifacts(Path(d)), Path(d).name))
else:
    from _common import scenario_markets
    from volregime.robustness import scenario_params, stage_runners
    with tempfile.TemporaryDirectory(prefix="volregime-causal-") as work:
        for sc, m, art, exports in scenario_markets(a.family, a.first, a.n, a.years, work):
            params = scenario_params(exports, "demo", "quick", {"granularities": ["day"], "n_boot": 10})
            for stage, (cls, fn) in list(stage_runners().items())[:3]: fn(art, cls.from_dict(params))
            m.truth.select("date", "secid", "regime").write_parquet(art.truth)
            rows.append(score(art, sc.name))
df = pl.DataFrame(rows)
single = df.filter(pl.col("underlyings") == 1)
print(f"\n{len(df)} markets ({len(single)} of one underlying): persistent K-means causal labels, ARI vs the truth, pooled over names")
for tag in ("carry", "iv"):
    print(f"  {tag:<6} median {df[f'ari_{tag}'].median():.3f}  10th pct {df[f'ari_{tag}'].quantile(0.1):.3f}"
          f"  one-underlying median {single[f'ari_{tag}'].median() if len(single) else float('nan'):.3f}")
auto = np.where(df["underlyings"] == 1, df["ari_carry"], df["ari_iv"])
print(f"  auto (carry for one underlying, iv for a panel): median {np.median(auto):.3f}  10th pct {np.quantile(auto, 0.1):.3f}")
print(f"  carry better in {(df['ari_carry'] > df['ari_iv']).sum()} of {len(df)}")
