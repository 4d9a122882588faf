"""Forecasts a user can act on: stage 05 on scenario markets of both generator families, per horizon, with persistence in
every row.

Each market goes through stages 01-04 in process (demo profile, day granularity), then stage 05 once per input variant:
- `all`: the defaults (surface levels, the target's HAR components, the surface fits' standard errors, the published
  regime's causal probabilities; models learn the change from today's level);
- `-har`, `-se`, `-regime`: the defaults less one input group (the ablation; run it on the development family);
- `level`: the defaults, but the models learn the level (the design before the change target);
- `stress`: the defaults, but the outer test windows open at the starts of stressed episodes (`anchor_kind="stress"`);
- `narrow`: the penalised baselines' grids before they were widened (ridge 0.1-10, lasso 1e-4-1e-3).

Per scenario, variant and horizon it prints the recommended forecaster's RMSE over persistence's and the model best in
hindsight's (lowest pooled test RMSE), and keeps each run's inner validation records and test forecasts
(`records/<scenario>_<variant>.joblib`) so that recommendation rules can be compared without refitting; then, per variant and horizon, the share of scenarios where the recommended
forecaster is no worse than persistence, the share where the best learned model beats it, and the median and 10th/90th
percentiles of the ratios.

    python bench/forecasts.py --family noisy --first 100 --n 4 --variants all,-har,-se,-regime   # development family, held-out seeds
    python bench/forecasts.py --family heldout --n 4                                          # the held-out family
    python bench/forecasts.py --family heldout --n 3 --deep                                   # with the Keras families
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import joblib
import polars as pl
import yaml
from _common import add_market_args, scenario_markets

from volregime.robustness import scenario_params, stage_runners

VARIANTS = {"all": {}, "-har": {"har_inputs": False}, "-se": {"se_inputs": False}, "-regime": {"use_regime_shares": False},
            "level": {"target_transform": "level"}, "stress": {"anchor_kind": "stress"},
            "surface": {"har_inputs": False, "se_inputs": False, "use_regime_shares": False},
            "narrow": {"ridge_alphas": [0.1, 1.0, 10.0], "lasso_alphas": [1e-4, 1e-3]}}

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_market_args(ap, "heldout", 4, "first seed (the development family's seeds 0-5 chose the regime defaults)")
ap.add_argument("--variants", default="all", help=f"comma-separated, of {list(VARIANTS)}")
ap.add_argument("--deep", action="store_true", help="add the Keras families (lstm, gru, seq2seq) to the models")
ap.add_argument("--set", action="append", default=[], help="key=value parameter overrides of every stage (YAML values)")
ap.add_argument("--out", default="")
a = ap.parse_args()
variants = a.variants.split(",")
bad = [v for v in variants if v not in VARIANTS]
if bad: raise SystemExit(f"--variants: {bad} unknown; expected some of {list(VARIANTS)}")
over = {"granularities": ["day"], "n_boot": 10, "keras_families": ["lstm", "gru", "seq2seq"] if a.deep else []}
for kv in a.set:
    k, v = kv.split("=", 1); over[k] = yaml.safe_load(v)
out = Path(a.out or Path(__file__).parent / "out" / f"forecasts_{a.family}"); (out / "records").mkdir(parents=True, exist_ok=True)
runners = list(stage_runners().items())
rows = []
with tempfile.TemporaryDirectory(prefix="volregime-forecasts-") as work:
    for sc, m, art, exports in scenario_markets(a.family, a.first, a.n, a.years, work):
        w = exports.parent
        params = scenario_params(exports, "demo", "profile", over)   # the demo's forecasting: 3 folds, every baseline
        failed = None
        for stage, (cls, fn) in runners[:4]:
            try: fn(art, cls.from_dict(params))
            except Exception as e: failed = f"{stage}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"; break
        cls5, fn5 = runners[4][1]
        for v in variants:
            t0 = time.perf_counter()
            try:
                res = fn5(art, cls5.from_dict({**params, **VARIANTS[v]})) if not failed else None
            except Exception as e:
                res, failed = None, f"05: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            secs = round(time.perf_counter() - t0, 1)
            if res is None:
                rows.append({"scenario": sc.name, "variant": v, "horizon": None, "failed": failed}); continue
            joblib.dump({"inner": res.cv.inner, "predictions": res.cv.predictions, "horizons": res.seq.horizons},
                        out / "records" / f"{sc.name}_{v}.joblib")   # what the recommendation saw, and every test forecast
            for r in res.recommended.iter_rows(named=True):
                row = {"scenario": sc.name, "family": a.family, "variant": v, "horizon": r["horizon"], "recommended": r["recommended"],
                       "ratio_recommended": r["ratio_recommended"], "best_in_hindsight": r["best_in_hindsight"],
                       "ratio_best": r["ratio_best"], "seconds_05": secs, "failed": None,
                       "ridge_alpha": (res.cv.selected.get("ridge") or (None, {}))[1].get("regressor__model__alpha")}
                rows.append(row)
                print(json.dumps(row, default=str), flush=True)
        shutil.rmtree(w, ignore_errors=True)
df = pl.DataFrame(rows, infer_schema_length=None)
df.write_parquet(out / "rows.parquet")
ok = df.filter(pl.col("failed").is_null())
summ = ok.group_by("variant", "horizon", maintain_order=True).agg(
    scenarios=pl.len(),
    recommended_no_worse=(pl.col("ratio_recommended") <= 1.0 + 1e-9).mean(),
    ratio_recommended_median=pl.col("ratio_recommended").median(),
    ratio_recommended_p90=pl.col("ratio_recommended").quantile(0.9),
    best_beats_persistence=(pl.col("ratio_best") < 1.0).mean(),
    ratio_best_median=pl.col("ratio_best").median(),
    ratio_best_p10=pl.col("ratio_best").quantile(0.1),
    ratio_best_p90=pl.col("ratio_best").quantile(0.9),
    seconds_05_median=pl.col("seconds_05").median()).sort("variant", "horizon")
pl.Config.set_tbl_width_chars(220); pl.Config.set_tbl_cols(20); pl.Config.set_tbl_rows(60)
print(f"{a.family} family, seeds {a.first}..{a.first + a.n - 1}, {a.years:g} years; persistence is the peer (ratio 1)")
print(summ)
if df["failed"].is_not_null().any(): print("failed:", df.filter(pl.col("failed").is_not_null()).select("scenario", "variant", "failed").to_dicts())
