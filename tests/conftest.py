"""Shared fixtures: a real PostgreSQL (POSTGRES_URI or the embedded pgserver) and small synthetic markets."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

# Tests write only under a temporary folder, never under the project's runs/, reports/ or data/: the settings that
# name those folders point here, for this process and every `volregime` command a test starts.
SANDBOX = Path(os.environ.get("VOLREGIME_TEST_SANDBOX") or tempfile.mkdtemp(prefix="volregime-tests-"))
if "VOLREGIME_TEST_SANDBOX" not in os.environ:
    atexit.register(shutil.rmtree, SANDBOX, True)
for _name, _sub in (("VOLREGIME_DATA_DIR", "data"), ("VOLREGIME_RUNS_DIR", "runs"), ("VOLREGIME_REPORTS_DIR", "reports")):
    os.environ[_name] = str(SANDBOX / _sub)
RUNS, REPORTS = SANDBOX / "runs", SANDBOX / "reports"


@pytest.fixture(scope="session")
def pg_uri():
    "A SQLAlchemy URI of a real PostgreSQL: $POSTGRES_URI, else an embedded server under data/."
    from volregime.core import normalize_uri
    if os.environ.get("POSTGRES_URI"):
        yield normalize_uri(os.environ["POSTGRES_URI"])
        return
    from volregime.core import _pgserver
    pgserver = _pgserver()
    d = SANDBOX / "pg-test"
    d.mkdir(parents=True, exist_ok=True)
    srv = pgserver.get_server(str(d), cleanup_mode="stop")
    yield normalize_uri(srv.get_uri())


@pytest.fixture(scope="session")
def market():
    "A small deterministic synthetic market (two tickers, one quarter)."
    from volregime.synth import simulate_market
    return simulate_market("2019-01-02", "2019-04-30", ["SPY", "QQQ"], n_contracts=60, seed=11)


@pytest.fixture(scope="session")
def exports(tmp_path_factory, market):
    "The market written as WRDS exports, in parquet and in csv.gz."
    from volregime.synth import write_exports
    base = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in ("parquet", "csv.gz"):
        d = base / fmt.replace(".", "_")
        write_exports(market, d, fmt)
        out[fmt] = d
    return out


def volregime_cli(*args, cwd=ROOT, env=None, check=False):
    "Run the installed `volregime` command; returns the CompletedProcess."
    exe = shutil.which("volregime", path=str(Path(sys.executable).parent)) or "volregime"
    e = dict(os.environ, **(env or {}))
    return subprocess.run([exe, *args], cwd=cwd, env=e, capture_output=True, text=True, check=check, timeout=900)


def free_port() -> int:
    "A TCP port free on this machine now."
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def labeled_rows(n: int, seed: int, year: int, secid: int = 109820, n_pca: int = 4):
    "Labelled option rows as the load stage writes them: three clusters whose IV and PCA components differ."
    import numpy as np
    import polars as pl
    rng = np.random.default_rng(seed)
    date = np.sort(rng.choice(np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year}-12-31")), n))
    cl = rng.integers(0, 3, n)
    return pl.DataFrame({"date": date, "secid": secid, "optionid": np.arange(n), "impl_volatility": 0.1 + 0.1 * cl + rng.normal(0, 0.02, n),
                         "delta": rng.uniform(-1, 1, n), "volume": rng.integers(0, 500, n),
                         **{f"pca_component_{i}": rng.normal(cl, 1.0) for i in range(1, n_pca + 1)}, "cluster": cl})
