"""Benchmark: one year of an SPY-sized option chain (~2 M rows, two underlyings ordered by secid then date, as WRDS exports come) as a WRDS csv.gz export -> canonical parquet.

volregime's local ingest (ISA-L gunzip in a thread, Polars CSV chunks, canonical types, sentinels, dedupe, sorted
Zstd parquet) against a plain pandas read_csv -> to_parquet of the same file, each in a fresh
interpreter. Target: >= 3x pandas' rows/s at <= 1/3 of its peak RSS. A third line times Polars' own
scan_csv -> sink_parquet of the file (gunzip, parse, write, nothing else): the most this machine's cores allow.

    python bench/ingest.py [--rows 2000000]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import measure, report

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rows", type=int, default=2_000_000, help="approximate option rows in the year")
ap.add_argument("--keep", action="store_true", help="keep the generated files")
a = ap.parse_args()

tmp = Path(tempfile.mkdtemp(prefix="volregime-bench-ingest-"))
exp = tmp / "exports"
t0 = time.perf_counter()
from volregime.synth import simulate_market, write_exports  # noqa: E402
# the simulator's strikes sit on a $0.50 grid, so one underlying tops out near 1.4 M rows a year; two
# (an opprcd2019 export holds every secid) give the ~2 M rows of an SPY-sized year
n_contracts = max(40, int(a.rows * 0.00228))
m = simulate_market("2019-01-02", "2019-12-31", ["SPY", "QQQ"], n_contracts=n_contracts, seed=0)
write_exports(m, exp, "csv.gz")
rows = m.opprcd.height
del m
csv = exp / "opprcd2019.csv.gz"
import gzip  # noqa: E402
with gzip.open(csv, "rt") as fh: (tmp / "header.txt").write_text(fh.readline().strip())
print(f"generated {rows:,} option rows -> {csv.name} ({csv.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f}s")

ours = measure(f"""
from volregime.ingest import ingest_local
#--
s = ingest_local({str(exp)!r}, {str(tmp / 'ours')!r}, ["SPY", "QQQ"])
rows = s.rows["opprcd"]
""", "volregime ingest_local")
peer = measure(f"""
import pandas as pd
#--
df = pd.read_csv({str(csv)!r})
df.to_parquet({str(tmp / 'pandas.parquet')!r}, compression="zstd")
rows = len(df)
""", "pandas read_csv+to_parquet")
ceiling = measure(f"""
import polars as pl
from volregime.schemas import SCHEMAS
NULL_TOKENS = ["", "NA", "."]   # volregime.exports.NULL_TOKENS, not imported: its imports would count in this line's memory
#--
names = open({str(tmp / 'header.txt')!r}).read().split(",")
pl.scan_csv({str(csv)!r}, schema={{n: SCHEMAS["opprcd"][n] for n in names}}, null_values=NULL_TOKENS).sink_parquet(
    {str(tmp / 'polars.parquet')!r}, compression="zstd", compression_level=1)
rows = pl.scan_parquet({str(tmp / 'polars.parquet')!r}).select(pl.len()).collect().item()
""", "polars scan_csv+sink_parquet")
report(f"WRDS csv.gz export -> parquet, {rows:,} option rows (one year, SPY-sized chain)", ours, peer)
# what this machine allows: Polars' own streaming pipeline, gunzip + parse + Zstd write and nothing else (no
# sentinels, no dedupe, no date-sorted layout, no other tables), on the same file in the same run
print(f"  reference, {ceiling['label']}: {ceiling['seconds']:.2f} s, {ceiling['rows_per_s']:,.0f} rows/s, "
      f"peak RSS {ceiling['peak_rss_mib']:.0f} MiB: {ceiling['rows_per_s'] / peer['rows_per_s']:.2f}x pandas, "
      f"{ceiling['peak_rss_mib'] / peer['peak_rss_mib']:.2f} of its memory")
if not a.keep: shutil.rmtree(tmp)
