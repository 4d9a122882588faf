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

    # per-underlying models (an option): the same k*, each name labelled by its own model, and stage 04 validates each
    # name in its own space
    from volregime.scan import RegimeModel, persistent_labels
    from volregime.validate import daily_methods
    own = run_scan(art, ScanParams(granularities=["day"], k_max=6, n_boot=5, day_models="per_underlying"))
    ho = read_headlines(art)["03_unsupervised_scan"]
    assert (ho["k_star_day"], ho["day_models"], ho["underlyings_own_model"]) == (res.headline["k_star_day"], "per_underlying", len(names))
    assert ho["ari_vs_truth_underlying_median"] > 0.6 and ho["ari_vs_truth_underlying_p10"] > 0.4, ho
    model = RegimeModel.load(art.model("day"))
    daily = pl.read_parquet(art.regimes_daily).drop_nulls("regime")
    feats = pl.read_parquet(art.features_daily)
    for s in sorted(model.members)[:3]:
        m = model.for_underlying(s)
        f = feats.filter(pl.col("secid") == s).sort("date")
        Z, ok = m.matrix(f)
        expect = f.filter(pl.Series(ok)).select("date").join(daily.filter(pl.col("secid") == s), on="date", maintain_order="left")
        assert m.kmeans.predict(Z).tolist() == expect["regime_kmeans"].to_list()   # plain K-means, kept beside the published
        assert persistent_labels(Z, m.kmeans.cluster_centers_, ho["regime_penalty"]).tolist() == expect["regime"].to_list()
    meth = daily_methods(art, max_underlyings=1, causal_refit="quarter", random_state=0)
    km = meth.filter((pl.col("method") == "kmeans") & (pl.col("label_kind") == "filtered_insample"))
    assert km.height > 0 and km["regime"].max() < own.headline["k_star_day"]


@pytest.fixture(scope="module")
def dask_cluster():
    "A LocalCluster of two single-threaded workers, reached by its scheduler address as any existing Dask cluster is."
    from volregime.cluster import local_cluster
    with local_cluster(2) as lc:
        yield lc.scheduler_address


@pytest.mark.slow
def test_stages_on_a_dask_cluster_equal_the_in_process_run(tmp_path, dask_cluster):
    "Ingest and features as (underlyings, year) tasks, the scan's joblib jobs on the cluster: the same regimes and breadth."
    from volregime.core import Artifacts, read_headlines
    from volregime.features import FeatureParams, run_features
    from volregime.ingest import IngestParams, run_ingest
    from volregime.scan import ScanParams, run_scan
    out = {}
    for cl in ("none", dask_cluster):
        art = Artifacts(tmp_path / ("none" if cl == "none" else "dask"))
        run_ingest(art, IngestParams(start="2019-11-01", end="2020-12-31", panel=30, idio_share=0.3, name_vol_sd=0.3, chains=False,
                                     seed=4, cluster=cl))
        run_features(art, FeatureParams(cluster=cl))
        run_scan(art, ScanParams(granularities=["day"], k_max=5, n_boot=4, cluster=cl))
        out[cl] = art
    a, b = out["none"], out[dask_cluster]
    for t in ("vsurfd", "secprd"):
        sort = ["secid", "date", "days", "delta", "cp_flag"] if t == "vsurfd" else ["secid", "date"]
        r0, r1 = (pl.read_parquet(x.raw / t if t == "vsurfd" else x.secprd).sort(sort) for x in (a, b))
        assert r0.equals(r1), t
    assert pl.read_parquet(a.features_daily).equals(pl.read_parquet(b.features_daily))
    assert pl.read_parquet(a.regimes_daily).equals(pl.read_parquet(b.regimes_daily))
    assert pl.read_parquet(a.regimes_breadth).equals(pl.read_parquet(b.regimes_breadth))
    ha, hb = read_headlines(a), read_headlines(b)
    for k in ("rows_opprcd", "underlyings", "days", "duplicates_dropped"): assert ha["01_ingest"][k] == hb["01_ingest"][k], k
    assert ha["03_unsupervised_scan"]["k_star_day"] == hb["03_unsupervised_scan"]["k_star_day"]
    assert hb["01_ingest"]["underlyings"] == 30


def test_nested_cv_folds_on_a_dask_cluster_equal_the_in_process_run(dask_cluster):
    """The (fold, model) jobs through joblib's Dask backend: the same forecasts, chosen parameters and Keras histories as
    one after another. A Keras job follows the baselines' jobs in the same worker, where the event loop draws from Python's
    `random` beside it (the models' weights are seeded from their own seed, stage 05)."""
    import numpy as np
    from volregime.cluster import engine
    from volregime.supervised import choose_folds, make_sequences, nested_cv
    rng = np.random.default_rng(0)
    n = 460
    days = pl.date_range(pl.date(2019, 1, 1), pl.date(2021, 12, 31), eager=True).filter(pl.date_range(pl.date(2019, 1, 1), pl.date(2021, 12, 31), eager=True).dt.weekday() <= 5)[:n]
    walk = np.cumsum(rng.normal(size=(n, 3)), axis=0) * 0.01
    df = pl.DataFrame({"date": days, "secid": 1, "a": 0.2 + np.abs(walk[:, 0]), "b": walk[:, 1], "c": walk[:, 2]})
    H = 3
    seq = make_sequences(df, ["a", "b", "c"], "a", 10, H, "level", 7)
    dates = seq.dates
    folds = choose_folds(dates, [], False, H, 40, 200, 2)
    runs = []
    for cl in ("none", dask_cluster):
        with engine(cl) as eng, eng.joblib():
            runs.append(nested_cv(seq, folds, H, sklearn_models=["ridge", "random_forest"], keras_families=["seq2seq"],
                                  inner_splits=2, epochs=4, patience=2, progress=False, n_jobs=eng.n_jobs(1)))
    a, b = runs[0].predictions, runs[1].predictions
    assert a.drop("y_pred").equals(b.drop("y_pred"))
    # the same fits; worker processes run with one BLAS thread (Dask's default), so sums may differ in the last bits
    assert (a["y_pred"] - b["y_pred"]).abs().max() < 1e-9
    assert {k: v[1] for k, v in runs[0].selected.items()} == {k: v[1] for k, v in runs[1].selected.items()}
    assert set(a["model"]) >= {"ridge", "random_forest", "seq2seq"}
    assert runs[0].histories == runs[1].histories and len(runs[0].histories) == len(folds)
