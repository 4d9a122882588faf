"""Benchmark: the option-level k-scan at 1 million rows x ~10 features, k 2..12, 10 bootstraps.

volregime's scan (full-data fits in parallel through joblib, bootstrap refits on 20,000-row samples,
silhouette on a 5,000-row sample, Wasserstein metrics on 2,000-point cluster samples) against the
same scan done plainly: sklearn KMeans loops, one process, every bootstrap refit on a full-size
resample (the silhouette still on a sample: on 1 million rows it needs 10^12 distances). Targets:
the whole scan under 5 minutes on 2 cores, peak RSS under 4 GiB.

    python bench/scan.py [--rows 1000000] [--kmax 12] [--boot 10]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import measure, report

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rows", type=int, default=1_000_000)
ap.add_argument("--kmax", type=int, default=12)
ap.add_argument("--boot", type=int, default=10)
a = ap.parse_args()

tmp = Path(tempfile.mkdtemp(prefix="volregime-bench-scan-"))
import polars as pl  # noqa: E402
from volregime.core import Artifacts  # noqa: E402
from volregime.features import FeatureParams, run_features  # noqa: E402
from volregime.ingest import IngestParams, run_ingest  # noqa: E402

cols = ["impl_volatility", "delta", "gamma_rel", "vega_rel", "theta_rel", "log_moneyness", "dte", "volume", "open_interest", "volume_ma5"]
years = max(1, a.rows // 400_000)
run_ingest(Artifacts(tmp), IngestParams(start="2016-01-04", end=f"{2016 + years}-12-30",
                                        n_contracts=int(a.rows / (252 * (years + 1)) * 1.6), seed=0))
run_features(Artifacts(tmp), FeatureParams())
opt = pl.read_parquet(tmp / "features" / "options.parquet", columns=["date", "secid", "optionid", *cols]).drop_nulls()
opt = opt.head(a.rows)
opt.write_parquet(tmp / "opt.parquet")
n = opt.height
print(f"{n:,} option rows x {len(cols)} features; k 2..{a.kmax}; {a.boot} bootstraps")

ours = measure(f"""
import polars as pl
from volregime.scan import fit_granularity
df = pl.read_parquet({str(tmp / 'opt.parquet')!r})
#--
f = fit_granularity(df, {cols!r}, "impl_volatility", "option", ["date", "secid", "optionid"], k_min=2, k_max={a.kmax},
                    n_boot={a.boot}, boot_sample=20000, silhouette_sample=5000, n_jobs=2, random_state=0)
rows = {n}
print("k*", f.scan.k_star)
""", "volregime scan (n_jobs=2)")
peer = measure(f"""
import numpy as np, polars as pl
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.preprocessing import StandardScaler
df = pl.read_parquet({str(tmp / 'opt.parquet')!r})
#--
X = df.select({cols!r}).to_numpy().astype(float)
for j, c in enumerate({cols!r}):
    if c in ("volume", "open_interest", "volume_ma5"): X[:, j] = np.log1p(X[:, j])
Z = PCA(0.95, svd_solver="full").fit_transform(StandardScaler().fit_transform(X))
rs = np.random.RandomState(0)
for k in range(2, {a.kmax} + 1):
    lab = KMeans(k, n_init=4, random_state=0).fit_predict(Z)
    silhouette_score(Z, lab, sample_size=5000, random_state=0); calinski_harabasz_score(Z, lab); davies_bouldin_score(Z, lab)
    for b in range({a.boot}):
        idx = rs.randint(0, len(Z), len(Z))
        m = KMeans(k, n_init=2, random_state=b).fit(Z[idx])
        u = np.unique(idx); adjusted_rand_score(lab[u], m.predict(Z[u]))
rows = {n}
""", "plain sklearn loops")
report(f"option-level k-scan, {n:,} rows", ours, peer)
print(f"  wall-time ratio (peer / volregime): {peer['seconds'] / ours['seconds']:.1f}x faster")
shutil.rmtree(tmp)
