"""Benchmark: research scale on one machine -- an index-sized chain (or a wide vsurfd panel) through the stages in process.

`--market spx` runs stages 01-06 of the `spx` profile (SPX_SPEC: weeklies and monthlies on a $5 grid, 6,000-8,000
contracts a day, simulated and written a year at a time by stage 01) with `cluster: none`; `--market panel` runs stages
01-03 of the `cross` profile on N names x Y years of vsurfd. Each stage runs in a fresh interpreter on the same data
dir, so its seconds and peak RSS (VmHWM) are its own. Printed per stage: seconds, rows per second, peak RSS; beside
the peers measured in the same run on the same rows (spx):
- stage 02 against DuckDB SQL computing the same surface features from the same raw files (bench/_common.py);
- stage 03 against scikit-learn's MiniBatchKMeans loop over the same k range on every usable option row (the scan
  fits a sample of whole days and labels every row; the peer fits every row);
- stage 06 against `psql \\copy` of the rows stage 06 loaded (dumped from its table to CSV first, untimed).
Targets (issue 31): spx stages 01-06 under 30 minutes and peak RSS <= 4 GiB; features >= 1.0x DuckDB; load >= 1.5x psql.

    python bench/scale.py --market spx                                  # 25 years, about 41 million option rows
    python bench/scale.py --market spx --start 2019-01-02 --end 2023-12-29   # five years of it
    python bench/scale.py --market panel --names 400 --years 5
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import DUCKDB_FEATURES_SQL, measure

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--market", default="spx", choices=["spx", "panel"])
ap.add_argument("--start", default="", help="spx: first date (default the profile's, 1999-01-04)")
ap.add_argument("--end", default="", help="spx: last date (default the profile's, 2023-12-29)")
ap.add_argument("--names", type=int, default=400, help="panel: underlyings")
ap.add_argument("--years", type=int, default=5, help="panel: years from 2016")
ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
ap.add_argument("--keep", default="", help="keep the data dir here (default: a temporary folder, removed)")
a = ap.parse_args()

import polars as pl  # noqa: E402
from volregime.core import load_profile  # noqa: E402

work = Path(a.keep or tempfile.mkdtemp(prefix="volregime-bench-scale-"))
work.mkdir(parents=True, exist_ok=True)
os.chmod(work, 0o755)
data = work / "data"
if a.market == "spx":
    profile, stages = "spx", ["01", "02", "03", "04", "05", "06"]
    over = {k: v for k, v in (("start", a.start), ("end", a.end)) if v}
else:
    profile, stages = "cross", ["01", "02", "03"]
    over = {"panel": a.names, "start": "2016-01-04", "end": f"{2016 + a.years - 1}-12-30"}
params = {**load_profile(profile), **over, "cluster": "none"}

STAGE = """
import json, sys
from volregime.core import Artifacts
from volregime.robustness import stage_runners
from volregime.db import LoadParams, run_load
art = Artifacts({data!r}); params = json.loads({params!r})
runners = dict(zip(["01", "02", "03", "04", "05"], stage_runners().values()))
cls, fn = runners[{stage!r}] if {stage!r} != "06" else (LoadParams, run_load)
#--
res = fn(art, cls.from_dict(params))
h = getattr(res, "headline", {{}}) or {{}}
print("@@H" + json.dumps(h, default=str))
rows = 0
"""


def raw_rows(table: str) -> int:
    files = list((data / "raw" / table).rglob("*.parquet"))
    return pl.scan_parquet(files).select(pl.len()).collect().item() if files else 0


def stage_rows(stage: str, h: dict) -> tuple[int, str]:
    "The rows a stage worked through, and what they are."
    main = "opprcd" if a.market == "spx" else "vsurfd"
    if stage in ("01", "02"): return raw_rows(main), f"{main} rows"
    if stage == "03":
        if h.get("option_rows_labelled"): return int(h["option_rows_labelled"]), "option rows labelled"
        return int(h.get("day_rows") or 0), "(name, day) rows labelled"
    if stage == "04": return int(h.get("ward_rows_used") or h.get("days_labelled") or 0), "rows read by Ward"
    if stage == "05": return int(h.get("samples") or 0), "samples"
    return int(h.get("rows") or 0), "rows loaded"


t_all = time.perf_counter()
results = {}
for st in stages:
    code = STAGE.format(data=str(data), params=json.dumps(params, default=str), stage=st)
    m = measure(code, f"volregime {st}")
    results[st] = m
    n, what = stage_rows(st, m["headline"])
    m["rows"], m["what"] = n, what
    print(f"stage {st}: {m['seconds']:8.1f} s  {n:>12,} {what:<26} {n / m['seconds']:>12,.0f} rows/s  peak RSS {m['peak_rss_mib']:7.0f} MiB",
          flush=True)
total = sum(m["seconds"] for m in results.values())
peak = max(m["peak_rss_mib"] for m in results.values())
print(f"stages {stages[0]}-{stages[-1]}: {total:,.0f} s ({total / 60:.1f} min), peak RSS {peak:,.0f} MiB ({peak / 1024:.2f} GiB)")

if a.market == "spx":
    from volregime.features import underlying_frame
    from volregime.scan import ScanParams
    rows = results["02"]["rows"]
    underlying_frame(data / "raw").write_parquet(work / "under.parquet")
    (work / "duck").mkdir(exist_ok=True)
    sql = DUCKDB_FEATURES_SQL.format(threads=a.threads, under=work / "under.parquet", raw=data / "raw", out=work / "duck")
    duck = measure(f"""
import duckdb
#--
duckdb.connect().execute({sql!r})
rows = {rows}
""", f"DuckDB SQL ({a.threads} threads)")
    print(f"\nfeatures  volregime {rows / results['02']['seconds']:>12,.0f} rows/s  peak {results['02']['peak_rss_mib']:6.0f} MiB | "
          f"DuckDB {duck['rows_per_s']:>12,.0f} rows/s  peak {duck['peak_rss_mib']:6.0f} MiB | "
          f"ratio {duck['seconds'] / results['02']['seconds']:.2f}x (target >= 1.0)")

    sp = ScanParams.from_dict(params)
    mbk = measure(f"""
import numpy as np, polars as pl
from sklearn.cluster import MiniBatchKMeans
from sklearn.preprocessing import StandardScaler
#--
X = pl.read_parquet({str(data / 'features' / 'options.parquet')!r}, columns={list(sp.option_columns)!r}).drop_nulls()
X = X.filter(pl.all_horizontal(pl.all().is_finite())).to_numpy()
Z = StandardScaler().fit_transform(X)
inertia = [MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=0).fit(Z).inertia_ for k in range({sp.k_min}, {sp.k_max + 1})]
rows = len(Z)
""", "MiniBatchKMeans loop")
    print(f"k-scan    volregime stage 03 {results['03']['seconds']:7.1f} s (sample fit, bootstrap, metrics, every row labelled), "
          f"peak {results['03']['peak_rss_mib']:6.0f} MiB | MiniBatchKMeans k {sp.k_min}-{sp.k_max} on {mbk['rows']:,} rows "
          f"{mbk['seconds']:7.1f} s, peak {mbk['peak_rss_mib']:6.0f} MiB")

    import pgserver
    from volregime.core import libpq_uri, resolve_postgres_uri
    from volregime.db import LoadParams
    lp = LoadParams.from_dict(params)
    psql = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    conn = libpq_uri(resolve_postgres_uri(None))
    prefix = ["su", "pgserver", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else None

    def run_psql(*sqls):
        args = [str(psql), conn, "-v", "ON_ERROR_STOP=1", *[x for q in sqls for x in ("-c", q)]]
        r = subprocess.run(prefix + [" ".join(f"'{x}'" for x in args)] if prefix else args, capture_output=True, text=True)
        if r.returncode: raise SystemExit(f"psql failed: {r.stderr.strip()[-2000:]}")
        return r
    csv = work / "loaded.csv"
    csv.touch(); os.chmod(csv, 0o666)   # psql may run as the server's user: it writes the dump, then reads it
    src = f"{lp.schema}.{lp.table}"
    run_psql(f"\\copy (SELECT * FROM {src}) TO '{csv}' WITH (FORMAT csv)")
    run_psql(f"DROP TABLE IF EXISTS {lp.schema}.bench_scale_psql; CREATE TABLE {lp.schema}.bench_scale_psql "
             f"(LIKE {src} INCLUDING DEFAULTS)")
    t0 = time.perf_counter()
    run_psql(f"\\copy {lp.schema}.bench_scale_psql FROM '{csv}' WITH (FORMAT csv)")
    psql_s = time.perf_counter() - t0
    run_psql(f"DROP TABLE {lp.schema}.bench_scale_psql")
    n = results["06"]["rows"]
    print(f"load      volregime stage 06 {n / results['06']['seconds']:>12,.0f} rows/s (join, COPY, index, read-back) | "
          f"psql \\copy {n / psql_s:>12,.0f} rows/s ({psql_s:.1f} s, COPY only) | ratio {psql_s / results['06']['seconds']:.2f}x "
          f"(target >= 1.5)")
print(f"bench wall time {time.perf_counter() - t_all:,.0f} s; data dir {work}")
if not a.keep: shutil.rmtree(work, ignore_errors=True)
