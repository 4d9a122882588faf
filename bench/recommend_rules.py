"""Recommendation rules compared on the records `bench/forecasts.py` keeps, without refitting a model.

For every scenario, fold and horizon a rule looks only at the fold's inner validation record (what `recommend` sees)
and names a forecaster; its forecasts over the fold's test window are then read from the same run's predictions.
Per rule and horizon it prints the share of scenarios whose recommended RMSE (all folds pooled) is no worse than
persistence's, and the median and 90th percentile of that ratio. The `shrunk` rules pull the recommended model's
forecast toward persistence's by the combination weight fitted on the inner record. Choose a rule on the development
family's records (`bench/forecasts.py --family noisy --first 0`); report it on the held-out seeds of both families.

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
    # shrunk: the recommended model's forecast pulled toward persistence's, f = p + w (m - p), with w the least-squares
    # combination weight on the fold's inner record, clipped to [0, 1] (Bates-Granger with the benchmark as anchor)
    "spa 0.10, every window, shrunk": dict(test="spa", size=0.10, every=True, shrink=True),
    "spa 0.05, every window, shrunk": dict(test="spa", size=0.05, every=True, shrink=True),
}

def shrink_weight(m: np.ndarray, p: np.ndarray, y: np.ndarray) -> float:
    "The least-squares weight w of p + w (m - p) on y, clipped to [0, 1]."
    d = m - p
    den = float((d * d).sum())
    return float(np.clip(((y - p) * d).sum() / den, 0.0, 1.0)) if den > 0 else 0.0
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
                kw2 = {k: v for k, v in kw.items() if k not in ("every", "shrink")}
                pick = recommend(inner, r["y"], hs, segments=r["segments"] if kw.get("every") else None, **kw2)
            for j, (h, (m, _)) in enumerate(pick.items()):
                w = (shrink_weight(inner[m][:, j], inner["persistence"][:, j], r["y"][:, j]) if kw and kw.get("shrink")
                     else 1.0) if m != "persistence" else 0.0
                chosen.append({"fold": fold, "horizon": h, "model": m, "w": w})
        ch = pl.DataFrame(chosen)
        got = preds.join(ch, on=["fold", "horizon", "model"])
        pers = preds.filter(pl.col("model") == "persistence").select("date", "horizon", "fold", pers=pl.col("y_pred"))
        got = got.join(pers, on=["date", "horizon", "fold"]).with_columns(
            y_pred=pl.col("pers") + pl.col("w") * (pl.col("y_pred") - pl.col("pers")))
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
