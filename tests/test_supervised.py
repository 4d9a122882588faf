"""Stage 05: causality, train-only scaling, folds and embargo, the DM test, save/load round trip."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from volregime.supervised import (ForecastInputError, KerasForecaster, configure_devices, diebold_mariano, fit_sklearn,
                                  har_forecast, inner_splits_of, load_family, make_sequences, outer_folds, qlike, save_family)


def daily(n=300, seed=0):
    rng = np.random.default_rng(seed)
    iv = 0.2 + 0.05 * np.sin(np.arange(n) / 15) + rng.normal(0, 0.005, n)
    return pl.DataFrame({"date": [dt.date(2018, 1, 1) + dt.timedelta(days=i) for i in range(n)],
                         "atm_iv_30d": iv, "skew_25d": rng.normal(0.05, 0.01, n), "rv_21d": iv * 0.9 + rng.normal(0, 0.01, n)})


FEATS = ["atm_iv_30d", "skew_25d", "rv_21d"]


def test_no_look_ahead():
    d = daily()
    a = make_sequences(d, FEATS, window=10, horizon=5)
    t = 150  # perturb everything after day t: every sample whose last input day is <= t keeps its inputs
    d2 = d.with_columns([pl.when(pl.int_range(pl.len()) > t).then(pl.col(c) * 7 + 1).otherwise(pl.col(c)).alias(c) for c in FEATS])
    b = make_sequences(d2, FEATS, window=10, horizon=5)
    cut = np.datetime64(d["date"][t], "D")
    keep = a.dates <= cut
    assert keep.sum() > 50
    assert np.array_equal(a.X[keep], b.X[keep])
    assert np.array_equal(a.har[keep], b.har[keep]) and np.array_equal(a.level_now[keep], b.level_now[keep])
    # and the targets of sample t are strictly after t
    i = int(np.flatnonzero(a.dates == cut)[0])
    assert np.allclose(a.y[i], d["atm_iv_30d"].to_numpy()[t + 1:t + 6])


def test_log_target_and_bad_input():
    d = daily()
    s = make_sequences(d, FEATS, window=5, horizon=3, transform="log")
    lvl = make_sequences(d, FEATS, window=5, horizon=3)
    assert np.allclose(np.exp(s.y), lvl.y, rtol=1e-12)          # the log target is the log of the level target, row for row
    i = int(np.flatnonzero(lvl.dates == np.datetime64(d["date"][100], "D"))[0])
    assert np.allclose(np.exp(s.y[i]), d["atm_iv_30d"].to_numpy()[101:104], rtol=1e-12) and s.y.max() < 0
    with pytest.raises(ForecastInputError, match=r"column\(s\) \['nope'\]"):
        make_sequences(d, ["nope"])
    with pytest.raises(ForecastInputError, match="target_transform='sqrt'"):
        make_sequences(d, FEATS, transform="sqrt")


def test_folds_and_embargo():
    dates = np.arange(np.datetime64("2018-01-01"), np.datetime64("2018-01-01") + 600)
    H = 5
    folds = outer_folds(dates, ["2019-01-01", "2018-09-01", "2018-10-01"], H, test_days=60, min_train=200)
    assert [str(f.anchor) for f in folds] == ["2018-09-01", "2019-01-01"]   # 2018-10-01 would overlap the first test window
    for f in folds:
        assert dates[f.test[0]] == f.anchor
        # the last training sample's targets (t+1..t+H) end an embargo of H days before the test starts
        assert f.train[-1] + H + H < f.test[0]
        assert f.train[0] == 0 and len(f.test) == 60
    assert len(folds[1].train) > len(folds[0].train)                           # expanding window
    splits = inner_splits_of(300, 3, H)
    for tr, va in splits:
        assert tr[-1] + H < va[0]


def test_scalers_fit_on_training_rows_only():
    d = daily(400)
    s = make_sequences(d, FEATS, window=10, horizon=5)
    tr = np.arange(200)
    X = s.X.copy(); X[200:] += 100.0                           # the future is wildly different
    splits = inner_splits_of(len(tr), 2, 5)
    est, best = fit_sklearn("ridge", X[tr], s.y[tr], splits)
    scaler = est.regressor_.named_steps["scaler"]
    assert np.allclose(scaler.mean_, X[tr].reshape(len(tr), -1).mean(0))
    assert np.allclose(est.transformer_.data_max_, s.y[tr].max(0))
    configure_devices("none", True, 0)
    # early stopping only: the scalers see the rows before the tail
    kf = KerasForecaster("lstm", units=4, lr=0.01, window=10, epochs=2, patience=1, gap=5, refit_full=False).fit(X[tr], s.y[tr])
    n_val = max(5, int(0.15 * len(tr)))
    fit_rows = np.arange(0, len(tr) - n_val - 5)
    assert np.allclose(kf.feature_scaler_.mean_, X[fit_rows].reshape(-1, X.shape[-1]).mean(0))
    assert np.allclose(kf.target_scaler_.data_max_, s.y[fit_rows].max(0))
    # the default refit: every training row, still nothing after them
    kf = KerasForecaster("lstm", units=4, lr=0.01, window=10, epochs=2, patience=1, gap=5).fit(X[tr], s.y[tr])
    assert kf.refit_rows_ == len(tr)
    assert np.allclose(kf.feature_scaler_.mean_, X[tr].reshape(-1, X.shape[-1]).mean(0))
    assert np.allclose(kf.target_scaler_.data_max_, s.y[tr].max(0))


def test_diebold_mariano_against_a_hand_computed_value():
    e1 = np.array([0.5, -0.3, 0.2, 0.4, -0.1, 0.3, -0.2, 0.1, 0.2, -0.4, 0.1, -0.2])
    e2 = np.array([0.8, -0.6, 0.1, 0.9, -0.5, 0.7, -0.3, 0.4, 0.6, -0.2, 0.5, -0.6])
    h = 2
    # by hand, step by step: the AR(1) prewhitening with Kendall's correction, Andrews' bandwidth on the residuals,
    # the Bartlett long-run variance recoloured, the fixed-b scaling and Student's t
    d = [a * a - b * b for a, b in zip(e1, e2)]
    T = len(d); mean = sum(d) / T; u = [x - mean for x in d]
    rho = sum(u[i] * u[i - 1] for i in range(1, T)) / sum(u[i - 1] ** 2 for i in range(1, T))
    rho = max(-0.97, min(0.97, rho + (1 + 3 * rho) / T))
    e = [u[i] - rho * u[i - 1] for i in range(1, T)]
    n = len(e)
    r = max(-0.97, min(0.97, sum(e[i] * e[i - 1] for i in range(1, n)) / sum(e[i - 1] ** 2 for i in range(1, n))))
    M = min(max(h - 1, 1.1447 * (4 * r * r / ((1 - r) ** 2 * (1 + r) ** 2) * n) ** (1 / 3)), n - 1)
    lrv = sum(x * x for x in e) / n + sum(2 * (1 - k / (M + 1)) * sum(e[i] * e[i - k] for i in range(k, n)) / n for k in range(1, int(M) + 1))
    lrv /= (1 - rho) ** 2
    b = (M + 1) / T
    z = mean / math.sqrt(lrv / T) * 1.96 / (1.96 + 2.9694 * b + 0.4160 * b * b - 0.5324 * b ** 3)
    from scipy.stats import t as student
    p = 2 * (1 - student.cdf(abs(z), T - 1))
    got_dm, got_p = diebold_mariano(e1, e2, h)
    assert abs(got_dm - z) < 1e-10 and abs(got_p - p) < 1e-10
    assert got_dm < 0                        # e1 has the smaller losses
    assert qlike(np.array([0.2, 0.3]), np.array([0.2, 0.3])) == 0.0


def test_diebold_mariano_holds_its_size_where_the_h_minus_1_cut_does_not():
    # AR(1) loss differentials, phi = 0.8, T = 63, h = 5, true mean zero; nominal 5 %
    from scipy.stats import t as student
    rs = np.random.RandomState(11)
    ours = old = 0
    n_rep = 1500
    for _ in range(n_rep):
        x = rs.normal(size=163); dd = np.zeros_like(x)
        for t in range(1, 163): dd[t] = 0.8 * dd[t - 1] + x[t]
        dd = dd[100:]
        ours += diebold_mariano(dd, np.zeros_like(dd), 5, loss="given")[1] < 0.05
        # the former test: h - 1 autocovariances and the HLN factor
        T, m = len(dd), dd.mean()
        g = [np.sum((dd[k:] - m) * (dd[:T - k] - m)) / T for k in range(5)]
        st = m / np.sqrt((g[0] + 2 * sum(g[1:])) / T) * np.sqrt((T + 1 - 10 + 20 / T) / T)
        old += 2 * student.sf(abs(st), T - 1) < 0.05
    assert 0.03 <= ours / n_rep <= 0.08, ours / n_rep
    assert old / n_rep > 0.12, old / n_rep


def test_har_beats_nothing_it_should_not():
    d = daily(400)
    s = make_sequences(d, FEATS, window=5, horizon=3)
    tr, te = np.arange(250), np.arange(260, 300)
    f = har_forecast(s, tr, te)
    assert f.shape == (40, 3) and np.isfinite(f).all()


def test_save_and_load_round_trip(tmp_path):
    d = daily(300)
    s = make_sequences(d, FEATS, window=10, horizon=5)
    configure_devices("none", True, 0)
    kf = KerasForecaster("lstm", units=4, lr=0.01, window=10, epochs=2, patience=1).fit(s.X[:200], s.y[:200])
    m = pl.DataFrame({"model": ["lstm"], "rmse": [0.1]})
    folder = save_family(tmp_path, "lstm", kf, {"units": 4}, m, m)
    for f in ("model.keras", "lstm_model.h5", "feature_scaler.pkl", "target_scaler.pkl", "training_history.csv", "metrics.csv", "predictions.csv"):
        assert (folder / f).exists(), f
    back = load_family(folder)
    assert isinstance(back, KerasForecaster) and back.get_params() == kf.get_params()
    assert np.allclose(back.predict(s.X[200:210]), kf.predict(s.X[200:210]), atol=1e-6)
    import keras
    h5 = keras.models.load_model(folder / "lstm_model.h5")
    assert np.allclose(h5.predict(np.zeros((2, 10, 3)), verbose=0), kf.model_.predict(np.zeros((2, 10, 3)), verbose=0), atol=1e-6)
    est, best = fit_sklearn("ridge", s.X[:200], s.y[:200], inner_splits_of(200, 2, 5))
    f2 = save_family(tmp_path, "ridge", est, best, m, m)
    assert np.allclose(load_family(f2).predict(s.X[200:205].reshape(5, -1)), est.predict(s.X[200:205].reshape(5, -1)))
