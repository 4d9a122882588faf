"""The robustness suite's reduced grid: drawn markets (several names with their own calendars, dailies, missing IVs)
written as WRDS exports and run through stages 01-05 in process, scored against their truth."""
from __future__ import annotations

import polars as pl

from volregime.robustness import check_targets, run_suite, suite_report, summarise
from volregime.synth import random_scenario

FAST = dict(granularities=["day"], k_max=5, n_boot=3, min_train_days=120, test_days=40, keras_families=[],
            sklearn_models=["ridge"])


def test_reduced_grid_runs_every_stage_and_scores_it(tmp_path):
    seeds = [8, 1000]   # dev: 2 regimes, dailies, 2 names, own calendars; held-out: weekly, 2 names, 20 % missing IVs
    assert [len(random_scenario(s).tickers) for s in seeds] == [2, 2]
    rows = run_suite(seeds, tmp_path / "work", tmp_path / "rows.parquet", years=1.5, n_contracts=60, profile="smoke",
                     overrides=FAST)
    assert rows["failed_stage"].null_count() == len(rows), rows.select("scenario", "failed_stage", "error")
    assert pl.read_parquet(tmp_path / "rows.parquet").height == 2                  # appended as each scenario finished
    assert rows["split"].to_list() == ["dev", "heldout"]
    assert (rows["surface_missing_share"] <= 0.01).all() and (rows["atm_iv_corr"] > 0.9).all()
    assert rows["k_star"].is_between(2, 5).all() and rows["true_k"].to_list() == [2, 2]
    assert rows["ari_default"].is_between(-1, 1).all() and rows["ari_best_smoothed"].is_not_null().all()
    assert (rows["rmse_ratio"] > 0).all() and (rows["forecast_samples"] > 100).all()
    assert not list((tmp_path / "work").glob("*"))                                 # scratch removed after scoring
    s = summarise(rows)
    assert set(s["split"]) == {"dev", "heldout"} and (s.filter(pl.col("metric") == "ari_default")["n"] == 1).all()
    t = check_targets(rows)
    assert t.filter(pl.col("target") == "scenarios where a stage stopped")["met"][0]
    html = suite_report(rows, tmp_path / "r.html").read_text()
    assert "s0008" in html and "s1000" in html and "Targets on the held-out split" in html


def test_a_stage_that_stops_is_a_row_not_an_exception(tmp_path):
    rows = run_suite([3], tmp_path / "work", tmp_path / "rows.parquet", years=1.0, n_contracts=40, profile="smoke",
                     overrides={**FAST, "granularities": ["hour"]})
    r = rows.row(0, named=True)
    assert r["failed_stage"] == "03_unsupervised_scan" and "granularities=['hour']" in r["error"]
    assert r["surface_missing_share"] is not None and r["k_star"] is None           # stages before it were scored
    t = check_targets(rows, "dev")
    assert not t.filter(pl.col("target") == "scenarios where a stage stopped")["met"][0]
