"""Features: surface measures against a slow reference, tracking the truth, forward differences, edge days."""
from __future__ import annotations

import logging
import math

import numpy as np
import polars as pl
import pytest

from volregime.features import SurfaceFilters, apply_filters, build_features, per_expiry, underlying_frame
from volregime.ingest import ingest_local
from volregime.synth import write_exports


@pytest.fixture(scope="module")
def feat(tmp_path_factory, market):
    d = tmp_path_factory.mktemp("feat")
    write_exports(market, d / "exp", "parquet")
    ingest_local(d / "exp", d, None, None, None)
    build_features(d)
    return d


# ---- a slow, obviously correct reference: plain numpy loops over a few days

def _interp(x1, y1, x2, y2, x):
    return y1 + (y2 - y1) * (x - x1) / (x2 - x1)


def reference_smile(k, iv, cp, bid, offer, vega, dte, min_quotes=5):
    "(ATM, 25d put, 25d call) of the WLS quadratic in x = k/sqrt(T) on out-of-the-money quotes, by np.polyfit; None: no fit."
    T = dte / 365
    otm = np.array([(c == "P" and kk < 0) or (c == "C" and kk >= 0) for c, kk in zip(cp, k)])
    x, y = k[otm] / math.sqrt(T), iv[otm]
    sq = np.clip((offer[otm] - bid[otm]) / 2 / vega[otm], 0.0005, 0.05)
    sq = np.where(np.isfinite(sq), sq, 0.01)
    if len(x) < min_quotes or not (x.min() < 0 < x.max()): return None
    b2, b1, b0 = np.polyfit(x, y, 2, w=1 / sq)   # polyfit's weights multiply residuals: 1/sigma for 1/sigma^2 in the loss
    f = lambda z: b0 + b1 * z + b2 * z * z
    xc, xp = 0.6744897501960817 * b0, -0.6744897501960817 * b0
    for _ in range(4):
        xc, xp = 0.6744897501960817 * f(xc) + f(xc) ** 2 * math.sqrt(T) / 2, -0.6744897501960817 * f(xp) + f(xp) ** 2 * math.sqrt(T) / 2
    reach = 0.25 * (x.max() - x.min())
    return b0, (f(xp) if xp >= x.min() - reach else None), (f(xc) if xc <= x.max() + reach else None)


def reference_day(rows: pl.DataFrame, close_raw: float, target=30):
    "ATM IV, 25d put and call IV at `target` days for one secid-day, from raw option rows."
    per_exp = []
    for ex in sorted(set(rows["exdate"].to_list())):
        r = rows.filter(pl.col("exdate") == ex)
        r = r.filter((pl.col("best_bid") > 0) & pl.col("impl_volatility").is_not_null()
                     & ((pl.col("exdate") - pl.col("date")).dt.total_days() >= 7)
                     & (pl.col("delta").abs() >= 0.05) & (pl.col("delta").abs() <= 0.95))
        if r.is_empty(): continue
        dte = (ex - r["date"][0]).days
        fwd = r["forward_price"].to_numpy()
        fwd = np.where(np.isnan(fwd), close_raw, fwd)
        K = r["strike_price"].to_numpy() / 1000.0
        k = np.log(K / fwd)
        iv, delta, cp = r["impl_volatility"].to_numpy(), r["delta"].to_numpy(), r["cp_flag"].to_list()
        below = [(k[i], iv[i]) for i in range(len(k)) if cp[i] == "P" and k[i] < 0]
        above = [(k[i], iv[i]) for i in range(len(k)) if cp[i] == "C" and k[i] >= 0]
        atm = None
        if below and above:
            k1, v1 = max(below); k2, v2 = min(above)
            atm = v2 if k2 == 0 else _interp(k1, v1, k2, v2, 0.0)
        def wing(flag, target_delta):
            pts = sorted((delta[i], iv[i]) for i in range(len(k)) if cp[i] == flag)
            lo = [p for p in pts if p[0] <= target_delta] if flag == "P" else [p for p in pts if p[0] >= target_delta]
            hi = [p for p in pts if p[0] > target_delta] if flag == "P" else [p for p in pts if p[0] < target_delta]
            near_lo = sorted(lo, reverse=flag == "P")     # nearest to the target first
            near_hi = sorted(hi, reverse=flag == "C")
            if lo and hi: v = _interp(near_lo[0][0], near_lo[0][1], near_hi[0][0], near_hi[0][1], target_delta)
            else:   # one side unquoted: the line through the two nearest quotes on the other, if within 0.10 delta
                side = near_lo or near_hi
                if len(side) < 2 or abs(side[0][0] - target_delta) > 0.10 or side[0][0] == side[1][0]: return None
                v = _interp(side[1][0], side[1][1], side[0][0], side[0][1], target_delta)
            return v if v > 0 else None
        p25, c25 = wing("P", -0.25), wing("C", 0.25)
        fit = reference_smile(k, iv, cp, r["best_bid"].to_numpy(), r["best_offer"].to_numpy(), r["vega"].to_numpy(), dte)
        if fit is not None: atm, p25, c25 = fit   # the fitted smile where an expiry has one; the two-point values otherwise
        per_exp.append((dte, atm, p25, c25))
    out = []
    for j in (1, 2, 3):
        pts = [(d, p[j]) for d, *rest in per_exp for p in [(d, *rest)] if p[j] is not None]
        lo = [p for p in pts if p[0] <= target]; hi = [p for p in pts if p[0] > target]
        if lo and lo[-1][0] == target: out.append(lo[-1][1]); continue
        if not lo or not hi: out.append(None); continue
        (d1, s1), (d2, s2) = max(lo), min(hi)
        T, T1, T2 = target / 365, d1 / 365, d2 / 365
        out.append(math.sqrt(_interp(T1, s1 ** 2 * T1, T2, s2 ** 2 * T2, T) / T))
    return out


def test_surface_matches_slow_reference(feat):
    daily = pl.read_parquet(feat / "features" / "daily.parquet")
    raw = pl.read_parquet(feat / "raw" / "opprcd" / "**" / "*.parquet", hive_partitioning=False)
    under = underlying_frame(feat / "raw")
    days = daily.filter(pl.col("atm_iv_30d").is_not_null()).sample(6, seed=1).select("secid", "date")
    # and days where an expiry's 25-delta wing had to be extrapolated (one side of 25 delta unquoted)
    spot = under.lazy().select("secid", "date", "close_raw")
    exp = per_expiry(apply_filters(raw.lazy(), SurfaceFilters()), spot).collect()
    wx = exp.filter(pl.col("wing_extrapolated") > 0).select("secid", "date").unique().sort("date")
    assert wx.height > 0, "the fixture market has no extrapolated wing to check"
    days = pl.concat([days, wx.head(4)]).join(daily.filter(pl.col("skew_25d").is_not_null()).select("secid", "date"), on=["secid", "date"])
    for secid, date in days.iter_rows():
        rows = raw.filter((pl.col("secid") == secid) & (pl.col("date") == date))
        close_raw = under.filter((pl.col("secid") == secid) & (pl.col("date") == date))["close_raw"][0]
        atm, p25, c25 = reference_day(rows, close_raw)
        got = daily.filter((pl.col("secid") == secid) & (pl.col("date") == date)).row(0, named=True)
        assert abs(got["atm_iv_30d"] - atm) < 1e-8
        assert abs(got["skew_25d"] - (p25 - c25)) < 1e-8
        assert abs(got["curvature_25d"] - ((p25 + c25) / 2 - atm)) < 1e-8


def test_fitted_smiles_beat_two_points_and_their_errors_are_honest(tmp_path):
    "On a noisy monthly chain: the fitted 30-day ATM IV is closer to the truth than the two-point one, its standard error the size of its error."
    from dataclasses import replace
    from volregime.features import constant_maturity, expiry_smiles
    from volregime.synth import MarketSpec, simulate_market
    m = simulate_market("2018-01-02", "2018-12-31", ["SPY"], n_contracts=300, seed=4,
                        spec=replace(MarketSpec(), expiry_schedule="monthly", iv_noise_spread=1.5))
    write_exports(m, tmp_path / "exp", "parquet")
    ingest_local(tmp_path / "exp", tmp_path, None, None, None)
    under = underlying_frame(tmp_path / "raw")
    q = apply_filters(pl.scan_parquet(tmp_path / "raw" / "opprcd" / "**" / "*.parquet"), SurfaceFilters())
    spot = under.lazy().select("secid", "date", "close_raw")
    truth = m.truth.select("date", "secid", pl.col("atm_iv_30d").alias("true"))
    err = {}
    for name, exp in (("two-point", per_expiry(q, spot).collect()), ("fit", expiry_smiles(q, spot))):
        cm = constant_maturity(exp.lazy(), "atm_iv", 30).collect().join(truth, on=["date", "secid"]).drop_nulls("atm_iv_30d")
        err[name] = float(((cm["atm_iv_30d"] - cm["true"]) ** 2).mean() ** 0.5)
    assert err["fit"] < 0.8 * err["two-point"], err
    build_features(tmp_path, options=False)
    d = pl.read_parquet(tmp_path / "features" / "daily.parquet").join(truth, on=["date", "secid"])
    d = d.filter(pl.col("surface_note") == "interpolated").drop_nulls("atm_iv_30d_se")
    rmse, se = float(((d["atm_iv_30d"] - d["true"]) ** 2).mean() ** 0.5), float((d["atm_iv_30d_se"] ** 2).mean() ** 0.5)
    assert d.height > 150 and 0.5 < rmse / se < 2.5, (rmse, se)   # the truth's own model error keeps the ratio above 1


def test_atm_iv_tracks_the_true_30_day_atm_vol(tmp_path):
    from volregime.synth import simulate_market
    m = simulate_market("2018-01-02", "2019-12-31", ["SPY"], n_contracts=200, seed=5)
    write_exports(m, tmp_path / "exp", "parquet")
    ingest_local(tmp_path / "exp", tmp_path, None, None, None)
    build_features(tmp_path, options=False)
    d = pl.read_parquet(tmp_path / "features" / "daily.parquet").join(
        m.truth.rename({"atm_iv_30d": "true"}), on=["date", "secid"]).drop_nulls("atm_iv_30d")
    assert d.height > 450
    assert np.corrcoef(d["atm_iv_30d"], d["true"])[0, 1] >= 0.98


def test_forward_differences_by_hand(feat):
    opt = pl.read_parquet(feat / "features" / "options.parquet")
    sec = pl.read_parquet(feat / "raw" / "dsf.parquet").filter(pl.col("secid") == 107899).sort("date")
    adj = (sec["prc"].abs() / sec["cfacpr"]).to_numpy()
    dates = sec["date"].to_list()
    for i in (0, 10, len(dates) - 5):
        row = opt.filter((pl.col("secid") == 107899) & (pl.col("date") == dates[i])).row(0, named=True)
        for n in (1, 2, 3, 5, 8, 13, 21, 34):
            want = adj[i + n] - adj[i] if i + n < len(adj) else None
            if want is None: assert row[f"price_diff_{n}d"] is None
            else: assert abs(row[f"price_diff_{n}d"] - want) < 1e-9
    # the second ticker splits 2:1 mid-sample: adjusted differences do not jump, moneyness uses the traded price
    d1 = opt.filter(pl.col("secid") == 107899).group_by("date").agg(pl.col("price_diff_1d").first()).sort("date")["price_diff_1d"].drop_nulls()
    assert d1.abs().max() < 0.2 * adj.mean()
    assert opt.filter(pl.col("secid") == 107899)["moneyness"].is_between(0.5, 1.5).all()


def test_volume_ma5_is_causal(feat):
    opt = pl.read_parquet(feat / "features" / "options.parquet").sort("optionid", "date")
    oid = opt.group_by("optionid").len().sort("len", descending=True)["optionid"][0]
    o = opt.filter(pl.col("optionid") == oid)
    v = o["volume"].to_numpy().astype(float)
    assert abs(o["volume_ma5"][0] - v[0]) < 1e-12
    assert abs(o["volume_ma5"][1] - v[:2].mean()) < 1e-12


def test_edge_days_are_explicit_nulls_with_reasons(tmp_path, market, caplog):
    write_exports(market, tmp_path / "exp", "parquet")
    op = pl.read_parquet(tmp_path / "exp" / "opprcd2019.parquet")
    days = sorted(op["date"].unique().to_list())
    d_none, d_single, d_noiv = days[5], days[6], days[7]
    first_exp = op.filter(pl.col("date") == d_single).sort("exdate")["exdate"][-1]
    op = (op.filter(pl.col("date") != d_none)
          .filter(~((pl.col("date") == d_single) & (pl.col("exdate") != first_exp)))
          .with_columns(impl_volatility=pl.when(pl.col("date") == d_noiv).then(None).otherwise(pl.col("impl_volatility"))))
    op.write_parquet(tmp_path / "exp" / "opprcd2019.parquet")
    ingest_local(tmp_path / "exp", tmp_path, None, None, None)
    logging.getLogger("volregime").propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="volregime"):
            build_features(tmp_path, surface_source="opprcd")
    finally:
        logging.getLogger("volregime").propagate = False
    daily = pl.read_parquet(tmp_path / "features" / "daily.parquet").filter(pl.col("secid") == 109820)
    note = dict(zip(daily["date"].to_list(), daily["surface_note"].to_list()))
    val = dict(zip(daily["date"].to_list(), daily["atm_iv_30d"].to_list()))
    assert note[d_none] == "missing: no options" and val[d_none] is None
    assert note[d_single].startswith("missing: nearest usable expiry") and val[d_single] is None   # one expiry, a year out
    assert note[d_noiv] == "missing: all IV missing" and val[d_noiv] is None
    made = daily.filter(~pl.col("surface_note").str.starts_with("missing"))
    assert made["atm_iv_30d"].null_count() == 0 and set(made["surface_note"]) <= {"interpolated", "vsurfd"} | {
        n for n in made["surface_note"] if n.startswith("extrapolated")}
    assert "no options" in caplog.text and "all IV missing" in caplog.text
    # and never a silent zero
    assert (daily["atm_iv_30d"].drop_nulls() > 0).all()
    # with surface_source=auto the standardised surface fills what the quotes cannot give, and says so
    build_features(tmp_path, options=False)
    auto = pl.read_parquet(tmp_path / "features" / "daily.parquet").filter(pl.col("secid") == 109820)
    row = auto.filter(pl.col("date") == d_none).row(0, named=True)
    assert (row["surface_note"], row["surface_source"]) == ("vsurfd (missing: no options)", "vsurfd") and row["atm_iv_30d"] > 0
    assert auto.filter(pl.col("date") == days[20])["surface_source"].item() == "opprcd"


def test_vsurfd_only_extract_is_enough_for_daily(tmp_path, market):
    write_exports(market, tmp_path / "exp", "parquet")
    for p in (tmp_path / "exp").glob("opprcd*.parquet"): p.unlink()
    ingest_local(tmp_path / "exp", tmp_path, None, None, None)
    s = build_features(tmp_path)
    d = pl.read_parquet(tmp_path / "features" / "daily.parquet")
    assert s.option_rows == 0 and d["surface_source"].unique().to_list() == ["vsurfd"]
    assert d["atm_iv_30d"].null_count() == 0 and d["skew_25d"].drop_nulls().min() > 0
    t = d.join(market.truth.rename({"atm_iv_30d": "true"}), on=["date", "secid"])
    assert np.corrcoef(t["atm_iv_30d"], t["true"])[0, 1] > 0.98


def test_filters_are_counted_and_configurable(feat):
    from volregime.features import filter_counts
    op = pl.scan_parquet(feat / "raw" / "opprcd" / "**" / "*.parquet", hive_partitioning=True)
    on = filter_counts(op, SurfaceFilters())
    off = filter_counts(op, SurfaceFilters(drop_zero_bid=False, min_dte=0, min_abs_delta=0.0, max_abs_delta=1.0))
    c = dict(zip(on["filter"], on["rows"]))
    assert c["zero best bid"] > 0 and c["missing IV"] > 0 and c["dte < 7"] >= 0
    assert c["rows"] == sum(v for k, v in c.items() if k != "rows")
    assert dict(zip(off["filter"], off["rows"]))["kept"] > c["kept"]
    with pytest.raises(ValueError, match="surface_source='nope'"):
        build_features(feat, surface_source="nope")


def test_monthly_expiries_with_outages_keep_the_30_day_surface(tmp_path):
    "Third-Friday expiries only and 2 % outage days, no vsurfd: every day with options has atm_iv_30d, skew and curvature."
    from dataclasses import replace
    from volregime.core import Artifacts
    from volregime.features import SurfaceFilters, daily_features, surface_accuracy, underlying_frame
    from volregime.synth import MarketSpec, simulate_market
    spec = replace(MarketSpec(), expiry_schedule="monthly", outage_share=0.02)
    write_exports(simulate_market("2016-01-04", "2017-12-29", ["AAA"], 120, seed=11, spec=spec), tmp_path / "exp", "parquet")
    for p in (tmp_path / "exp").glob("vsurfd*"): p.unlink()
    ingest_local(tmp_path / "exp", tmp_path / "d", None, None, None)
    art = Artifacts(tmp_path / "d")
    under = underlying_frame(art.raw)
    strict = daily_features(art.raw, under, SurfaceFilters(max_extrapolation_days=0))   # interpolation only
    daily = daily_features(art.raw, under, SurfaceFilters())
    with_options = daily.filter(pl.col("surface_note") != "missing: no options")
    assert strict.filter(pl.col("surface_note") != "missing: no options")["atm_iv_30d"].null_count() > 0.1 * with_options.height
    for c in ("atm_iv_30d", "skew_25d", "curvature_25d", "atm_iv_91d"):
        assert with_options[c].null_count() <= 0.01 * with_options.height, c
    assert 0 < daily.height - with_options.height < 0.05 * daily.height      # the outage days: kept, null, said so
    acc = dict((r["how"], r) for r in surface_accuracy(art, daily).iter_rows(named=True))
    assert acc["extrapolated"]["days"] > 20 and acc["extrapolated"]["rmse"] < 3 * acc["interpolated"]["rmse"] + 0.002
