"""Benchmark: loading regime rows into PostgreSQL.

2 million rows of the whitelisted columns, loaded by `volregime load` (ADBC binary COPY and
psycopg2 CSV COPY), by pandas to_sql (on a 100,000-row slice: at its rate 2 million take minutes),
and by the embedded server's own `psql \\copy` from a CSV of the same rows, all in one run against
the embedded PostgreSQL. volregime's COPY runs on two connections at once (`--copy-connections 2`);
for reference the run also times two `psql \\copy` processes at once on the two halves of the CSV. Peak RSS of volregime at 0.5, 1 and 2 million rows shows it flat.
Targets: >= 1.5x the psql \\copy rate and >= 20x to_sql's. The last section times what a user waits for: the whole
`volregime load` command from the shell (interpreter start, imports, the load, its index and read-back) against the
whole `psql \\copy` command, on the same rows (`--cli-rows`, default 1 million), in the same run.

    python bench/load.py [--rows 2000000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import measure

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rows", type=int, default=2_000_000)
ap.add_argument("--cli-rows", type=int, default=1_000_000, help="rows of the whole-command comparison (at most --rows)")
a = ap.parse_args()

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from volregime.core import libpq_uri, resolve_postgres_uri, embedded_server  # noqa: E402

tmp = Path(tempfile.mkdtemp(prefix="volregime-bench-load-"))
os.chmod(tmp, 0o755)
rng = np.random.default_rng(0)
n = a.rows
days = np.arange(np.datetime64("2017-01-02"), np.datetime64("2017-01-02") + 1500)
cols = ["impl_volatility", "delta", "theta", "vega", "moneyness", "volume", "open_interest", "vol", "volume_ma5", "prc",
        "price_diff_1d", "price_diff_2d", "price_diff_3d", "price_diff_5d", "price_diff_8d", "price_diff_34d"]
df = pl.DataFrame({"date": np.sort(rng.choice(days, n)), "cluster": rng.integers(0, 8, n), **{c: rng.normal(size=n) for c in cols},
                   **{f"pca_component_{i}": rng.normal(size=n) for i in range(1, 6)}})
for k in (n // 4, n // 2, n):
    df.head(k).write_parquet(tmp / f"rows{k}.parquet")
csv = tmp / "rows.csv"
df.write_csv(csv, include_header=False)
os.chmod(csv, 0o644)
uri = resolve_postgres_uri(None)
print(f"{n:,} rows x {df.width} columns; server {embedded_server().get_uri().split('?')[0]}")

def run_load(k, method):
    return measure(f"""
from volregime.db import load_results
#--
s = load_results({str(tmp / f'rows{k}.parquet')!r}, {uri!r}, table="bench_{method}", copy_threshold=1, method={method!r}, progress=False)
rows = s.rows
""", f"volregime load ({method})")

res = {m: run_load(n, m) for m in ("adbc", "copy")}
slice_rows = min(100_000, n)
df.head(slice_rows).write_parquet(tmp / "slice.parquet")
to_sql = measure(f"""
import pandas as pd
from sqlalchemy import create_engine
d = pd.read_parquet({str(tmp / 'slice.parquet')!r})
eng = create_engine({uri!r})
#--
d.to_sql("bench_to_sql", eng, if_exists="replace", index=False, chunksize=50000)
rows = len(d)
""", "pandas to_sql (slice)")
import pgserver  # noqa: E402
psql = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
ddl = "DROP TABLE IF EXISTS bench_psql; CREATE TABLE bench_psql (date date, cluster bigint, " + \
      ", ".join(f"{c} double precision" for c in df.columns[2:]) + ");"
conn = libpq_uri(uri)
cmd_prefix = ["su", "pgserver", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else None
def run_psql(*sqls):
    args = [str(psql), conn, "-v", "ON_ERROR_STOP=1", *[x for q in sqls for x in ("-c", q)]]
    return subprocess.run(cmd_prefix + [" ".join(f"'{x}'" for x in args)] if cmd_prefix else args, check=True, capture_output=True, text=True)
run_psql(ddl)
t0 = time.perf_counter()
run_psql(f"\\copy bench_psql FROM '{csv}' WITH (FORMAT csv)")
psql_s = time.perf_counter() - t0
psql_rate = n / psql_s
# for reference: psql \copy as two processes at once on the two halves of the CSV (what volregime's two COPY streams do)
half = n // 2
lines = csv.read_text().splitlines(keepends=True)
(tmp / "a.csv").write_text("".join(lines[:half])); (tmp / "b.csv").write_text("".join(lines[half:]))
del lines
for f in ("a.csv", "b.csv"): os.chmod(tmp / f, 0o644)
run_psql("TRUNCATE bench_psql")
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
t0 = time.perf_counter()
with ThreadPoolExecutor(2) as ex:
    list(ex.map(lambda f: run_psql(f"\\copy bench_psql FROM '{tmp / f}' WITH (FORMAT csv)"), ["a.csv", "b.csv"]))
psql2_s = time.perf_counter() - t0

print(f"\nloading {n:,} rows into the embedded PostgreSQL")
for m, r in res.items():
    print(f"  volregime load ({m:>4}): {r['seconds']:7.1f} s  {r['rows_per_s']:>10,.0f} rows/s  peak RSS {r['peak_rss_mib']:6.0f} MiB")
print(f"  psql \\copy from CSV:   {psql_s:7.1f} s  {psql_rate:>10,.0f} rows/s")
print(f"  (two psql \\copy at once: {psql2_s:7.1f} s  {n / psql2_s:>10,.0f} rows/s)")
print(f"  pandas to_sql ({slice_rows:,}-row slice): {to_sql['seconds']:7.1f} s  {to_sql['rows_per_s']:>10,.0f} rows/s  peak RSS {to_sql['peak_rss_mib']:6.0f} MiB")
best = max(res.values(), key=lambda r: r["rows_per_s"])
print(f"  ratio best volregime / psql \\copy: {best['rows_per_s'] / psql_rate:.2f}x; / to_sql: {best['rows_per_s'] / to_sql['rows_per_s']:.1f}x")
print("\npeak RSS as rows grow (volregime load, adbc):")
for k in (n // 4, n // 2):
    r = run_load(k, "adbc")
    print(f"  {k:>10,} rows: peak RSS {r['peak_rss_mib']:6.0f} MiB ({r['rows_per_s']:,.0f} rows/s)")
print(f"  {n:>10,} rows: peak RSS {res['adbc']['peak_rss_mib']:6.0f} MiB")

# the whole command from the shell, as a user runs it, against psql \copy of the same rows (best of three each)
k = min(a.cli_rows, n)
df.head(k).write_parquet(tmp / "cli.parquet")
(tmp / "cli.csv").write_text(""); df.head(k).write_csv(tmp / "cli.csv", include_header=False); os.chmod(tmp / "cli.csv", 0o644)
vl = [str(Path(sys.executable).parent / "volregime"), "load", "--parquet", str(tmp / "cli.parquet"), "--table", "bench_cli", "--no-progress"]
def timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t
cli_s = min(timed(lambda: subprocess.run(vl, check=True, capture_output=True)) for _ in range(3))
def psql_copy():
    run_psql(ddl.replace("bench_psql", "bench_psql_cli"), f"\\copy bench_psql_cli FROM '{tmp / 'cli.csv'}' WITH (FORMAT csv)")
psql_cli_s = min(timed(psql_copy) for _ in range(3))
print(f"\nthe whole command from the shell, {k:,} rows (best of three; start-up, imports, index and read-back included):")
print(f"  volregime load:  {cli_s:6.2f} s")
print(f"  psql \\copy:     {psql_cli_s:6.2f} s   (one psql process: create the table, then \\copy)")
print(f"  ratio psql / volregime: {psql_cli_s / cli_s:.2f}x (target >= 1.5x)")
shutil.rmtree(tmp)
