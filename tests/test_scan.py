"""Stage 03: the estimator contract, label ordering, the scan's metrics and choice, bad input, recovery of the truth."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline

from volregime.scan import (RegimeKMeans, ScanInputError, ZPCA, durations, feature_matrix, fit_granularity,
                            moving_block_indices, scan_k, select_k, sliced_wasserstein, transition_matrix)


def blobs(seed=0, n=120):
    rng = np.random.default_rng(seed)
    means = ((0, 0, 0), (5, 0, 1), (0, 5, 2))
    X = np.vstack([rng.normal(m, 0.6, (n, 3)) for m in means])
    y = np.repeat([0, 1, 2], n)
    return X, y


def test_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator
    # Waived: none. RegimeKMeans validates in fit, stores only hyperparameters in __init__, and is
    # deterministic for a random_state.
    check_estimator(RegimeKMeans(n_clusters=3, random_state=0))


def test_clone_pipeline_and_ordering():
    X, y = blobs()
    iv = X[:, 2]                                   # the "implied volatility" orders the regimes
    pipe = Pipeline([("z", ZPCA(0.95, random_state=0)), ("km", RegimeKMeans(3, random_state=0))])
    pipe.fit(X, km__order_values=iv)
    lab = pipe.named_steps["km"].labels_
    means = [iv[lab == c].mean() for c in range(3)]
    assert means == sorted(means), "cluster 0 has the lowest mean implied volatility"
    assert adjusted_rand_score(y, lab) > 0.99
    assert (pipe.predict(X) == lab).all()
    c = clone(pipe)
    assert c.named_steps["km"].get_params()["n_clusters"] == 3 and not hasattr(c.named_steps["km"], "labels_")
    # the same seed gives the same labels; ordering is stable whatever the internal label numbering
    a = RegimeKMeans(3, random_state=1).fit(X, order_values=iv).labels_
    b = RegimeKMeans(3, random_state=2).fit(X, order_values=iv).labels_
    assert (a == b).all()


def test_sliced_wasserstein_against_exact_1d():
    from scipy.stats import wasserstein_distance
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (4000, 1)), rng.normal(0.7, 2, (4000, 1))
    # in one dimension every projection is +-1: sliced W1 equals the exact W1
    assert abs(sliced_wasserstein(a, b, n_quantiles=4000, random_state=0) - wasserstein_distance(a[:, 0], b[:, 0])) < 0.01


def test_scan_picks_the_true_k_and_is_reproducible():
    X, y = blobs(seed=4)
    r1 = scan_k(X, X[:, 2], 2, 6, n_boot=4, random_state=0)
    r2 = scan_k(X, X[:, 2], 2, 6, n_boot=4, random_state=0)
    assert r1.k_star == 3 and r1.runner_up in (2, 4)
    assert r1.table.equals(r2.table)
    t = r1.table
    assert set(t.columns) >= {"granularity", "k", "inertia", "silhouette", "calinski_harabasz", "davies_bouldin",
                              "wasserstein_separation", "wasserstein_compactness", "ari_mean", "ari_std", "score"}
    assert t["inertia"].is_sorted(descending=True)
    assert t.filter(pl.col("k") == 3)["ari_mean"][0] > 0.95


def test_stability_floor_and_weights():
    t = pl.DataFrame({"k": [2, 3, 4], "ari_mean": [0.5, 0.9, 0.95], "wasserstein_separation": [3.0, 2.0, 1.0], "wasserstein_nn_separation": [3.0, 2.0, 1.0],
                      "wasserstein_compactness": [1.0, 0.5, 0.4]})
    _, k, ru = select_k(t, alpha=0.5, beta=0.25, stability_floor=0.6)
    assert k in (3, 4) and 2 not in (k, ru)
    _, k, _ = select_k(t.with_columns(wasserstein_compactness=pl.lit(1.0)), alpha=0.0, beta=1.0, stability_floor=0.0)
    assert k == 2                                   # separation alone (same compactness) prefers the most separated split
    with pytest.raises(ScanInputError, match="alpha=0.8, beta=0.5"):
        select_k(t, alpha=0.8, beta=0.5)
    t2 = t.with_columns(wasserstein_nn_separation=pl.Series([3.0, 0.1, 0.1]))
    assert select_k(t2, 0.0, 1.0, 0.0, "nearest")[1] == 2 and select_k(t2.with_columns(wasserstein_separation=pl.Series([0.1, 3.0, 0.1])), 0.0, 1.0, 0.0, "pairwise")[1] == 3
    with pytest.raises(ScanInputError, match="separation_metric='mean'"):
        select_k(t, separation_metric="mean")


def test_moving_block_bootstrap_keeps_blocks():
    rs = np.random.RandomState(0)
    idx = moving_block_indices(100, 10, rs)
    assert len(idx) == 100 and idx.min() >= 0 and idx.max() < 100
    assert (np.diff(idx.reshape(10, 10), axis=1) == 1).all()


def test_bad_input_messages():
    X, _ = blobs()
    with pytest.raises(ScanInputError, match="k_min=5 > k_max=3"):
        scan_k(X, X[:, 0], 5, 3)
    with pytest.raises(ScanInputError, match="8 rows is not more than k_max=12"):
        scan_k(X[:8], X[:8, 0], 2, 12)
    df = pl.DataFrame({"a": [1.0, 2.0, np.inf, 4.0, 5.0, np.nan], "b": [3.0, 1.0, 2.0, 2.0, 5.0, 1.0], "c": [7.0] * 6})
    with pytest.raises(ScanInputError, match=r"constant column\(s\) \['c'\]"):
        feature_matrix(df, ["a", "c"])
    with pytest.raises(ScanInputError, match=r"2 row\(s\) have NaN or inf in \['a'\]"):
        feature_matrix(df, ["a", "b"], nan_policy="raise")
    Xd, ok = feature_matrix(df, ["a", "b"], nan_policy="drop")
    assert Xd.shape == (4, 2) and ok.sum() == 4
    with pytest.raises(ScanInputError, match="nan_policy='skip'"):
        feature_matrix(df, ["a"], nan_policy="skip")
    with pytest.raises(ScanInputError, match=r"feature column\(s\) \['zz'\] not found"):
        feature_matrix(df, ["zz"])
    with pytest.raises(ScanInputError, match="outcomes"):
        feature_matrix(df.with_columns(price_diff_5d=pl.col("a")), ["price_diff_5d"])


def test_transitions_and_durations():
    lab = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    d = durations(lab)
    assert d["length"].to_list() == [3, 2, 4, 1]
    P = transition_matrix(lab, 3)
    assert np.allclose(P.sum(1), 1) and P[0, 0] == 2 / 3


@pytest.mark.slow
def test_day_regimes_recover_the_synthetic_truth(tmp_path):
    from volregime.core import Artifacts
    from volregime.features import build_features
    from volregime.ingest import IngestParams, run_ingest
    run_ingest(Artifacts(tmp_path), IngestParams(start="2016-01-04", end="2019-12-31", n_contracts=80, seed=2))
    build_features(tmp_path, options=False)
    daily = pl.read_parquet(tmp_path / "features" / "daily.parquet")
    f = fit_granularity(daily, ["atm_iv_30d", "term_slope", "skew_25d", "curvature_25d"], "atm_iv_30d", "day",
                        ["date", "secid"], k_min=2, k_max=8, n_boot=6, block_length=20, random_state=0)
    truth = pl.read_parquet(tmp_path / "truth" / "truth.parquet")
    x = truth.join(f.rows.select("date", "secid").with_columns(r=pl.Series(f.labels)), on=["date", "secid"])
    assert f.scan.k_star == 3
    assert adjusted_rand_score(x["regime"], x["r"]) >= 0.7
    est, true = durations(f.labels)["length"].mean(), durations(x["regime"].to_numpy())["length"].mean()
    assert 0.5 <= est / true <= 2


def test_noisy_chain_gets_a_lasting_regime_and_quiet_noisy_features(tmp_path):
    "A noisy monthly chain (noisy_scenario): k* right, published spells the truth's length, no worse than plain K-means."
    from volregime.core import Artifacts, read_headlines
    from volregime.robustness import scenario_params, stage_runners
    from volregime.synth import noisy_scenario, true_k, write_exports
    sc = noisy_scenario(1, years=4)
    m = sc.simulate()
    write_exports(m, tmp_path / "exports")
    art = Artifacts(tmp_path / "data")
    params = scenario_params(tmp_path / "exports", "demo", "quick", {"granularities": ["day"], "n_boot": 6})
    for _, (cls, fn) in list(stage_runners().items())[:3]: fn(art, cls.from_dict(params))
    d = pl.read_parquet(art.regimes_daily).join(m.truth.select("date", "secid", pl.col("regime").alias("true")), on=["date", "secid"])
    h = read_headlines(art)
    w = h["03_unsupervised_scan"]["day_feature_weights"]
    assert h["03_unsupervised_scan"]["k_star_day"] == true_k(m.truth) == 3
    assert w["curvature_25d"] < w["fwd_iv_30_91"] and 0.05 <= min(w.values()) and max(w.values()) <= 1
    assert 0 < h["02_features"]["noise_share_atm_iv_30d"] < h["02_features"]["noise_share_curvature_25d"] <= 1
    ari_pub, ari_km = adjusted_rand_score(d["true"], d["regime"]), adjusted_rand_score(d["true"], d["regime_kmeans"])
    assert ari_pub >= 0.7 and ari_pub >= ari_km - 0.02, (ari_pub, ari_km)
    ratio = durations(d["regime"].to_numpy())["length"].mean() / durations(d["true"].to_numpy())["length"].mean()
    assert 0.6 <= ratio <= 1.6, ratio
    assert durations(d["regime_kmeans"].to_numpy())["length"].mean() <= durations(d["regime"].to_numpy())["length"].mean()


def test_index_chain_scan_fits_a_sample_of_days_and_labels_every_row(tmp_path):
    "market=spx over a year boundary: yearly exports of an index-sized chain; the option scan fits whole days, labels all."
    import pyarrow.parquet as pq
    from volregime.core import Artifacts, read_headlines
    from volregime.features import run_features, FeatureParams
    from volregime.ingest import IngestError, IngestParams, run_ingest
    from volregime.scan import ScanParams, run_scan
    from volregime.ward import ward_matrix
    art = Artifacts(tmp_path)
    with pytest.raises(IngestError, match="market='spy': expected 'default' or 'spx'"):
        run_ingest(art, IngestParams(market="spy"))
    run_ingest(art, IngestParams(market="spx", tickers=["SPX"], start="2019-11-01", end="2020-02-28", n_contracts=9000, seed=0))
    src = sorted(p.name for p in (tmp_path / "source" / "synthetic").glob("opprcd*.parquet"))
    assert src == ["opprcd2019.parquet", "opprcd2020.parquet"]                      # written a year at a time
    per_day = pl.scan_parquet(tmp_path / "raw" / "opprcd" / "**" / "*.parquet").group_by("date").len().collect()["len"]
    assert per_day.min() >= 5000, per_day.min()                                     # an index chain, not the ETF's
    run_features(art, FeatureParams())
    n_rows = pq.ParquetFile(art.features_options).metadata.num_rows
    with pytest.raises(ScanInputError, match="option_fit_rows=-1"):
        run_scan(art, ScanParams(option_fit_rows=-1))
    res = run_scan(art, ScanParams(option_fit_rows=60_000, k_max=4, n_boot=2, boot_sample=5000, random_state=0))
    f = res.fits["option"]
    days = f.rows["date"].n_unique()
    assert 0 < len(f.rows) < n_rows / 3 and days < 20                               # whole days of a sample
    assert f.rows.group_by("date").len()["len"].min() > 3000                        # every contract of a drawn day
    lab = pl.read_parquet(art.labels)
    usable = pl.read_parquet(art.features_options, columns=ScanParams().option_columns).drop_nans().drop_nulls().height
    assert lab.height == usable                                                     # every usable row labelled
    assert set(lab["cluster"].unique()) == set(range(f.scan.k_star))
    h = read_headlines(art)["03_unsupervised_scan"]
    assert h["option_rows_fit"] == len(f.rows) and h["option_rows_labelled"] == usable
    assert 0.5 < h["option_sample_ari_min"] <= h["option_sample_ari"] <= 1
    assert res.daily.select(pl.sum_horizontal(pl.selectors.starts_with("share_"))).to_series().round(9).unique().to_list() == [1.0]
    _, Z, _ = ward_matrix(art, "option", lab.height // 10)
    assert lab.height // 11 <= len(Z) <= lab.height // 10
