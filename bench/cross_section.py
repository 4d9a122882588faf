"""Benchmark: the cross-section on Dask -- ingest, features and the day-level scan of N underlyings x Y years of vsurfd.

A synthetic panel (names with their own vol levels and idiosyncratic regimes, vsurfd only, as a cross-section study
pulls it) of the largest size is simulated once, 50 names at a time (`write_panel_exports`: 400 names x 5 years are 188
million vsurfd rows), and written as WRDS exports; smaller sizes are its first N names. Each
size runs stages 01-03 (`run_ingest`, `run_features`, `run_scan` with the day granularity) in a fresh interpreter three
ways: in process (`cluster=none`, the peer), and on LocalClusters of 1 and 2 single-threaded worker processes, reached
by scheduler address exactly as a multi-node cluster is. Printed per run: vsurfd rows/s over the three stages, the
driver's and each worker's peak RSS. Targets: 2 workers >= 1.6 x 1 worker (scaling efficiency >= 80 %); per-worker peak
memory flat from 100 to 400 underlyings. Beside them, the machine's own ceiling: the same clusters' throughput on a
pure-Python CPU loop (what two workers can give over one on this hardware, whatever the code).

    python bench/cross_section.py [--sizes 100,200,400] [--years 5]
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--sizes", default="100,200,400", help="underlyings per run")
ap.add_argument("--years", type=int, default=5, help="years of daily data")
ap.add_argument("--workers", default="1,2", help="LocalCluster sizes (single-threaded workers)")
a = ap.parse_args()
sizes = sorted(int(s) for s in a.sizes.split(","))
tmp = Path(tempfile.mkdtemp(prefix="volregime-bench-cross-"))
atexit.register(shutil.rmtree, tmp, True)   # the exports (GBs at 5 years) go whatever happens

JOB = r"""
import json, os, resource, sys, time
from pathlib import Path
exp, data, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
import polars as pl
from volregime.core import Artifacts
from volregime.features import FeatureParams, run_features
from volregime.ingest import IngestParams, run_ingest
from volregime.scan import ScanParams, run_scan
def spin(_):
    t = time.process_time(); x = 0
    for i in range(15_000_000): x += i * i
    return time.process_time() - t
def peak_mib():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
cluster, lc = "none", None
if workers:
    from distributed import Client
    from volregime.cluster import local_cluster
    lc_cm = local_cluster(workers)   # single-threaded workers whose Polars/BLAS pools have one thread
    lc = lc_cm.__enter__()
    cluster = lc.scheduler_address
art = Artifacts(data)
t0 = time.perf_counter()
run_ingest(art, IngestParams(source="local", local_path=exp, tickers=[], start="", end="", reuse_pulls=False, cluster=cluster))
t1 = time.perf_counter()
run_features(art, FeatureParams(cluster=cluster))
t2 = time.perf_counter()
res = run_scan(art, ScanParams(granularities=["day"], k_max=8, n_boot=10, cluster=cluster))
t3 = time.perf_counter()
rows = pl.scan_parquet(str(art.raw / "vsurfd" / "**" / "*.parquet")).select(pl.len()).collect().item()
wpeak, ceiling = [], None
if lc is not None:
    with Client(cluster) as c:
        wpeak = sorted(c.run(peak_mib).values())
        t4 = time.perf_counter(); c.gather(c.map(spin, range(2 * workers), pure=False)); ceiling = 2 * workers / (time.perf_counter() - t4)
    lc_cm.__exit__(None, None, None)
print("@@" + json.dumps({"rows": rows, "seconds": t3 - t0, "ingest_s": t1 - t0, "features_s": t2 - t1, "scan_s": t3 - t2,
                         "driver_peak_mib": peak_mib(), "worker_peak_mib": wpeak, "k_star": res.headline["k_star_day"],
                         "spin_per_s": ceiling}))
"""

t0 = time.perf_counter()
import polars as pl  # noqa: E402
from volregime.synth import MarketSpec, write_panel_exports  # noqa: E402
n_max = max(sizes)
full = tmp / f"exp{n_max}"
write_panel_exports(full, "2016-01-04", f"{2016 + a.years - 1}-12-30", [f"N{i:03d}" for i in range(n_max)], seed=0,
                    spec=replace(MarketSpec(), idio_share=0.3, name_vol_sd=0.3, chains=False), piece=50)
n_rows = pl.scan_parquet(str(full / "vsurfd*.parquet")).select(pl.len()).collect().item()
print(f"simulated {n_max} underlyings x {a.years} years (vsurfd {n_rows:,} rows) in {time.perf_counter() - t0:.0f}s", flush=True)
for n in sizes:
    if n == n_max: continue
    keep = sorted(pl.read_parquet(full / "secprd.parquet")["secid"].unique().to_list())[:n]
    d = tmp / f"exp{n}"
    d.mkdir()
    for p in full.glob("*.parquet"):   # the first n names of the widest panel (streamed): a panel of n names
        lf = pl.scan_parquet(p)
        if "secid" in lf.collect_schema(): lf = lf.filter(pl.col("secid").is_in(keep))
        lf.sink_parquet(d / p.name, compression="zstd", row_group_size=1 << 20)

results = {}
for n in sizes:
    for w in [0] + [int(x) for x in a.workers.split(",")]:
        label = "in process (peer)" if w == 0 else f"LocalCluster {w} worker(s)"
        data = tmp / f"data-{n}-{w}"
        r = subprocess.run([sys.executable, "-c", JOB, str(tmp / f"exp{n}"), str(data), str(w)], capture_output=True, text=True)
        if r.returncode != 0: raise SystemExit(f"{n} underlyings, {label}: failed\n{r.stderr[-3000:]}")
        out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("@@")][-1][2:])
        results[(n, w)] = out
        shutil.rmtree(data, ignore_errors=True)
        print(f"{n:>4} underlyings  {label:<24} {out['rows']:>12,} rows  {out['seconds']:7.1f} s "
              f"(ingest {out['ingest_s']:.1f}, features {out['features_s']:.1f}, scan {out['scan_s']:.1f})  "
              f"{out['rows'] / out['seconds']:>10,.0f} rows/s  driver peak {out['driver_peak_mib']:6.0f} MiB  "
              f"worker peaks {', '.join(f'{x:.0f}' for x in out['worker_peak_mib']) or '-'} MiB  k*={out['k_star']}", flush=True)

print("\nscaling (rows/s of 2 workers / 1 worker; target >= 1.6) and the largest worker peak per size (target: flat);\n"
      "the machine's own ceiling: a pure-Python CPU loop per task, the same tasks on the same clusters (2 workers / 1)")
for n in sizes:
    one, two = results.get((n, 1)), results.get((n, 2))
    if one and two:
        print(f"  {n:>4} underlyings: {one['seconds'] / two['seconds']:.2f}x  (in process {results[(n, 0)]['seconds']:.1f} s, "
              f"1 worker {one['seconds']:.1f} s, 2 workers {two['seconds']:.1f} s); worker peak {max(two['worker_peak_mib']):.0f} MiB; "
              f"ceiling {two['spin_per_s'] / one['spin_per_s']:.2f}x")

print("\nfeatures on the cluster against in process, the same two cores (2 single-threaded workers; in process, Polars'\n"
      "two threads): with the file index a task opens only the files that hold its names; target within +-25 %")
for n in sizes:
    two, inproc = results.get((n, 2)), results.get((n, 0))
    if two and inproc:
        r = two["features_s"] / inproc["features_s"]
        print(f"  {n:>4} underlyings: features {two['features_s']:.1f} s on 2 workers, {inproc['features_s']:.1f} s in process: "
              f"{r:.2f}x ({'within' if abs(r - 1) <= 0.25 else 'outside'} +-25 %)")
