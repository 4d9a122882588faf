"""Regimes on noisy, sparse chains: stages 01-04 in process, scored against the truth with peers in every row.

Two families of markets:
- `--family noisy` (default): `volregime.synth.noisy_scenario`, the synthetic market's own family widened with spread-sized
  IV noise, listed-strike-like sparse grids, monthly expiries and smile factors of their own. The development set: the
  day-feature defaults (reliability weights, the persistent regime's penalty) were chosen on its seeds 0-5.
- `--family heldout`: `volregime.heldout.heldout_scenario`, a generator of another design (semi-Markov regimes,
  Heston-type variance, SVI smiles on a listed dollar strike grid, noisy mids), frozen before it was first run. Report only.

    python bench/noisy_chains.py [--family noisy|heldout] [--n 6] [--first 0] [--years 6] [--set regime_method=kmeans ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml
from _common import add_market_args, scenario_markets

from volregime.robustness import peer_ari, peer_jump_ari, scenario_params, score_run, stage_runners
from volregime.synth import true_k

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_market_args(ap, "noisy", 6)
ap.add_argument("--set", action="append", default=[], help="key=value parameter overrides (YAML values)")
ap.add_argument("--out", default="")
a = ap.parse_args()
over = {"granularities": ["day"], "n_boot": 10}
for kv in a.set:
    k, v = kv.split("=", 1); over[k] = yaml.safe_load(v)
out = Path(a.out or Path(__file__).parent / "out" / a.family); out.mkdir(parents=True, exist_ok=True)
rows = []
with tempfile.TemporaryDirectory(prefix="volregime-noisy-") as work:
    for sc, m, art, exports in scenario_markets(a.family, a.first, a.n, a.years, work):
        w = exports.parent
        params = scenario_params(exports, "demo", "quick", over)
        row = {**sc.describe(), "true_k": true_k(m.truth), "failed": None}
        t0 = time.perf_counter()
        for stage, (cls, fn) in list(stage_runners().items())[:4]:
            try: fn(art, cls.from_dict(params))
            except Exception as e:
                row["failed"] = f"{stage}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"; break
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row.update(score_run(art, m.truth))
        row["ari_peer"] = peer_ari(art, m.truth, row["true_k"], sc.seed)
        row["ari_peer_jump"] = peer_jump_ari(art, m.truth, row["true_k"], sc.seed)
        rows.append(row)
        shutil.rmtree(w, ignore_errors=True)
        print(json.dumps({k: row.get(k) for k in ("scenario", "schedule", "true_k", "k_star", "ari_default", "mean_duration",
                                                   "true_mean_duration", "ari_jump_smoothed", "ari_best_causal", "detection_lag_causal",
                                                   "false_switches_causal", "ari_peer", "ari_peer_jump",
                                                   "seconds", "failed")}, default=str), flush=True)
df = pl.DataFrame(rows)
df.write_parquet(out / "rows.parquet")
cols = [c for c in ("ari_default", "ari_peer", "ari_peer_jump", "ari_jump_smoothed", "ari_best_causal") if c in df.columns]
summ = df.select([pl.col(c).median().alias(f"{c} median") for c in cols] + [pl.col(c).quantile(0.1).alias(f"{c} p10") for c in cols]
                 + [(pl.col("k_star") == pl.col("true_k")).mean().alias("k* = true k"),
                    (pl.col("mean_duration") / pl.col("true_mean_duration")).median().alias("duration ratio median"),
                    (pl.col("ari_default") > pl.col("ari_peer")).mean().alias("beats K-means peer"),
                    (pl.col("ari_default") > pl.col("ari_peer_jump")).mean().alias("beats JumpModel peer")])
pl.Config.set_tbl_width_chars(220)
print(summ.transpose(include_header=True))
