"""Stage 04: Ward (exact and on micro-clusters), the threshold scan, nesting, and validation of regimes."""
from __future__ import annotations

import datetime as dt

import fastcluster
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from volregime.validate import (ValidationInputError, agreement, align, hmm_regimes, order_labels, persistence,
                                read_reference, truth_scores, validate_methods)
from volregime.ward import nestedness, threshold_grid, ward_scan
from volregime.wardtree import WardInputError, WardTree, weighted_ward


def blobs(n=150, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(c, 0.4, (n, 3)) for c in ((0, 0, 0), (5, 0, 0), (0, 5, 0))]) * scale
    return X, np.repeat([0, 1, 2], n)


def test_weighted_ward_with_unit_weights_is_wards_tree():
    X, _ = blobs(40)
    Zf = fastcluster.linkage_vector(X, method="ward")
    Zw = weighted_ward(X, np.ones(len(X)))
    assert np.allclose(np.sort(Zf[:, 2]), np.sort(Zw[:, 2]), atol=1e-9)


def test_weighted_ward_equals_ward_on_duplicated_points():
    # a centroid of weight w behaves like w coincident points: Ward's tree on the expanded data has
    # the same top merges as the weighted tree on the centroids
    rng = np.random.default_rng(1)
    C = rng.normal(size=(12, 2)) * 5
    w = rng.integers(1, 5, 12)
    X = np.repeat(C, w, axis=0)
    top_full = np.sort(fastcluster.linkage_vector(X, method="ward")[:, 2])[-11:]
    top_w = np.sort(weighted_ward(C, w)[:, 2])
    assert np.allclose(top_full, top_w, atol=1e-9)


def test_micro_cluster_ward_recovers_structure():
    X, y = blobs(2000)
    t = WardTree(sample_size=1000, n_micro=200, random_state=0).fit(X)
    assert "micro-clusters" in t.method_
    assert adjusted_rand_score(y, t.cut_k(3)) > 0.99
    e = WardTree(sample_size=10_000).fit(X)
    assert "exact" in e.method_ and adjusted_rand_score(y, e.cut_k(3)) > 0.99


def test_threshold_scan_rescales_or_explains():
    X, y = blobs(100, scale=0.01)
    t = WardTree().fit(X)
    with pytest.raises(WardInputError, match=r"no threshold in \[30.0, 100.0\] cuts the Ward tree"):
        threshold_grid(t, 30.0, 100.0, 8, rescale=False)
    g, rescaled = threshold_grid(t, 30.0, 100.0, 8, rescale=True)
    assert rescaled
    scan = ward_scan(X, t, y, g, random_state=0)
    assert set(scan.columns) == {"threshold", "n_clusters", "silhouette", "calinski_harabasz", "davies_bouldin", "ari_vs_kmeans"}
    assert scan["n_clusters"].max() <= 20 and scan["n_clusters"].min() >= 2
    assert scan.filter(pl.col("n_clusters") == 3)["ari_vs_kmeans"].max() == 1.0
    with pytest.raises(WardInputError, match="threshold range"):
        threshold_grid(t, 100.0, 30.0)


def test_nestedness():
    km = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert nestedness(km, np.array([0, 0, 0, 0, 1, 1, 1, 1])) == 1.0
    assert nestedness(km, np.array([0, 1, 0, 1, 0, 1, 0, 1])) == 0.5


def _dates(n, start=dt.date(2020, 1, 1)):
    return [start + dt.timedelta(days=i) for i in range(n)]


def test_reference_with_gaps_and_other_dates_is_aligned(tmp_path):
    labels = pl.DataFrame({"date": _dates(100), "secid": 1, "regime": np.repeat([0, 1], 50)})
    ref = pl.DataFrame({"date": _dates(80, dt.date(2020, 1, 21)), "value": np.r_[np.ones(30), np.full(50, 5.0)]})
    ref = ref.filter(pl.int_range(pl.len()) % 3 != 0)       # gaps
    p = tmp_path / "vix.csv"
    ref.rename({"date": "Date", "value": "VALUE"}).write_csv(p)
    r = read_reference(p)
    j, info = align(labels, r, "vix")
    assert info["overlap_days"] == j.height < 100 and 0 < info["overlap_share"] < 1
    a = agreement(j["regime"].to_numpy(), j["value"].to_numpy())
    assert a["spearman"] > 0.9 and a["mean_regime_1"] == 5.0
    with pytest.raises(ValidationInputError, match="no dates in common"):
        align(labels, ref.with_columns(date=pl.col("date") + dt.timedelta(days=400)), "vix")
    (tmp_path / "bad.csv").write_text("day,level\n2020-01-01,1\n")
    with pytest.raises(ValidationInputError, match=r"missing column\(s\) \['date', 'value'\]"):
        read_reference(tmp_path / "bad.csv")


def test_single_regime_labelling_is_explained():
    with pytest.raises(ValidationInputError, match="single-regime labelling: all 30 days are regime 0"):
        agreement(np.zeros(30, int), np.arange(30.0))
    methods = pl.DataFrame({"date": _dates(30), "secid": 1, "method": "flat", "causal": True, "regime": np.zeros(30, np.int64)})
    refs = {"vix": (pl.DataFrame({"date": _dates(30), "value": np.arange(30.0)}), True)}
    val = validate_methods(methods, refs)
    note = val.filter(pl.col("metric") == "spearman_vix")["note"][0]
    assert "single-regime labelling" in note


def test_truth_scores_and_ordering():
    t = np.array([0, 0, 1, 1, 2, 2])
    est = np.array([2, 2, 0, 0, 1, 1])
    assert truth_scores(est, t) == {"ari_truth": 1.0, "accuracy_truth": 1.0}
    assert order_labels(est, np.array([1.0, 1, 5, 5, 9, 9]))[0].tolist() == [0, 0, 1, 1, 2, 2]
    p = persistence(np.array([0] * 10 + [1] * 10), _dates(20))
    assert p["mean_duration"] == 10 and p["persistence"] == pytest.approx(0.95)


def test_hmm_filtered_labels_do_not_look_ahead():
    rng = np.random.default_rng(0)
    s = np.repeat([0, 1, 0, 1], 50)
    X = np.array([[0.0], [4.0]])[s] + rng.normal(0, 0.5, (200, 1))
    f, sm, m = hmm_regimes(X, 2, random_state=0)
    assert adjusted_rand_score(s, sm) > 0.95
    # the filtered label of day t is the forward recursion up to t: recomputing it on X[:t+1] with the
    # same parameters gives the same label
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal
    t = 120
    logb = np.column_stack([multivariate_normal(m.means_[i], m.covars_[i]).logpdf(X[: t + 1]) for i in range(2)])
    a = np.log(m.startprob_) + logb[0]
    for u in range(1, t + 1):
        a = logsumexp(a[:, None] + np.log(m.transmat_), axis=0) + logb[u]
    assert np.argmax(a) == f[t]


def test_hmm_and_jump_models_take_a_random_state_object():
    "A RandomState seeds the HMM and the jump model like an int: the same state gives the same labels, none is dropped."
    from volregime.validate import jump_regimes
    rng = np.random.default_rng(1)
    s = np.repeat([0, 1, 0, 1], 40)
    X = np.array([[0.0, 0.0], [3.0, 1.0]])[s] + rng.normal(0, 0.4, (160, 2))
    a = hmm_regimes(X, 2, random_state=np.random.RandomState(5))
    b = hmm_regimes(X, 2, random_state=np.random.RandomState(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and adjusted_rand_score(s, a[1]) > 0.9
    j1 = jump_regimes(X, 2, 10.0, random_state=np.random.RandomState(3))
    j2 = jump_regimes(X, 2, 10.0, random_state=np.random.RandomState(3))
    assert np.array_equal(j1[1], j2[1]) and adjusted_rand_score(s, j1[1]) > 0.9


def test_ward_regimes_are_ordered_like_kmeans():
    from volregime.scan import RegimeKMeans
    from volregime.wardtree import WardRegimes
    X, y = blobs()
    order = X[:, 1] - X[:, 0]        # by this ordering the (5, 0) blob is calm (regime 0), the (0, 5) blob stressed
    w = WardRegimes(3).fit(X, order_values=order)
    k = RegimeKMeans(3, random_state=0).fit(X, order_values=order)
    assert adjusted_rand_score(w.labels_, k.labels_) == 1.0 and np.array_equal(w.labels_, k.labels_)
    assert w.labels_[y == 1].max() == 0 and w.labels_[y == 2].min() == 2


def test_causal_labels_do_not_change_when_later_data_arrives(tmp_path):
    "Stages 01-03 on a two-and-a-half-year market; stage 04's causal labels of every day up to T are the same on data ending at T."
    import shutil
    from volregime.core import Artifacts, merge_params
    from volregime.robustness import stage_runners
    from volregime.validate import daily_methods
    p = merge_params("smoke", sets=["start=2018-01-02", "end=2020-06-30", "n_contracts=40", "granularities=[day]"])
    full = Artifacts(tmp_path / "full")
    for stage, (cls, fn) in list(stage_runners().items())[:3]: fn(full, cls.from_dict(p))
    cut = Artifacts(tmp_path / "cut")
    shutil.copytree(full.data_dir, cut.data_dir)
    T = dt.date(2019, 6, 28)
    pl.read_parquet(full.features_daily).filter(pl.col("date") <= T).write_parquet(cut.features_daily)
    every = daily_methods(full, random_state=0)
    a = every.filter(pl.col("label_kind") == "causal")
    b = daily_methods(cut, random_state=0).filter(pl.col("label_kind") == "causal")
    assert b["date"].max() == T and a["date"].max() > dt.date(2020, 6, 1)
    joined = b.join(a, on=["date", "secid", "method"], how="left", suffix="_later")
    assert joined["regime_later"].null_count() == 0 and len(joined) == len(b) > 3 * 200
    assert (joined["regime"] == joined["regime_later"]).all()
    # the in-sample filtered labels, by contrast, move: their models saw the later data
    ia = every.filter(pl.col("label_kind") == "filtered_insample")
    assert ia["date"].min() < b["date"].min()          # and cover the first months, which have no causal label
