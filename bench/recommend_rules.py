"""Recommendation rules compared on the records `bench/forecasts.py` keeps, without refitting a model.

For every scenario, fold and horizon a rule looks only at the fold's inner validation record (what `recommend` sees)
and names a forecaster; its forecasts over the fold's test window are then read from the same run's predictions.
Per rule and horizon it prints the share of scenarios whose recommended RMSE (all folds pooled) is no worse than
persistence's, and the median and 90th percentile of that ratio. Choose a rule on the development family's records;
report it on the held-out family's.

    python bench/recommend_rules.py bench/out/forecasts_noisy/records [--variant all]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import numpy as np
import polars as pl

from volregime.supervised import recommend

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("records", help="a records folder written by bench/forecasts.py")
ap.add_argument("--variant", default="all", help="the input variant whose records are read")
a = ap.parse_args()

RULES = {   # name -> keyword arguments of recommend (None: always persistence)
    "persistence": None,
    "spa 0.10": dict(test="spa", size=0.10),
    "spa 0.10, every window": dict(test="spa", size=0.10, every=True),
    "spa 0.05, every window": dict(test="spa", size=0.05, every=True),
    "spa 0.01, every window": dict(test="spa", size=0.01, every=True),
    "mcs 0.10": dict(test="mcs", size=0.10),
    "mcs 0.10, every window": dict(test="mcs", size=0.10, every=True),
}
rows = []
files = sorted(Path(a.records).glob(f"*_{a.variant}.joblib"))
if not files: raise SystemExit(f"no records of variant {a.variant!r} in {a.records}")
for f in files:
    rec = joblib.load(f)
    preds, hs = rec["predictions"], rec["horizons"]
    for rule, kw in RULES.items():
        chosen = []
        for fold, r in rec["inner"].items():
            inner = {k: v for k, v in r.items() if k not in ("y", "segments")}
            if kw is None: pick = {h: ("persistence", "") for h in hs}
            else:
                kw2 = {k: v for k, v in kw.items() if k != "every"}
                pick = recommend(inner, r["y"], hs, segments=r["segments"] if kw.get("every") else None, **kw2)
            chosen += [{"fold": fold, "horizon": h, "model": m} for h, (m, _) in pick.items()]
        ch = pl.DataFrame(chosen)
        got = preds.join(ch, on=["fold", "horizon", "model"])
        pers = preds.filter(pl.col("model") == "persistence").select("date", "horizon", "fold", pers=pl.col("y_pred"))
        got = got.join(pers, on=["date", "horizon", "fold"])
        for h in hs:
            g = got.filter(pl.col("horizon") == h)
            rm = float(np.sqrt(((g["y_pred"] - g["y_true"]) ** 2).mean())); rp = float(np.sqrt(((g["pers"] - g["y_true"]) ** 2).mean()))
            rows.append({"scenario": f.stem.rsplit("_", 1)[0], "rule": rule, "horizon": h, "ratio": rm / rp,
                         "switched_folds": int((ch.filter(pl.col("horizon") == h)["model"] != "persistence").sum())})
df = pl.DataFrame(rows)
summ = df.group_by("rule", "horizon", maintain_order=True).agg(
    scenarios=pl.len(), no_worse=(pl.col("ratio") <= 1 + 1e-9).mean(), ratio_median=pl.col("ratio").median(),
    ratio_p90=pl.col("ratio").quantile(0.9), ratio_max=pl.col("ratio").max(), folds_switched=pl.col("switched_folds").sum())
pl.Config.set_tbl_rows(100); pl.Config.set_tbl_width_chars(200)
print(f"{len(files)} scenarios from {a.records} (variant {a.variant}); persistence is the peer (ratio 1)")
print(summ)
