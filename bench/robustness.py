"""Robustness suite: stages 01-05 in process over drawn markets, development and held-out scenarios, scored against truth.

Each scenario is a market drawn by `volregime.synth.random_scenario` (2-5 regimes with their own persistence and
overlap; monthly, weekly or daily expiries; strike grids; up to 30 % missing IVs; outages; 1-3 names with their own vol
levels and calendars), written as WRDS export files and run as `volregime run --set source=local` would run it.
Development seeds are 0-999 (defaults may be chosen on them), held-out seeds 1000-1999 (reported). The peer figure is
the truth-free baseline the issue measured: plain K-means with the true k on atm_iv_30d, skew_25d and rv_21d of the
same days.

    python bench/robustness.py [--dev 12] [--heldout 12] [--years 3] [--forecast quick|profile] [--out bench/out/robustness]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import polars as pl

from volregime.robustness import check_targets, run_suite, suite_report, summarise

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--dev", type=int, default=12, help="development scenarios (seeds 0..dev-1)")
ap.add_argument("--heldout", type=int, default=12, help="held-out scenarios (seeds 1000..1000+heldout-1)")
ap.add_argument("--years", type=float, default=3.0)
ap.add_argument("--contracts", type=int, default=120)
ap.add_argument("--profile", default="demo")
ap.add_argument("--forecast", default="quick", choices=["quick", "profile"])
ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "robustness"))
a = ap.parse_args()

out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
seeds = [*range(a.dev), *range(1000, 1000 + a.heldout)]
with tempfile.TemporaryDirectory(prefix="volregime-robust-") as work:
    rows = run_suite(seeds, work, out / "rows.parquet", a.years, a.contracts, a.profile, a.forecast)
pl.Config.set_tbl_rows(50); pl.Config.set_tbl_width_chars(200)
print(summarise(rows))
print(check_targets(rows, "dev"))
print(check_targets(rows, "heldout"))
print(f"report: {suite_report(rows, out / 'robustness.html')}")
