"""Stage 06 against a real PostgreSQL: both paths, filters, downsampling, atomic replace, idempotent append, safety."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sqlalchemy import create_engine, text

from conftest import volregime_cli
from volregime import db
from volregime.db import LoadError, load_results


@pytest.fixture(scope="module")
def regimes_parquet(tmp_path_factory):
    "Option-level rows in the stage-03 layout over 3 years, uneven rows per day."
    rng = np.random.default_rng(0)
    days = [dt.date(2019, 1, 1) + dt.timedelta(days=i) for i in range(0, 3 * 365, 2)]
    n_per = rng.integers(20, 60, len(days))
    date = np.repeat(np.array(days, dtype="datetime64[D]"), n_per)
    n = len(date)
    df = pl.DataFrame({"Date": date, "SECID": np.full(n, 109820), "optionid": np.arange(n), "Impl_Volatility": rng.uniform(0.1, 0.5, n),
                       "Delta": rng.uniform(-1, 1, n), "Volume": rng.integers(0, 100, n), "Price_Diff_5d": rng.normal(size=n),
                       "pca_component_1": rng.normal(size=n), "pca_component_2": rng.normal(size=n), "cluster": rng.integers(0, 4, n),
                       "not_whitelisted": rng.normal(size=n)})
    p = tmp_path_factory.mktemp("load") / "regimes.parquet"
    df.write_parquet(p)
    return p, df


def read(uri, sql):
    eng = create_engine(uri)
    with eng.connect() as c:
        out = c.execute(text(sql)).fetchall()
    eng.dispose()
    return out


@pytest.mark.parametrize("method,threshold,conns", [("adbc", 1, 2), ("adbc", 1, 3), ("copy", 1, 2), ("copy", 1, 1), ("adbc", 10**9, 2)])
def test_both_paths_load_the_whitelist(pg_uri, regimes_parquet, method, threshold, conns):
    p, df = regimes_parquet
    s = load_results(p, pg_uri, table=f"t_{method}_{threshold}", schema="vr_test", copy_threshold=threshold, copy_chunksize=5000,
                     to_sql_chunksize=2000, method=method, progress=False, copy_connections=conns)
    assert s.method == ("to_sql" if threshold > 1 else method) and s.rows == df.height
    cols = [r[0] for r in read(pg_uri, f"SELECT column_name FROM information_schema.columns WHERE table_schema='vr_test' "
                                       f"AND table_name='t_{method}_{threshold}' ORDER BY ordinal_position")]
    assert cols == ["date", "cluster", "secid", "optionid", "impl_volatility", "delta", "volume", "price_diff_5d",
                    "pca_component_1", "pca_component_2"]
    got = read(pg_uri, f"SELECT sum(impl_volatility), count(*), min(date) FROM vr_test.t_{method}_{threshold}")[0]
    assert abs(got[0] - df["Impl_Volatility"].sum()) < 1e-6 and got[1] == df.height and got[2] == df["Date"].min()
    ix = [r[0] for r in read(pg_uri, f"SELECT indexname FROM pg_indexes WHERE schemaname='vr_test' AND tablename='t_{method}_{threshold}'")]
    assert any("date_cluster" in i for i in ix)


def test_last_years_and_downsample(pg_uri, regimes_parquet):
    p, df = regimes_parquet
    s = load_results(p, pg_uri, table="t_filtered", schema="vr_test", last_years=1, downsample_pct=10, copy_threshold=1, progress=False)
    last = df["Date"].max()
    cut = last.replace(year=last.year - 1)
    per_day_src = df.filter(pl.col("Date") > cut).group_by("Date").len().rename({"Date": "date", "len": "n"})
    rows = read(pg_uri, "SELECT date, count(*) FROM vr_test.t_filtered GROUP BY date")
    got = pl.DataFrame(rows, schema=["date", "k"], orient="row")
    assert got["date"].min() > cut
    j = per_day_src.join(got, on="date", how="left").with_columns(pl.col("k").fill_null(0))
    assert (abs(j["k"] - j["n"] * 0.10) <= 1).all(), "within +-1 row of 10% on every day"
    assert s.rows == j["k"].sum()
    s2 = load_results(p, pg_uri, table="t_filtered2", schema="vr_test", last_years=1, downsample_pct=10, copy_threshold=1, progress=False)
    same = read(pg_uri, "SELECT count(*) FROM vr_test.t_filtered a JOIN vr_test.t_filtered2 b USING (optionid)")[0][0]
    assert same == s.rows == s2.rows, "the same seed samples the same rows"


def test_replace_is_atomic_under_a_failure_mid_copy(pg_uri, regimes_parquet):
    p, df = regimes_parquet
    load_results(p, pg_uri, table="t_atomic", schema="vr_test", copy_threshold=1, progress=False)
    before = read(pg_uri, "SELECT count(*), sum(impl_volatility) FROM vr_test.t_atomic")[0]
    small = df.head(30000)
    p2 = p.parent / "other.parquet"
    small.with_columns(pl.col("Impl_Volatility") * 2).write_parquet(p2)
    db._Fail.after_rows = 10000
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            load_results(p2, pg_uri, table="t_atomic", schema="vr_test", copy_threshold=1, copy_chunksize=5000, progress=False)
    finally:
        db._Fail.after_rows = None
    assert read(pg_uri, "SELECT count(*), sum(impl_volatility) FROM vr_test.t_atomic")[0] == before
    assert read(pg_uri, f"SELECT to_regclass('vr_test.{db.staging_name('t_atomic')}')")[0][0] is None


def test_append_is_idempotent(pg_uri, regimes_parquet):
    p, df = regimes_parquet
    load_results(p, pg_uri, table="t_append", schema="vr_test", if_exists="append", copy_threshold=1, progress=False)
    s = load_results(p, pg_uri, table="t_append", schema="vr_test", if_exists="append", copy_threshold=1, progress=False)
    assert s.rows == 0
    assert read(pg_uri, "SELECT count(*) FROM vr_test.t_append")[0][0] == df.height


def test_injection_and_bad_parquet_are_refused(pg_uri, regimes_parquet, tmp_path):
    with pytest.raises(LoadError, match="--copy-connections 0"):
        load_results(regimes_parquet[0], pg_uri, table="t_conn", schema="vr_test", copy_threshold=1, copy_connections=0, progress=False)
    p, df = regimes_parquet
    with pytest.raises(LoadError, match="table 'x; drop table y' is not a valid SQL identifier"):
        load_results(p, pg_uri, table="x; drop table y", progress=False)
    with pytest.raises(LoadError, match="schema 'public\"; --' is not a valid SQL identifier"):
        load_results(p, pg_uri, schema='public"; --', progress=False)
    with pytest.raises(LoadError, match="--create-index: column 'nope'"):
        load_results(p, pg_uri, table="t_ix", create_index="date,nope", progress=False)
    df.drop("Date").write_parquet(tmp_path / "nodate.parquet")
    with pytest.raises(LoadError, match="nodate.parquet: no 'date' column"):
        load_results(tmp_path / "nodate.parquet", pg_uri, progress=False)
    df.select("Date", "not_whitelisted").write_parquet(tmp_path / "nowl.parquet")
    with pytest.raises(LoadError, match="none of the whitelisted columns"):
        load_results(tmp_path / "nowl.parquet", pg_uri, progress=False)


def test_cli_load_masks_the_password(pg_uri, regimes_parquet):
    p, _ = regimes_parquet
    r = volregime_cli("load", "--parquet", str(p), "--postgres-uri", pg_uri, "--table", "t_cli", "--schema", "vr_test",
                      "--last-years", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "vr_test.t_cli" in r.stdout
    r = volregime_cli("load", "--parquet", str(p), "--postgres-uri", "postgresql://u:sekret@127.0.0.1:1/x", "--table", "t", "--no-progress")
    assert r.returncode == 3 and "cannot reach the database" in r.stderr and "sekret" not in r.stdout + r.stderr
    for uri in ("postgresql://postgres:Fail@PW789@127.0.0.1:1/x", "postgresql://postgres:Fa%3Ail%2FPW789@127.0.0.1:1/x"):
        r = volregime_cli("load", "--parquet", str(p), "--postgres-uri", uri, "--table", "t", "--no-progress")
        out = r.stdout + r.stderr
        assert r.returncode in (2, 3) and "PW789" not in out and "Fail" not in out, out
    r = volregime_cli("load", "--parquet", str(p), "--table", "bad name", "--postgres-uri", pg_uri)
    assert r.returncode == 2 and "not a valid SQL identifier" in r.stderr


def test_daily_regimes_carry_the_close_for_the_timeline(pg_uri, tmp_path):
    "regime_daily holds the underlying's close and ATM IV from stage 02, so the dashboard needs only the database."
    days = pl.date_range(dt.date(2020, 1, 2), dt.date(2020, 3, 31), eager=True)
    (tmp_path / "regimes").mkdir(); (tmp_path / "features").mkdir()
    pl.DataFrame({"date": days, "secid": 109820, "regime": np.arange(len(days)) % 3, "share_0": 0.5, "share_1": 0.5}) \
      .write_parquet(tmp_path / "regimes" / "daily.parquet")
    feats = pl.DataFrame({"date": days[1:], "secid": 109820, "close": 300.0 + np.arange(len(days) - 1), "atm_iv_30d": 0.2, "skew_25d": 0.01})
    feats.write_parquet(tmp_path / "features" / "daily.parquet")
    s = db.load_daily(tmp_path, pg_uri, "vr_daily")
    assert s.rows == len(days)
    got = pl.DataFrame(read(pg_uri, "select date, close, atm_iv_30d from vr_daily.regime_daily order by date"),
                       schema=["date", "close", "atm_iv_30d"], orient="row")
    assert got["close"][0] is None and got["close"][1:].to_list() == feats["close"].to_list()   # a day without features: null
    assert got["atm_iv_30d"][1:].to_list() == [0.2] * (len(days) - 1)
    cols = [r[0] for r in read(pg_uri, "select column_name from information_schema.columns where table_schema = 'vr_daily' "
                                        "and table_name = 'regime_daily'")]
    assert "skew_25d" not in cols   # only what the timeline draws


def test_recommended_forecasts_load_beside_persistence(pg_uri, tmp_path):
    "Stage 05's recommended forecasts reach forecast_recommended: every row, the model chosen and persistence beside it."
    days = pl.date_range(dt.date(2020, 1, 2), dt.date(2020, 2, 28), eager=True)
    (tmp_path / "models").mkdir()
    rec = pl.concat([pl.DataFrame({"date": days, "horizon": h, "fold": 0, "anchor": "2020-01-02", "model": m, "reason": "r",
                                   "y_true": 0.2 + 0.001 * np.arange(len(days)), "y_pred": 0.2, "persistence": 0.21, "secid": 109820})
                     for h, m in ((1, "persistence"), (21, "ridge"))])
    rec.write_parquet(tmp_path / "models" / "recommended.parquet")
    s = db.load_recommended(tmp_path, pg_uri, "vr_rec")
    assert s.rows == rec.height
    got = read(pg_uri, "select horizon, model, count(*) from vr_rec.forecast_recommended group by 1, 2 order by 1")
    assert [tuple(r) for r in got] == [(1, "persistence", len(days)), (21, "ridge", len(days))]
    assert db.load_recommended(tmp_path / "elsewhere", pg_uri, "vr_rec") is None   # no stage 05 there: nothing, and the table stays
    assert read(pg_uri, "select count(*) from vr_rec.forecast_recommended")[0][0] == rec.height


def test_a_63_character_table_is_replaced_not_lost(pg_uri, regimes_parquet):
    "The staging name of a 63-character table is not the table: a failed reload keeps it, a good one replaces it."
    p, df = regimes_parquet
    name = "r" * 63
    load_results(p, pg_uri, table=name, schema="vr_test", copy_threshold=1, progress=False)
    db._Fail.after_rows = 1000
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            load_results(p, pg_uri, table=name, schema="vr_test", copy_threshold=1, copy_chunksize=500, progress=False)
    finally:
        db._Fail.after_rows = None
    assert read(pg_uri, f"SELECT count(*) FROM vr_test.{name}")[0][0] == df.height
    load_results(p, pg_uri, table=name, schema="vr_test", if_exists="replace", copy_threshold=1, progress=False)
    assert read(pg_uri, f"SELECT count(*) FROM vr_test.{name}")[0][0] == df.height
    ix = [r[0] for r in read(pg_uri, f"SELECT indexname FROM pg_indexes WHERE schemaname = 'vr_test' AND tablename = '{name}'")]
    assert ix and not any("__stg_" in i for i in ix), ix


@pytest.mark.parametrize("schema", ["information_schema", "pg_catalog", "pg_temp"])
def test_system_schemas_are_refused_before_any_sql(pg_uri, regimes_parquet, schema):
    with pytest.raises(LoadError, match=f"--schema {schema}: a PostgreSQL system schema"):
        load_results(regimes_parquet[0], pg_uri, table="t_sys", schema=schema, copy_threshold=1, progress=False)


def test_the_next_load_drops_a_killed_loads_staging_table(pg_uri, regimes_parquet):
    p, df = regimes_parquet
    eng = create_engine(pg_uri)
    with eng.begin() as c:   # what a load killed with -9 leaves: its staging table, half full
        c.execute(text("CREATE SCHEMA IF NOT EXISTS vr_test"))
        c.execute(text(f"CREATE TABLE vr_test.{db.staging_name('t_orphan')} (x int)"))
        c.execute(text("CREATE TABLE IF NOT EXISTS vr_test.t_orphan__staging (x int)"))   # the name loads used before
    eng.dispose()
    load_results(p, pg_uri, table="t_orphan", schema="vr_test", copy_threshold=1, progress=False)
    left = read(pg_uri, "SELECT tablename FROM pg_tables WHERE schemaname = 'vr_test' AND tablename LIKE 't_orphan%'")
    assert [r[0] for r in left] == ["t_orphan"]
    assert read(pg_uri, "SELECT count(*) FROM vr_test.t_orphan")[0][0] == df.height


@pytest.mark.parametrize("index", [None, "date"])
def test_cli_load_of_a_file_without_cluster_reports_its_own_label(pg_uri, tmp_path, index):
    "regimes/daily.parquet has `regime`, not `cluster`: the load, its index and its read-back summary adapt; exit 0."
    days = pl.date_range(dt.date(2021, 1, 4), dt.date(2021, 6, 30), eager=True)
    p = tmp_path / "daily.parquet"
    pl.DataFrame({"date": days, "secid": 5, "regime": np.arange(len(days)) % 2, "share_0": 0.5}).write_parquet(p)
    args = ["load", "--parquet", str(p), "--postgres-uri", pg_uri, "--table", "t_nocluster", "--schema", "vr_test", "--no-progress"]
    r = volregime_cli(*args, *(["--create-index", index] if index else []))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"vr_test.t_nocluster: {len(days):,} rows" in r.stdout, r.stdout
    assert read(pg_uri, "select count(*) from vr_test.t_nocluster")[0][0] == len(days)
    rep = db.table_report(pg_uri, "vr_test", "t_nocluster")
    assert rep["label"] == "regime" and rep["per_label"]["rows"].to_list() == [(len(days) + 1) // 2, len(days) // 2]
    pl.DataFrame({"date": days, "impl_volatility": 0.2}).write_parquet(p)   # no label column at all: no per-label count
    assert volregime_cli(*args).returncode == 0
    rep = db.table_report(pg_uri, "vr_test", "t_nocluster")
    assert rep["label"] is None and rep["per_label"] is None and rep["per_year"]["rows"].sum() == len(days)
