"""Benchmark: the Voila dashboard in headless Chromium with 50,000 rows in the table.

Loads 50,000 regime rows into the embedded PostgreSQL, serves the dashboard with `volregime
dashboard`, and measures in Debian's Chromium (playwright): page load to the first plotted
traces (and to every plot: 4 windows + timeline), and an X-selector change to the re-rendered figure
(median of 5); also a second visit (served by the next preheated kernel). The peer is the floor of
plotly in this browser: the same five figures, built from the same rows by the dashboard's figure
functions, as one static HTML page with plotly.js inline (no kernel, no widgets), and Plotly.update
for an X change. Targets: first plot within 6 s, re-render within 1 s.

    python bench/dashboard.py [--rows 50000]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rows", type=int, default=50_000)
a = ap.parse_args()

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from volregime.core import resolve_postgres_uri  # noqa: E402
from volregime.db import load_results, write_table  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
tmp = Path(tempfile.mkdtemp(prefix="volregime-bench-dash-"))
rng = np.random.default_rng(0)
n = a.rows
cl = rng.integers(0, 4, n)
pl.DataFrame({"date": np.sort(rng.choice(np.arange(np.datetime64("2019-01-01"), np.datetime64("2021-12-31")), n)),
              "secid": 109820, "optionid": np.arange(n), "impl_volatility": 0.1 + 0.08 * cl + rng.normal(0, 0.02, n),
              "delta": rng.uniform(-1, 1, n), "moneyness": rng.uniform(0.8, 1.2, n),
              **{f"pca_component_{i}": rng.normal(cl, 1.0) for i in range(1, 5)}, "cluster": cl}).write_parquet(tmp / "rows.parquet")
uri = resolve_postgres_uri(None)
load_results(tmp / "rows.parquet", uri, table="bench_dash", schema="vr_bench", progress=False)
rows = pl.read_parquet(tmp / "rows.parquet")
daily = rows.group_by("date").agg([(pl.col("cluster") == c).mean().alias(f"share_{c}") for c in range(4)]).sort("date") \
            .with_columns(secid=pl.lit(109820, pl.Int64), regime=pl.lit(1, pl.Int64))
t = daily.to_arrow()
write_table(uri, "vr_bench", "regime_daily", iter(t.to_batches()), t.num_rows, "replace", ["date"], progress=False)   # the timeline
# the peer page, built from the same rows with the dashboard's own figure functions
import json  # noqa: E402
from volregime.dashboard import WINDOW_LAYOUT, fig_timeline, scatter_traces  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
parts = []
for i in range(4):
    f = go.Figure(scatter_traces(rows, "impl_volatility", f"pca_component_{i + 1}", "cluster", 4),
                  layout={**WINDOW_LAYOUT, "title": f"window {i + 1}", "xaxis_title": "impl_volatility"})   # the dashboard's windows
    parts.append(f.to_html(full_html=False, include_plotlyjs=(i == 0)))
parts.append(fig_timeline(daily, 4).to_html(full_html=False, include_plotlyjs=False))
cols = {c: [rows.filter(pl.col("cluster") == k)[c].to_list() for k in range(4)] for c in ("delta", "moneyness", "impl_volatility")}
static_page = tmp / "peer.html"
static_page.write_text("<html><body><script>window.VR_COLS = " + json.dumps(cols) + ";</script>" + "".join(parts) + "</body></html>")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
env = dict(os.environ, POSTGRES_URI=uri, SCHEMA="vr_bench", TABLE_NAME="bench_dash", VOLREGIME_DASHBOARD_DATA=str(tmp))
proc = subprocess.Popen([str(Path(sys.executable).parent / "volregime"), "dashboard", "--port", str(port)], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}/"
for _ in range(120):
    try: urllib.request.urlopen(url, timeout=2); break
    except Exception: time.sleep(0.5)
time.sleep(10)   # let the preheated kernel finish executing the notebook, as on a running server
from playwright.sync_api import sync_playwright  # noqa: E402
FIRST = "Array.from(document.querySelectorAll('.js-plotly-plot')).some(p => p.data && p.data.length > 0)"
ALL = ("Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p.data && p.data.length > 0).length >= 5")  # 4 windows + timeline
try:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        firsts, alls = [], []
        for visit in range(2):
            pg = b.new_page(viewport={"width": 1400, "height": 1400})
            t0 = time.perf_counter()
            pg.goto(url, timeout=120_000, wait_until="commit")
            pg.wait_for_function(FIRST, timeout=120_000, polling=20)
            firsts.append(time.perf_counter() - t0)
            pg.wait_for_function(ALL, timeout=120_000, polling=20)
            alls.append(time.perf_counter() - t0)
            if visit == 0: page = pg
            else: pg.close()
            time.sleep(8)   # the pool preheats the next kernel
        rer = []
        for i, col in enumerate(["delta", "moneyness", "impl_volatility", "delta", "moneyness"]):
            box = page.locator(".vr-x-0 input")
            box.fill(col)
            t0 = time.perf_counter()
            box.press("Enter")
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot')[0].layout.xaxis.title.text === '{col}'",
                                   timeout=30_000, polling=20)
            rer.append(time.perf_counter() - t0)
        # the peer: the same five figures as one static plotly HTML page (plotly.js inline, no kernel, no widgets)
        peer = b.new_page(viewport={"width": 1400, "height": 1400})
        t0 = time.perf_counter()
        peer.goto(static_page.as_uri(), timeout=120_000, wait_until="commit")
        peer.wait_for_function(FIRST, timeout=120_000, polling=20)
        peer_first = time.perf_counter() - t0
        peer.wait_for_function(ALL, timeout=120_000, polling=20)
        peer_all = time.perf_counter() - t0
        peer_rer = []
        for col in ["delta", "moneyness", "impl_volatility", "delta", "moneyness"]:
            t0 = time.perf_counter()
            peer.evaluate(f"""() => {{ const g = document.querySelectorAll('.js-plotly-plot')[0];
                const xs = window.VR_COLS[{col!r}];
                return Plotly.update(g, {{x: xs}}, {{'xaxis.title.text': {col!r}}}); }}""")
            peer_rer.append(time.perf_counter() - t0)
        b.close()
finally:
    proc.terminate()
print(f"dashboard with {n:,} rows (4 windows, 4 regimes, Scattergl), Debian Chromium headless")
print(f"  page load -> first plot: first visit {firsts[0]:.2f} s, second visit {firsts[1]:.2f} s (target 6 s)")
print(f"  page load -> every plot (4 windows + timeline): first visit {alls[0]:.2f} s, second visit {alls[1]:.2f} s")
print(f"  X selector change -> re-render: median {statistics.median(rer):.2f} s, max {max(rer):.2f} s (target 1 s)")
print(f"peer: the same five figures as a static plotly HTML page (plotly.js inline, no kernel), same browser")
print(f"  first plot {peer_first:.2f} s, every plot {peer_all:.2f} s, Plotly.update of X {statistics.median(peer_rer):.2f} s")
print(f"ratio dashboard / static page: first plot {firsts[0] / peer_first:.2f}x, every plot {alls[0] / peer_all:.2f}x, "
      f"re-render {statistics.median(rer) / statistics.median(peer_rer):.2f}x")
