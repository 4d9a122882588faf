"""The bad-input corpus: damaged, malformed and hostile WRDS export files through `volregime ingest`.

Every case starts from good exports, breaks one thing, and runs the real command line (in process) into a data dir
that already holds a good `raw/`. A refused file must give exit 2, one line naming the file (and the line or row
where known) and leave the earlier `raw/` byte-identical; an accepted oddity must give exit 0 and the right rows.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from volregime.cli import main

OP = "opprcd2019.csv.gz"


def digest(folder: Path) -> str:
    "One hash of every file's path and bytes under a folder."
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file(): h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def ingest(src: Path, data: Path, capsys, *extra) -> tuple[int, str, str]:
    "`volregime ingest --source local` in this process: exit code, stdout, stderr."
    capsys.readouterr()
    rc = main(["ingest", "--source", "local", "--local-path", str(src), "--data-dir", str(data), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def read_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).split(b"\n") if path.name.endswith(".gz") else path.read_bytes().split(b"\n")


def write_lines(path: Path, lines: list[bytes]) -> None:
    body = b"\n".join(lines)
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)


def edit_lines(name: str, fn):
    "A mutation rewriting one csv(.gz) file's lines (line 1 is the header: lines[0])."
    return lambda d: write_lines(d / name, fn(read_lines(d / name)))


def set_field(line_no: int, col: str, value: bytes, name: str = OP):
    "Set one field of one line (1-based file line numbers; the header is line 1)."
    def fn(lines):
        cols = lines[0].decode().split(",")
        f = lines[line_no - 1].split(b",")
        f[cols.index(col)] = value
        lines[line_no - 1] = b",".join(f)
        return lines
    return edit_lines(name, fn)


def set_parquet(name: str, fn):
    def go(d):
        df = pl.read_parquet(d / name)
        fn(df).write_parquet(d / name)
    return go


def bytes_edit(name: str, fn):
    return lambda d: (d / name).write_bytes(fn((d / name).read_bytes()))


def damage_middle(b: bytes) -> bytes:
    rng = np.random.default_rng(0)
    mid = len(b) // 2
    return b[:mid] + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes() + b[mid + 4096:]


def drop_column(col: str):
    def fn(lines):
        cols = lines[0].decode().split(",")
        i = cols.index(col)
        return [b",".join(f for j, f in enumerate(line.split(b",")) if j != i) if line else line for line in lines]
    return edit_lines(OP, fn)


# (case, format of the source folder, mutation, extra CLI args, regex the one-line message must match)
REFUSED = [
    ("parquet zero bytes", "parquet", bytes_edit("opprcd2019.parquet", lambda b: b""), (), r"opprcd2019\.parquet: empty file"),
    ("parquet truncated", "parquet", bytes_edit("opprcd2019.parquet", lambda b: b[: len(b) // 2]), (),
     r"opprcd2019\.parquet: unreadable or corrupt file"),
    ("parquet footer damaged", "parquet", bytes_edit("opprcd2019.parquet", lambda b: b[:-60] + b"\0" * 60), (),
     r"opprcd2019\.parquet: unreadable or corrupt file"),
    ("parquet pages damaged", "parquet", bytes_edit("opprcd2019.parquet", damage_middle), (),
     r"opprcd2019\.parquet: unreadable or corrupt file"),
    ("parquet not parquet", "parquet", bytes_edit("secprd.parquet", lambda b: b"secid,date,close\n1,2019-01-02,3\n"), (),
     r"secprd\.parquet: unreadable or corrupt file"),
    ("parquet empty key", "parquet", set_parquet("opprcd2019.parquet", lambda df: df.with_columns(
        optionid=pl.when(pl.int_range(pl.len()) == 41).then(None).otherwise(pl.col("optionid")))), (),
     r"opprcd2019\.parquet, row 42: column 'optionid' is empty"),
    ("parquet huge field", "parquet", set_parquet("opprcd2019.parquet", lambda df: df.with_columns(
        symbol=pl.when(pl.int_range(pl.len()) == 999).then(pl.lit("S" * 70_000)).otherwise(pl.col("symbol")))), (),
     r"opprcd2019\.parquet, row 1000: column 'symbol': a field of 70,000 bytes"),
    ("csv.gz not gzip", "csv.gz", bytes_edit(OP, gzip.decompress), (), r"opprcd2019\.csv\.gz: unreadable or corrupt file"),
    ("csv.gz truncated", "csv.gz", bytes_edit(OP, lambda b: b[: len(b) * 3 // 5]), (),
     r"opprcd2019\.csv\.gz(, line \d+: \d+ fields, expected 24| ?: unreadable or corrupt file)"),
    ("csv.gz trailing garbage", "csv.gz", bytes_edit(OP, lambda b: b + b"garbage after the gzip member"), (),
     r"opprcd2019\.csv\.gz: unreadable or corrupt file"),
    ("zero-byte csv.gz", "csv.gz", bytes_edit(OP, lambda b: gzip.compress(b"")), (), r"opprcd2019\.csv\.gz: empty file"),
    ("header-only year", "csv.gz", edit_lines(OP, lambda ls: ls[:1]), (), r"opprcd2019\.csv\.gz: no rows for year 2019"),
    ("short row", "csv.gz", edit_lines(OP, lambda ls: ls[:50] + [b",".join(ls[50].split(b",")[:21])] + ls[51:]), (),
     r"opprcd2019\.csv\.gz, line 51: 21 fields, expected 24 as in the header"),
    ("long row", "csv.gz", edit_lines(OP, lambda ls: ls[:50] + [ls[50] + b",extra"] + ls[51:]), (),
     r"opprcd2019\.csv\.gz, line 51: 25 fields, expected 24"),
    ("row cut mid-line", "csv.gz", edit_lines(OP, lambda ls: [x for x in ls if x][:-1] + [[x for x in ls if x][-1][:30]]), (),
     r"opprcd2019\.csv\.gz, line \d+: \d+ fields, expected 24 as in the header \(the file ends mid-row"),
    ("empty date", "csv.gz", set_field(31, "date", b""), (), r"opprcd2019\.csv\.gz, line 31: column 'date' is empty"),
    ("empty secid", "csv.gz", set_field(32, "secid", b""), (), r"line 32: column 'secid' is empty"),
    ("empty optionid", "csv.gz", set_field(33, "optionid", b""), (), r"line 33: column 'optionid' is empty"),
    ("empty cp_flag", "csv.gz", set_field(34, "cp_flag", b"NA"), (), r"line 34: column 'cp_flag' is empty"),
    ("wrong-year date", "csv.gz", set_field(40, "date", b"2018-12-31"), (),
     r"opprcd2019\.csv\.gz, line 40: date 2018-12-31 is outside the file's year 2019"),
    ("impossible date", "csv.gz", set_field(8, "exdate", b"2019-02-30"), (),
     r"opprcd2019\.csv\.gz, line 8: column 'exdate': unparsable date '2019-02-30'"),
    ("two-digit year", "csv.gz", set_field(9, "exdate", b"01/18/19"), (), r"line 9: column 'exdate': unparsable date '01/18/19'"),
    ("text in an integer", "csv.gz", set_field(12, "volume", b"lots"), (),
     r"line 12: column 'volume': value 'lots' is not an integer"),
    ("decimal strike", "csv.gz", set_field(13, "strike_price", b"250000.5"), (),
     r"line 13: column 'strike_price': value '250000.5' is not an integer"),
    ("text in a number", "csv.gz", set_field(14, "best_bid", b"1,5".replace(b",", b";")), (),
     r"line 14: column 'best_bid': value '1;5' is not a number"),
    ("non-UTF-8 bytes", "csv.gz", set_field(20, "symbol", "SPY ÉTÉ".encode("latin-1")), (),
     r"opprcd2019\.csv\.gz, line 20: bytes that are not UTF-8"),
    ("non-UTF-8 header", "csv.gz", edit_lines(OP, lambda ls: [ls[0].replace(b"symbol", "symb\u00f6l".encode("latin-1"))] + ls[1:]),
     (), r"opprcd2019\.csv\.gz, line 1: the header is not UTF-8"),
    ("huge field early", "csv.gz", set_field(11, "symbol", b"X" * 200_000), (),
     r"opprcd2019\.csv\.gz, line 11: column 'symbol': a field of 200,000 bytes"),
    ("huge field late", "csv.gz", set_field(4001, "symbol", b"X" * 5_000_000), (),
     r"opprcd2019\.csv\.gz, line 4001: column 'symbol': a field of 5,000,000 bytes"),
    ("unclosed quote", "csv.gz", set_field(15, "symbol", b'"SPY 1901'), (), r"line \d+: a quoted field is not closed"),
    ("missing required column", "csv.gz", drop_column("impl_volatility"), (),
     r"opprcd2019\.csv\.gz: missing required column\(s\) impl_volatility"),
    ("duplicate header names", "csv.gz", edit_lines(OP, lambda ls: [ls[0].replace(b"symbol", b"secid")] + ls[1:]), (),
     r"duplicate column names in the header"),
    ("no secprd", "csv.gz", lambda d: (d / "secprd.csv.gz").unlink(), (), r"missing secprd export file"),
    ("injection-shaped ticker", "csv.gz", lambda d: None, ("--tickers", "SPY'; DROP TABLE x;--"),
     r"unknown ticker\(s\) SPY'; DROP TABLE X;-- in secnmd"),
    ("bad_rows=refuse", "csv.gz", set_field(25, "strike_price", b"-5000"), ("--bad-rows", "refuse"),
     r"opprcd2019\.csv\.gz, line 25: strike_price <= 0 .*bad_rows=refuse"),
    ("bad bad_rows", "csv.gz", lambda d: None, ("--bad-rows", "drop"), r"bad_rows='drop': expected 'quarantine' or 'refuse'"),
    ("NUL in a text field, bad_rows=refuse", "csv.gz", set_field(26, "symbol", b"SPY\x00 1901"), ("--bad-rows", "refuse"),
     r"opprcd2019\.csv\.gz, line 26: symbol holds a control byte .*bad_rows=refuse"),
    ("NUL in a parquet text field, bad_rows=refuse", "parquet", set_parquet("opprcd2019.parquet", lambda df: df.with_columns(
        symbol=pl.when(pl.int_range(pl.len()) == 9).then(pl.lit("SPY\x00")).otherwise(pl.col("symbol")))), ("--bad-rows", "refuse"),
     r"opprcd2019\.parquet, row 10: symbol holds a control byte"),
]


@pytest.fixture(scope="module")
def good(tmp_path_factory, exports):
    "A data dir holding a good raw/ from the csv.gz exports, and its digest."
    data = tmp_path_factory.mktemp("good") / "data"
    assert main(["ingest", "--source", "local", "--local-path", str(exports["csv.gz"]), "--data-dir", str(data)]) == 0
    return data, digest(data / "raw")


def src_copy(tmp_path: Path, exports, fmt: str) -> Path:
    d = tmp_path / "src"
    shutil.copytree(exports[fmt], d)
    return d


@pytest.mark.parametrize("case,fmt,mutate,extra,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_and_nothing_lost(tmp_path, exports, good, capsys, case, fmt, mutate, extra, message):
    data, before = good
    d = src_copy(tmp_path, exports, fmt)
    mutate(d)
    rc, out, err = ingest(d, data, capsys, *extra)
    assert rc == 2, (case, rc, err[-500:])
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("volregime ingest: ") and len(last) < 400, last
    import re
    assert re.search(message, last), (case, last)
    assert digest(data / "raw") == before, f"{case}: the earlier raw/ changed"
    assert not [p.name for p in data.iterdir() if p.name.startswith(".raw.")], "no leftovers of the failed ingest"


# ---- oddities a real export has, accepted with the right rows

def raw_opprcd(data: Path) -> pl.DataFrame:
    return pl.read_parquet(data / "raw" / "opprcd" / "**" / "*.parquet", hive_partitioning=False).sort("secid", "date", "optionid")


def column_values(lines: list[bytes], col: str) -> list[bytes]:
    i = lines[0].decode().split(",").index(col)
    return [x.split(b",")[i] for x in lines[1:] if x]


def respell(col: str, rows: range, fn):
    def go(ls):
        i = ls[0].decode().split(",").index(col)
        for r in rows:
            f = ls[r].split(b","); f[i] = fn(f[i]); ls[r] = b",".join(f)
        return ls
    return go


ACCEPTED = [
    ("UTF-8 BOM", edit_lines(OP, lambda ls: [b"\xef\xbb\xbf" + ls[0]] + ls[1:])),
    ("CRLF line ends", edit_lines(OP, lambda ls: [x + b"\r" if x else x for x in ls])),
    ("spaces around numbers", edit_lines(OP, respell("best_bid", range(1, 300), lambda v: b"  " + v + b" "))),
    ("YYYYMMDD dates after row 200", edit_lines(OP, respell("date", range(300, 2000), lambda v: v.replace(b"-", b"")))),
    ("SAS dates in every row", edit_lines(OP, respell("exdate", range(1, 5000), lambda v: __import__("datetime").date.fromisoformat(
        v.decode()).strftime("%d%b%Y").upper().encode()))),
    ("blank line in the middle", edit_lines(OP, lambda ls: ls[:100] + [b""] + ls[100:])),
    ("quoted text fields", edit_lines(OP, respell("symbol", range(1, 3000), lambda v: b'"' + v + b'"'))),
    ("injection-shaped extra column", edit_lines(OP, lambda ls: [ls[0] + b',"x""; drop table y;--"'] + [x + b",1" if x else x for x in ls[1:]])),
]


@pytest.mark.parametrize("case,mutate", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_spellings_give_the_same_rows(tmp_path, exports, good, capsys, case, mutate):
    data, _ = good
    d = src_copy(tmp_path, exports, "csv.gz")
    mutate(d)
    rc, out, err = ingest(d, tmp_path / "data", capsys)
    assert rc == 0, (case, err[-600:])
    assert raw_opprcd(tmp_path / "data").equals(raw_opprcd(data)), case


def test_sentinels_in_their_spellings_are_missing(tmp_path, exports, good, capsys):
    data, _ = good
    d = src_copy(tmp_path, exports, "csv.gz")
    spellings = [b"-99.99", b"-99.990", b"-99.99000", b" -99.99 ", b"-9.999E+01", b"NaN", b"nan", b".", b"NA", b""]
    lines = read_lines(d / OP)
    iv = lines[0].decode().split(",").index("impl_volatility")
    for k, sp in enumerate(spellings):
        f = lines[10 + k].split(b","); f[iv] = sp; lines[10 + k] = b",".join(f)
    write_lines(d / OP, lines)
    rc, _, err = ingest(d, tmp_path / "data", capsys)
    assert rc == 0, err
    ids = [int(x.split(b",")[lines[0].decode().split(",").index("optionid")]) for x in lines[10:10 + len(spellings)]]
    got = raw_opprcd(tmp_path / "data").filter(pl.col("optionid").is_in(ids) & (pl.col("date") == pl.date(2019, 1, 2)))
    assert got.height == len(spellings) and got["impl_volatility"].null_count() == len(spellings)
    assert raw_opprcd(tmp_path / "data").height == raw_opprcd(data).height


@pytest.mark.parametrize("dupes,conflicting", [(25, False), (10, True)])
def test_duplicates_and_conflicting_keys_keep_the_first_with_a_count(tmp_path, exports, good, capsys, dupes, conflicting):
    data, _ = good
    d = src_copy(tmp_path, exports, "csv.gz")
    lines = [x for x in read_lines(d / OP) if x]
    extra = lines[1:1 + dupes]
    if conflicting:   # same key, another IV
        iv = lines[0].decode().split(",").index("impl_volatility")
        extra = [b",".join(f[:iv] + [b"0.999"] + f[iv + 1:]) for f in (x.split(b",") for x in extra)]
    write_lines(d / OP, lines + extra)
    rc, out, err = ingest(d, tmp_path / "data", capsys)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[0])["duplicates"]["opprcd"] == dupes
    assert raw_opprcd(tmp_path / "data").equals(raw_opprcd(data))   # the first of each key kept
    assert f"dropped {dupes} duplicate rows" in err


QUARANTINED = [
    ("strike_price", b"-250000", "strike_price <= 0"),
    ("impl_volatility", b"-0.2", "impl_volatility <= 0"),
    ("best_bid", b"-1.5", "best_bid < 0"),
    ("best_bid", b"999.0", "best_bid > best_offer"),
    ("cp_flag", b"X", "cp_flag not C or P"),
    ("impl_volatility", b"inf", "impl_volatility not finite"),
    ("symbol", b"SPY\x00190118C", "symbol holds a control byte"),
    ("symbol", b"SPY\x1b[2J", "symbol holds a control byte"),
    ("exdate", b"2049-01-15", "exdate more than 10 years after date"),
]


@pytest.mark.parametrize("col,value,reason", QUARANTINED, ids=[q[2] for q in QUARANTINED])
def test_domain_violations_are_quarantined_with_file_line_and_reason(tmp_path, exports, good, capsys, col, value, reason):
    data, _ = good
    d = src_copy(tmp_path, exports, "csv.gz")
    set_field(77, col, value)(d)
    oid = int(column_values(read_lines(d / OP), "optionid")[75])
    rc, out, err = ingest(d, tmp_path / "data", capsys)
    assert rc == 0, err
    q = pl.read_parquet(tmp_path / "data" / "raw" / "quarantine" / "opprcd.parquet")
    assert q.select("source_file", "source_row", "reason").rows() == [(OP, 77, reason)]
    assert q["optionid"][0] == oid
    got = raw_opprcd(tmp_path / "data")
    assert got.height == raw_opprcd(data).height - 1 and oid not in got.filter(pl.col("date") == q["date"][0])["optionid"].to_list()
    assert f"1 row(s) quarantined ({reason}: 1)" in err


def test_quarantine_reaches_the_stage_headline(tmp_path, exports):
    from volregime.core import Artifacts, read_headlines
    from volregime.ingest import IngestParams, run_ingest
    d = src_copy(tmp_path, exports, "csv.gz")
    set_field(5, "strike_price", b"0")(d)
    set_field(6, "cp_flag", b"c")(d)
    art = Artifacts(tmp_path / "data")
    run_ingest(art, IngestParams(source="local", local_path=str(d), tickers=[], start="", end=""))
    h = read_headlines(art)["01_ingest"]
    assert h["rows_quarantined"] == 2
    assert h["quarantine_reasons"] == "opprcd cp_flag not C or P: 1; opprcd strike_price <= 0: 1"


# ---- locks and what killed runs leave behind

def test_a_second_concurrent_ingest_exits_2_naming_the_holder(tmp_path, exports, good, capsys):
    import subprocess
    import sys
    import time
    data, before = good
    lock = data / ".lock-raw"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from volregime.core import exclusive\n"
        f"with exclusive({str(lock)!r}, 'x'):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        rc, _, err = ingest(exports["csv.gz"], data, capsys)
        assert rc == 2 and time.perf_counter() - t0 < 30
        assert f"is being written by another process (pid {holder.pid} since" in err.strip().splitlines()[-1]
        assert digest(data / "raw") == before
    finally:
        holder.kill(); holder.wait()
    rc, _, err = ingest(exports["csv.gz"], data, capsys)   # the killed holder's lock is gone with it
    assert rc == 0, err


def test_leftovers_of_a_killed_ingest_are_cleaned_by_the_next(tmp_path, exports, capsys):
    import signal
    import subprocess
    import sys
    import time
    data = tmp_path / "data"
    assert ingest(exports["parquet"], data, capsys)[0] == 0
    before = digest(data / "raw")
    # a real ingest killed with SIGKILL while it writes its staging folder
    big = tmp_path / "big"
    from volregime.synth import simulate_market, write_exports
    write_exports(simulate_market("2018-01-02", "2019-12-31", ["SPY", "QQQ"], 120, 3), big, "csv.gz")
    exe = str(Path(sys.executable).parent / "volregime")
    p = subprocess.Popen([exe, "ingest", "--source", "local", "--local-path", str(big),
                          "--data-dir", str(data)], stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not list(data.glob(".raw.tmp-*")) and time.time() - t0 < 60: time.sleep(0.05)
    assert list(data.glob(".raw.tmp-*")), "the ingest started writing"
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert list(data.glob(".raw.tmp-*")) and digest(data / "raw") == before   # killed: leftovers, raw/ untouched
    rc, _, err = ingest(exports["parquet"], data, capsys)
    assert rc == 0 and "left by a killed run: removed .raw.tmp-" in err
    assert not list(data.glob(".raw.*"))
