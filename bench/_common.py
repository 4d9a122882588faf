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
    out = json.loads([l for l in r.stdout.splitlines() if l.startswith("@@")][-1][2:])
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
