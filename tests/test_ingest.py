"""Ingest: schemas, the synthetic market, WRDS exports in parquet and csv.gz, the wrds path, bad input."""
from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np
import polars as pl
import pytest

from volregime.exports import IngestError, read_export
from volregime.ingest import combine_parquet, consolidate_years, ingest_local, ingest_wrds, mirror_to_postgres
from volregime.schemas import KEYS, REQUIRED, SCHEMAS, schema_table
from volregime.synth import simulate_market


def read_raw(data_dir, table="opprcd"):
    return pl.read_parquet(data_dir / "raw" / table / "**" / "*.parquet", hive_partitioning=False)


# ---- schemas and the simulator

def test_schemas_are_consistent():
    for t, s in SCHEMAS.items():
        assert set(REQUIRED[t]) <= set(s) and set(KEYS[t]) <= set(s)
        tab = schema_table(t)
        assert tab["unit"].str.len_chars().min() > 0, f"{t}: every column documents its unit"
    assert SCHEMAS["opprcd"]["strike_price"] == pl.Int64
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        schema_table("nope")


def test_synthetic_market_is_deterministic_and_in_wrds_layout(market):
    again = simulate_market("2019-01-02", "2019-04-30", ["SPY", "QQQ"], n_contracts=60, seed=11)
    assert again.opprcd.equals(market.opprcd) and again.truth.equals(market.truth)
    other = simulate_market("2019-01-02", "2019-04-30", ["SPY", "QQQ"], n_contracts=60, seed=12)
    assert not other.opprcd["best_bid"].equals(market.opprcd["best_bid"])
    op = market.opprcd
    assert set(op["cp_flag"].unique()) == {"C", "P"}
    # strike_price is the strike x 1000, consistent with the symbol
    k = op["strike_price"] / 1000
    assert (k > 10).all() and ((op["strike_price"] % 500) == 0).all()
    # IvyDB-like missing IVs, with greeks missing alongside
    miss = op["impl_volatility"].is_null()
    assert 0 < miss.mean() < 0.3 and op.filter(miss)["delta"].null_count() == miss.sum()
    # expiries from a week to about a year, bracketing 30 and 91 days
    dte = (op["exdate"] - op["date"]).dt.total_days()
    assert dte.min() >= 1 and dte.max() >= 150 and ((dte > 20) & (dte < 40)).any() and (dte > 91).any()
    truth = market.truth
    assert set(truth.columns) >= {"date", "regime", "atm_iv_30d"}
    assert truth["regime"].n_unique() >= 2


def test_regimes_are_persistent_with_three_states():
    m = simulate_market("2010-01-04", "2015-12-31", ["SPY"], n_contracts=24, seed=3)
    r = m.truth["regime"].to_numpy()
    assert set(np.unique(r)) == {0, 1, 2}
    switches = (r[1:] != r[:-1]).sum()
    assert len(r) / (switches + 1) > 15, "mean regime duration above 15 trading days"
    # volatility responds to the regime: stressed IV above calm IV
    t = m.truth.group_by("regime").agg(pl.col("atm_iv_30d").mean()).sort("regime")["atm_iv_30d"].to_list()
    assert t[0] < t[1] < t[2]


# ---- local exports round trip

@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_local_round_trip(tmp_path, market, exports, fmt):
    s = ingest_local(exports[fmt], tmp_path, ["SPY", "QQQ"], "2019-01-02", "2019-04-30")
    got = read_raw(tmp_path).sort("secid", "date", "optionid")
    want = market.opprcd.sort("secid", "date", "optionid")
    assert got.height == want.height == s.rows["opprcd"]
    assert got.schema == pl.Schema(SCHEMAS["opprcd"])
    for c in ("strike_price", "optionid", "volume", "cp_flag", "exdate", "date"):
        assert got[c].equals(want[c]), c
    # sentinels (-99.99 in csv) are null again, values equal to float precision
    assert got["impl_volatility"].null_count() == want["impl_volatility"].null_count()
    np.testing.assert_allclose(got["delta"].fill_null(0).to_numpy(), want["delta"].fill_null(0).to_numpy(), rtol=1e-12)
    # sorted by date within each year file, zstd with statistics
    import pyarrow.parquet as pq
    f = next((tmp_path / "raw" / "opprcd").glob("year=*/*.parquet"))
    md = pq.ParquetFile(f).metadata
    assert md.row_group(0).column(0).compression == "ZSTD" and md.row_group(0).column(1).statistics is not None
    assert pl.read_parquet(f)["date"].is_sorted()
    # CRSP rows carry the linked secid; dsf keeps bid/ask-average negative prices as in CRSP
    dsf = pl.read_parquet(tmp_path / "raw" / "dsf.parquet")
    assert set(dsf["secid"].unique()) == set(want["secid"].unique())
    assert (dsf["prc"] < 0).any()
    assert (tmp_path / "truth" / "truth.parquet").exists() and (tmp_path / "reference" / "vix.parquet").exists()


def test_ticker_filter_and_case_insensitive_names_and_sas_dates(tmp_path, exports):
    src = tmp_path / "src"
    shutil.copytree(exports["csv.gz"], src)
    # rewrite secprd with upper-case names and SAS dates, as a SAS export would have them
    sp = pl.read_csv(src / "secprd.csv.gz")
    sp = sp.with_columns(pl.col("date").str.to_date().dt.strftime("%d%b%Y").str.to_uppercase())
    sp = sp.rename({c: c.upper() for c in sp.columns})
    with gzip.open(src / "secprd.csv.gz", "wb") as fh:
        sp.write_csv(fh)
    s = ingest_local(src, tmp_path / "d", ["qqq"], None, None)
    raw = read_raw(tmp_path / "d")
    assert raw["secid"].unique().to_list() == [107899]
    sec = pl.read_parquet(tmp_path / "d" / "raw" / "secprd.parquet")
    assert sec["date"].dtype == pl.Date and sec["secid"].unique().to_list() == [107899]
    assert s.rows["secprd"] == sec.height


def test_na_and_sas_missing_tokens_read_as_null(tmp_path, exports):
    "'NA' and SAS's '.' are missing values in any column, numeric or text; empty fields too."
    i = pl.int_range(pl.len())
    numeric = lambda df: df.with_columns(   # noqa: E731
        impl_volatility=pl.when(i == 5).then(pl.lit(".")).otherwise(pl.col("impl_volatility")),
        volume=pl.when(i == 7).then(pl.lit("NA")).when(i == 8).then(pl.lit("")).otherwise(pl.col("volume")),
        expiry_indicator=pl.when(i == 9).then(pl.lit(".")).otherwise(pl.col("expiry_indicator")))
    text_only = lambda df: df.with_columns(   # noqa: E731  (the reader's fast path: no typed column holds a token)
        expiry_indicator=pl.when(i == 9).then(pl.lit(".")).when(i == 10).then(pl.lit("NA")).otherwise(pl.col("expiry_indicator")))
    for name, edit in (("numeric", numeric), ("text", text_only)):
        src = tmp_path / name
        shutil.copytree(exports["csv.gz"], src)
        _rewrite_csv(src / "opprcd2019.csv.gz", edit)
        ingest_local(src, tmp_path / f"d-{name}", None)
        raw = read_raw(tmp_path / f"d-{name}")
        ref = pl.read_csv(src / "opprcd2019.csv.gz", infer_schema=False)
        def at(row, col):
            return raw.filter((pl.col("secid") == int(ref["secid"][row])) & (pl.col("optionid") == int(ref["optionid"][row]))
                              & (pl.col("date") == pl.lit(ref["date"][row]).str.to_date()))[col].item()
        assert raw.height == ref.height
        assert at(9, "expiry_indicator") is None and at(11, "expiry_indicator") == ref["expiry_indicator"][11]
        if name == "numeric":
            assert at(5, "impl_volatility") is None and at(7, "volume") is None and at(8, "volume") is None
            assert at(4, "impl_volatility") == float(ref["impl_volatility"][4]) and at(6, "volume") == int(ref["volume"][6])
        else:
            assert at(10, "expiry_indicator") is None


def test_csv_blocks_are_whole_lines(tmp_path):
    "The reader's blocks end at a line's end and give back the file exactly, with or without a final newline."
    import io
    from volregime.exports import _blocks
    rng = np.random.default_rng(0)
    lines = [b",".join(str(x).encode() for x in rng.integers(0, 10**rng.integers(1, 12), 5)) for _ in range(2000)]
    for body in (b"\n".join(lines) + b"\n", b"\n".join(lines)):
        for size in (7, 64, 1000, 10**6):
            blocks = list(_blocks(io.BytesIO(body), size))
            assert b"".join(blocks) == body
            assert all(b.endswith(b"\n") for b in blocks[:-1])


def test_consolidate_and_combine(tmp_path, exports):
    ingest_local(exports["parquet"], tmp_path, None, None, None)
    n = consolidate_years(tmp_path / "raw", tmp_path / "history.parquet")
    assert n == read_raw(tmp_path).height
    m = combine_parquet([str(tmp_path / "history.parquet"), str(tmp_path / "raw" / "secprd.parquet")], tmp_path / "all.parquet")
    assert m == n + pl.read_parquet(tmp_path / "raw" / "secprd.parquet").height
    k = combine_parquet([str(tmp_path / "history.parquet")], tmp_path / "sample.parquet", sample_frac=0.1, seed=1)
    assert k == int(n * 0.1)
    with pytest.raises(IngestError, match="not found"):
        combine_parquet([str(tmp_path / "nope.parquet")], tmp_path / "x.parquet")


# ---- the wrds path against a real PostgreSQL

def test_wrds_path_against_postgres(tmp_path, pg_uri, market, exports):
    counts = mirror_to_postgres(exports["parquet"], pg_uri)
    assert counts["optionm.opprcd2019"] == market.opprcd.height
    s = ingest_wrds(tmp_path / "w", ["SPY"], "2019-01-02", "2019-04-30", uri=pg_uri, chunk_rows=5000)
    got = read_raw(tmp_path / "w").sort("date", "optionid")
    ref = ingest_local(exports["parquet"], tmp_path / "l", ["SPY"], "2019-01-02", "2019-04-30")
    want = read_raw(tmp_path / "l").sort("date", "optionid")
    assert got.equals(want)
    assert s.rows["secprd"] == ref.rows["secprd"] and s.rows["dsf"] == ref.rows["dsf"]
    with pytest.raises(IngestError, match="unknown ticker.*ZZZZ"):
        ingest_wrds(tmp_path / "w2", ["ZZZZ"], "2019-01-02", "2019-04-30", uri=pg_uri)
    with pytest.raises(IngestError, match="optionm.opprcd2020 does not exist"):
        ingest_wrds(tmp_path / "w3", ["SPY"], "2019-01-02", "2020-02-28", uri=pg_uri)


# ---- bad input: clear messages, nothing already written corrupted

@pytest.fixture
def good_raw(tmp_path, exports):
    ingest_local(exports["parquet"], tmp_path, ["SPY"], None, None)
    return tmp_path, read_raw(tmp_path)


def _broken_copy(tmp_path, exports, fmt="csv.gz"):
    d = tmp_path / "broken"
    shutil.copytree(exports[fmt], d)
    return d


def _rewrite_csv(path, fn):
    df = pl.read_csv(path, infer_schema=False)
    df = fn(df)
    with gzip.open(path, "wb") as fh:
        df.write_csv(fh)


def test_missing_folder_and_missing_file(tmp_path, good_raw):
    data, before = good_raw
    with pytest.raises(IngestError, match="export folder not found"):
        ingest_local(tmp_path / "nowhere", data)
    with pytest.raises(IngestError, match="file not found"):
        list(read_export(tmp_path / "opprcd2019.parquet", "opprcd"))
    assert read_raw(data).equals(before)


def test_missing_required_column(tmp_path, exports, good_raw):
    data, before = good_raw
    d = _broken_copy(tmp_path, exports)
    _rewrite_csv(d / "opprcd2019.csv.gz", lambda df: df.drop("impl_volatility"))
    with pytest.raises(IngestError, match=r"opprcd2019.csv.gz: missing required column\(s\) impl_volatility"):
        ingest_local(d, data, ["SPY"])
    assert read_raw(data).equals(before)


def test_unparsable_date(tmp_path, exports, good_raw):
    data, before = good_raw
    d = _broken_copy(tmp_path, exports)
    _rewrite_csv(d / "opprcd2019.csv.gz", lambda df: df.with_columns(
        exdate=pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("2019-02-30")).otherwise(pl.col("exdate"))))
    with pytest.raises(IngestError, match=r"opprcd2019.csv.gz, line 9: column 'exdate': unparsable date '2019-02-30'"):
        ingest_local(d, data, ["SPY"])
    assert read_raw(data).equals(before)


def test_wrong_type(tmp_path, exports, good_raw):
    data, before = good_raw
    d = _broken_copy(tmp_path, exports)
    _rewrite_csv(d / "opprcd2019.csv.gz", lambda df: df.with_columns(
        volume=pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("lots")).otherwise(pl.col("volume"))))
    with pytest.raises(IngestError, match=r"opprcd2019.csv.gz, line 5: column 'volume': value 'lots' is not an integer"):
        ingest_local(d, data, ["SPY"])
    assert read_raw(data).equals(before)


def test_empty_year(tmp_path, exports, good_raw):
    data, before = good_raw
    d = _broken_copy(tmp_path, exports)
    _rewrite_csv(d / "opprcd2019.csv.gz", lambda df: df.head(0))
    with pytest.raises(IngestError, match=r"opprcd2019.csv.gz: no rows for year 2019"):
        ingest_local(d, data, ["SPY"])
    assert read_raw(data).equals(before)


def test_unknown_ticker(tmp_path, exports, good_raw):
    data, before = good_raw
    with pytest.raises(IngestError, match=r"unknown ticker\(s\) NOPE in secnmd.parquet \(known: QQQ, SPY\)"):
        ingest_local(exports["parquet"], data, ["SPY", "NOPE"])
    assert read_raw(data).equals(before)


def test_duplicates_dropped_with_logged_count(tmp_path, exports, caplog):
    d = _broken_copy(tmp_path, exports, "parquet")
    op = pl.read_parquet(d / "opprcd2019.parquet")
    pl.concat([op, op.head(25)]).write_parquet(d / "opprcd2019.parquet")
    logging.getLogger("volregime").propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="volregime"):
            s = ingest_local(d, tmp_path / "out", None)
    finally:
        logging.getLogger("volregime").propagate = False
    assert s.duplicates["opprcd"] == 25 and s.rows["opprcd"] == op.height
    assert "dropped 25 duplicate rows" in caplog.text
    assert read_raw(tmp_path / "out")["date"].is_sorted()


def test_raw_writer_dedupes_across_batch_boundaries(tmp_path):
    "Sorted batches whose dates run on from one batch to the next: duplicates inside a batch and across the boundary go."
    import datetime as dt
    from volregime.rawstore import RawWriter
    rng = np.random.default_rng(3)
    days = np.repeat(np.array([dt.date(2020, 1, 2) + dt.timedelta(days=i) for i in range(6)], dtype="datetime64[D]"), 50)
    base = pl.DataFrame({"secid": 109820, "date": days, "optionid": np.tile(np.arange(50), 6), "impl_volatility": rng.uniform(0.1, 0.5, 300)})
    rows = pl.concat([base, base.sample(60, seed=1)]).sort("date", maintain_order=True)   # 60 repeats, sorted by date only
    full = as_opprcd(rows)
    w = RawWriter(tmp_path)
    for lo, hi in [(0, 75), (75, 140), (140, 141), (141, full.height)]:   # boundaries inside a date
        w.add("opprcd", full.slice(lo, hi - lo))
    s = w.finalize()
    got = pl.read_parquet(tmp_path / "opprcd" / "year=2020" / "part-0.parquet")
    want = full.unique(subset=["secid", "date", "optionid"], keep="first", maintain_order=True)
    assert s.duplicates["opprcd"] == 60 and got.height == 300
    assert got.select("date", "optionid", "impl_volatility").equals(want.select("date", "optionid", "impl_volatility"))


@pytest.mark.parametrize("order,files", [("secid_then_date", 3), ("secid_split_and_repeated", 1), ("shuffled", 1)])
def test_raw_writer_handles_secid_ordered_exports(tmp_path, order, files):
    """A WRDS export of several secids comes ordered by secid, then date: one date-sorted file per secid
    stretch; stretches that could share keys are merged by date into one file; shuffled input is sorted.
    Every file is sorted by date and the rows are the input's, deduplicated (keep first)."""
    import datetime as dt
    from volregime.rawstore import RawWriter
    rng = np.random.default_rng(4)
    days = np.repeat(np.array([dt.date(2021, 3, 1) + dt.timedelta(days=i) for i in range(40)], dtype="datetime64[D]"), 30)
    one = lambda secid: pl.DataFrame({"secid": secid, "date": days, "optionid": np.tile(np.arange(30), 40) + secid * 1000,
                                      "impl_volatility": rng.uniform(0.1, 0.5, len(days))})
    rows = pl.concat([one(s) for s in (101, 202, 303)])
    rows = pl.concat([rows, rows.sample(200, seed=2)]).sort(["secid", "date"], maintain_order=True)   # 200 repeats
    if order == "shuffled": rows = rows.sample(fraction=1.0, shuffle=True, seed=5)
    if order == "secid_split_and_repeated":   # secid 101 again at the end, over dates it already had
        rows = pl.concat([rows, rows.filter(pl.col("secid") == 101).head(100)])
    full = as_opprcd(rows)
    w = RawWriter(tmp_path, row_group_rows=500)
    for lo in range(0, full.height, 333):
        w.add("opprcd", full.slice(lo, 333))
    s = w.finalize()
    parts = sorted((tmp_path / "opprcd" / "year=2021").glob("*.parquet"))
    assert len(parts) == files and all(pl.read_parquet(f)["date"].is_sorted() for f in parts)
    got = pl.concat([pl.read_parquet(f) for f in parts])
    want = full.unique(subset=["secid", "date", "optionid"], keep="first", maintain_order=True)
    assert s.duplicates["opprcd"] == full.height - 3600 and got.height == 3600 and s.rows["opprcd"] == 3600
    key = ["date", "secid", "optionid"]
    assert got.select(*key, "impl_volatility").sort(key).equals(want.select(*key, "impl_volatility").sort(key))
    assert pq_rowgroups(parts[0]) > 1


def as_opprcd(rows):
    "The rows as a canonical opprcd batch: every column of the schema, the missing ones null."
    return pl.DataFrame({c: pl.Series(c, [None] * rows.height, dtype=t) for c, t in SCHEMAS["opprcd"].items()}).with_columns(
        [rows[c].cast(SCHEMAS["opprcd"][c]) for c in rows.columns])


def pq_rowgroups(p):
    import pyarrow.parquet as pq
    return pq.ParquetFile(p).metadata.num_row_groups
