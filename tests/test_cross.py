"""The cross-section: a panel market (names with their own levels and idiosyncratic regimes) through stages 01-03 from vsurfd
exports alone, per-underlying regimes and the breadth table."""
from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest


@pytest.mark.slow
def test_a_panel_market_gets_per_underlying_regimes_and_a_breadth_table(tmp_path):
    from volregime.core import Artifacts, read_headlines
    from volregime.features import FeatureParams, run_features
    from volregime.ingest import IngestParams, run_ingest
    from volregime.scan import ScanParams, run_scan
    from volregime.synth import MarketSpec, simulate_market, write_exports
    names = [f"N{i:02d}" for i in range(8)]
    mk = simulate_market("2019-01-02", "2020-06-30", names, 20, seed=5, spec=replace(MarketSpec(), idio_share=0.3, name_vol_sd=0.3))
    exp = tmp_path / "exp"
    write_exports(mk, exp, "parquet")
    for p in exp.glob("opprcd*"): p.unlink()   # vsurfd only, as a cross-section study pulls it
    art = Artifacts(tmp_path / "data")
    run_ingest(art, IngestParams(source="local", local_path=str(exp), tickers=[], start="", end="", reuse_pulls=False))
    run_features(art, FeatureParams())
    res = run_scan(art, ScanParams(granularities=["day"], k_max=6, n_boot=5))
    daily = pl.read_parquet(art.regimes_daily)
    assert daily["secid"].n_unique() == len(names)
    b = pl.read_parquet(art.regimes_breadth)
    sums = b.group_by("date").agg(pl.col("share").sum())["share"]
    assert ((sums - 1).abs() < 1e-9).all() and b["underlyings"].max() == len(names)
    assert b["date"].n_unique() == daily.filter(pl.col("regime").is_not_null())["date"].n_unique()
    # the regimes follow each name's own path: names in an idiosyncratic episode are told apart from the market
    h = read_headlines(art)["03_unsupervised_scan"]
    assert h["underlyings_scored"] == len(names)
    assert h["ari_vs_truth_underlying_median"] > 0.6 and h["ari_vs_truth_underlying_p10"] > 0.4, h
    # per-underlying standardisation: no name sits in one regime all the time
    share_top = daily.group_by("secid", "regime").len().group_by("secid").agg((pl.col("len").max() / pl.col("len").sum()).alias("top"))
    assert share_top["top"].max() < 0.9
    assert res.headline["k_star_day"] >= 2
