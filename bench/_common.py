"""Helpers shared by the benchmarks: run a job in a fresh interpreter and read its wall time and peak RSS."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys
import textwrap


def measure(code: str, label: str) -> dict:
    "Run `code` in a fresh Python; it must set `rows`; returns seconds (of the timed block), rows and peak RSS (MiB)."
    prog = textwrap.dedent("""
        import json, resource, time
        {setup}
        t0 = time.perf_counter()
        {body}
        dt = time.perf_counter() - t0
        rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
        print("@@" + json.dumps({{"seconds": dt, "rows": rows, "peak_rss_mib": rss}}))
    """)
    setup, body = code.split("#--\n", 1) if "#--\n" in code else ("", code)
    prog = prog.format(setup=textwrap.indent(textwrap.dedent(setup), "").strip(), body=textwrap.dedent(body).strip().replace("\n", "\n"))
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{r.stderr[-3000:]}")
    lines = r.stdout.splitlines()
    out = json.loads([l for l in lines if l.startswith("@@") and not l.startswith("@@H")][-1][2:])
    out["headline"] = next((json.loads(l[3:]) for l in reversed(lines) if l.startswith("@@H")), {})   # a job's own "@@H" line
    out["label"] = label
    out["rows_per_s"] = out["rows"] / out["seconds"]
    return out


def report(title: str, ours: dict, peer: dict) -> None:
    "Print both figures and the ratios."
    print(f"\n{title}")
    for m in (ours, peer):
        print(f"  {m['label']:<28} {m['rows']:>12,} rows  {m['seconds']:8.2f} s  {m['rows_per_s']:>12,.0f} rows/s  peak RSS {m['peak_rss_mib']:8.0f} MiB")
    print(f"  throughput ratio (volregime / peer): {ours['rows_per_s'] / peer['rows_per_s']:.2f}x")
    print(f"  peak RSS ratio   (volregime / peer): {ours['peak_rss_mib'] / peer['peak_rss_mib']:.2f}")


def add_market_args(ap, family: str = "noisy", n: int = 6, first_help: str = "first seed") -> None:
    "The arguments that pick a generator family's markets: --family, --n, --first, --years (scenario_markets' inputs)."
    ap.add_argument("--family", default=family, choices=["noisy", "heldout"], help="which generator draws the markets")
    ap.add_argument("--n", type=int, default=n, help="markets (seeds first..first+n-1)")
    ap.add_argument("--first", type=int, default=0, help=first_help)
    ap.add_argument("--years", type=float, default=6.0)


def scenario_markets(family: str, first: int, n: int, years: float, work):
    """(scenario, market, artifacts, export folder) for seeds first..first+n-1 of a generator family (`noisy`: the
    development family, `heldout`: the held-out one), each simulated and written as WRDS exports under `work`."""
    from volregime.core import Artifacts
    from volregime.heldout import heldout_scenario
    from volregime.synth import noisy_scenario, write_exports
    for seed in range(first, first + n):
        sc = (noisy_scenario if family == "noisy" else heldout_scenario)(seed, years)
        w = Path(work) / sc.name
        m = sc.simulate()
        write_exports(m, w / "exports")
        yield sc, m, Artifacts(w / "data"), w / "exports"


# The surface features as DuckDB SQL (the peer of stage 02 in bench/features.py and bench/scale.py): joins, a 5-day
# window per option, forward differences, per-expiry ATM and 25-delta interpolation, constant-maturity interpolation in
# total variance. Format with threads, under (underlying_frame's parquet), raw (the raw dir) and out (a folder).
DUCKDB_FEATURES_SQL = """
SET threads={threads};
CREATE TEMP TABLE u AS SELECT * FROM read_parquet('{under}');
COPY (
  SELECT o.date, o.secid, o.optionid, o.exdate, o.cp_flag, date_diff('day', o.date, o.exdate) AS dte,
         o.strike_price / 1000.0 AS strike, (o.strike_price / 1000.0) / u.close_raw AS moneyness,
         ln((o.strike_price / 1000.0) / u.close_raw) AS log_moneyness, (o.best_bid + o.best_offer) / 2 AS mid,
         CASE WHEN o.best_bid + o.best_offer > 0 THEN (o.best_offer - o.best_bid) / ((o.best_bid + o.best_offer) / 2) END AS rel_spread,
         o.best_bid, o.best_offer, o.impl_volatility, o.delta, o.gamma, o.vega, o.theta, o.volume, o.open_interest,
         avg(o.volume) OVER (PARTITION BY o.optionid ORDER BY u.tday RANGE BETWEEN 4 PRECEDING AND CURRENT ROW) AS volume_ma5,
         u.prc, u.vol, u.price_diff_1d, u.price_diff_2d, u.price_diff_3d, u.price_diff_5d, u.price_diff_8d,
         u.price_diff_13d, u.price_diff_21d, u.price_diff_34d
  FROM read_parquet('{raw}/opprcd/*/*.parquet') o LEFT JOIN u USING (secid, date)
  ORDER BY o.date, o.secid, o.optionid
) TO '{out}/options.parquet' (FORMAT parquet, COMPRESSION zstd);
CREATE TEMP TABLE f AS
  SELECT o.secid, o.date, o.exdate, o.cp_flag, o.delta, o.impl_volatility AS iv, date_diff('day', o.date, o.exdate) AS dte,
         ln((o.strike_price / 1000.0) / coalesce(o.forward_price, u.close_raw)) AS k
  FROM read_parquet('{raw}/opprcd/*/*.parquet') o LEFT JOIN u USING (secid, date)
  WHERE o.best_bid > 0 AND o.impl_volatility IS NOT NULL AND date_diff('day', o.date, o.exdate) >= 7
    AND abs(o.delta) BETWEEN 0.05 AND 0.95;
CREATE TEMP TABLE e AS
  WITH g AS (
    SELECT secid, date, exdate, any_value(dte) AS dte,
      max(k) FILTER (WHERE cp_flag = 'P' AND k < 0) AS k1, arg_max(iv, k) FILTER (WHERE cp_flag = 'P' AND k < 0) AS v1,
      min(k) FILTER (WHERE cp_flag = 'C' AND k >= 0) AS k2, arg_min(iv, k) FILTER (WHERE cp_flag = 'C' AND k >= 0) AS v2,
      max(delta) FILTER (WHERE cp_flag = 'P' AND delta <= -0.25) AS pd1, arg_max(iv, delta) FILTER (WHERE cp_flag = 'P' AND delta <= -0.25) AS pv1,
      min(delta) FILTER (WHERE cp_flag = 'P' AND delta > -0.25) AS pd2, arg_min(iv, delta) FILTER (WHERE cp_flag = 'P' AND delta > -0.25) AS pv2,
      min(delta) FILTER (WHERE cp_flag = 'C' AND delta >= 0.25) AS cd1, arg_min(iv, delta) FILTER (WHERE cp_flag = 'C' AND delta >= 0.25) AS cv1,
      max(delta) FILTER (WHERE cp_flag = 'C' AND delta < 0.25) AS cd2, arg_max(iv, delta) FILTER (WHERE cp_flag = 'C' AND delta < 0.25) AS cv2
    FROM f GROUP BY ALL)
  SELECT secid, date, dte,
    CASE WHEN k2 = 0 THEN v2 ELSE v1 + (v2 - v1) * (0 - k1) / (k2 - k1) END AS atm_iv,
    pv1 + (pv2 - pv1) * (-0.25 - pd1) / (pd2 - pd1) AS put25_iv,
    cv1 + (cv2 - cv1) * (0.25 - cd1) / (cd2 - cd1) AS call25_iv
  FROM g;
CREATE MACRO cm(col, days) AS TABLE
  WITH lo AS (SELECT secid, date, max(dte) AS d1, arg_max(v, dte) AS s1 FROM (SELECT secid, date, dte, COLUMNS(col) AS v FROM e) WHERE v IS NOT NULL AND dte <= days GROUP BY ALL),
       hi AS (SELECT secid, date, min(dte) AS d2, arg_min(v, dte) AS s2 FROM (SELECT secid, date, dte, COLUMNS(col) AS v FROM e) WHERE v IS NOT NULL AND dte > days GROUP BY ALL)
  SELECT secid, date, CASE WHEN d1 = days THEN s1 WHEN d1 IS NOT NULL AND d2 IS NOT NULL THEN
    sqrt((s1 * s1 * d1 / 365 + (s2 * s2 * d2 / 365 - s1 * s1 * d1 / 365) * (days / 365 - d1 / 365) / (d2 / 365 - d1 / 365)) / (days / 365)) END AS val
  FROM lo FULL JOIN hi USING (secid, date);
COPY (
  SELECT u.secid, u.date, a.val AS atm_iv_30d, b.val AS atm_iv_91d, p.val - c.val AS skew_25d,
         (p.val + c.val) / 2 - a.val AS curvature_25d, b.val - a.val AS term_slope, u.rv_21d, u.ret_1d, u.close
  FROM u LEFT JOIN cm('atm_iv', 30) a USING (secid, date) LEFT JOIN cm('atm_iv', 91) b USING (secid, date)
         LEFT JOIN cm('put25_iv', 30) p USING (secid, date) LEFT JOIN cm('call25_iv', 30) c USING (secid, date)
  ORDER BY u.secid, u.date
) TO '{out}/daily.parquet' (FORMAT parquet, COMPRESSION zstd);
"""
