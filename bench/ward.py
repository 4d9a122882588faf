"""Benchmark: exact Ward linkage — fastcluster.linkage_vector (memory-linear) against scipy's linkage.

At n = 20,000 (d = 8) both run and the time and peak-memory ratios are printed; at 100,000 and
200,000 only linkage_vector runs (scipy would need the n^2/2 distance matrix: 40 GB and 160 GB).

    python bench/ward.py [--sizes 20000,100000,200000] [--dim 8]
"""
from __future__ import annotations

import argparse

from _common import measure

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--sizes", default="20000,100000,200000")
ap.add_argument("--dim", type=int, default=8)
a = ap.parse_args()
sizes = [int(s) for s in a.sizes.split(",")]

def job(n, fn):
    return f"""
import numpy as np
X = np.random.default_rng(0).normal(size=({n}, {a.dim}))
{"import fastcluster" if fn == "vector" else "from scipy.cluster.hierarchy import linkage"}
#--
Z = {"fastcluster.linkage_vector(X, method='ward')" if fn == "vector" else "linkage(X, method='ward')"}
rows = {n}
"""

print(f"Ward linkage, d = {a.dim}")
for n in sizes:
    ours = measure(job(n, "vector"), "fastcluster.linkage_vector")
    line = f"  n = {n:>7,}: linkage_vector {ours['seconds']:7.1f} s, peak RSS {ours['peak_rss_mib']:6.0f} MiB"
    if n <= 30_000:
        peer = measure(job(n, "scipy"), "scipy linkage")
        line += (f"; scipy linkage {peer['seconds']:7.1f} s, peak RSS {peer['peak_rss_mib']:6.0f} MiB"
                 f"; time ratio scipy/vector {peer['seconds'] / ours['seconds']:.1f}x, memory ratio {peer['peak_rss_mib'] / ours['peak_rss_mib']:.1f}x")
    else:
        line += f"; scipy linkage not run (needs {n * (n - 1) / 2 * 8 / 2**30:.0f} GiB for the distance matrix)"
    print(line, flush=True)
