"""The runner end to end, the CLI, settings precedence and secret masking."""
from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from conftest import REPORTS, ROOT, RUNS, volregime_cli
from volregime.core import get_logger, get_settings, mask_secrets, merge_params


def test_settings_precedence(tmp_path):
    (tmp_path / "settings.ini").write_text("[volregime]\ndata_dir = from_ini\n[database]\ntable_name = ini_table\nschema = ini_schema\n")
    (tmp_path / ".env").write_text("TABLE_NAME=dotenv_table\nSCHEMA=dotenv_schema\n")
    s = get_settings(root=tmp_path, environ={"SCHEMA": "env_schema"})
    assert s.data_dir == "from_ini" and s.sources["data_dir"].startswith("settings.ini")
    assert s.table_name == "dotenv_table"          # .env beats settings.ini
    assert s.schema == "env_schema"                # a real variable beats .env
    assert s.label_col == "cluster" and s.sources["label_col"] == "default"
    s = get_settings({"table_name": "cli_table"}, root=tmp_path, environ={})
    assert s.table_name == "cli_table" and s.sources["table_name"] == "command line"


def test_profiles_and_overrides():
    p = merge_params("smoke", sets=["n_contracts=50", "tickers=[SPY,QQQ]"])
    assert p["n_contracts"] == 50 and p["tickers"] == ["SPY", "QQQ"]
    demo = merge_params("demo")
    assert demo["start"] < p["start"] or demo["end"] > p["end"], "demo spans more than smoke"


def test_unquoted_dates_stay_strings(tmp_path):
    "YAML reads 2019-01-02 as a date, which papermill cannot pass to a stage: --set and --config keep ISO strings."
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("end: 2019-03-29\nn_contracts: 40\n")
    p = merge_params("smoke", config=cfg, sets=["start=2019-01-02"])
    assert (p["start"], p["end"], p["n_contracts"]) == ("2019-01-02", "2019-03-29", 40)
    json.dumps(p)   # what papermill does with them


def test_masking_in_logs(capsys):
    log = get_logger("test")
    log.warning("connecting to postgresql+psycopg2://alice:hunter2@db.example:5432/wrds")
    err = capsys.readouterr().err
    assert "hunter2" not in err and "alice:***@db.example" in err
    assert mask_secrets("dbname=x password='a b' host=h") == "dbname=x password=*** host=h"


def test_cli_help_on_every_subcommand():
    for sub in ("run", "synth", "ingest", "combine", "db"):
        r = volregime_cli(sub, "--help")
        assert r.returncode == 0 and "usage: volregime " + sub in r.stdout


def test_db_uri_and_status_mask_the_password():
    env = {"POSTGRES_URI": "postgresql://bob:topsecret@dbhost:5432/research"}
    r = volregime_cli("db", "uri", env=env)
    assert r.returncode == 0 and "topsecret" not in r.stdout and "bob:***@dbhost" in r.stdout
    assert r.stdout.startswith("postgresql+psycopg2://")
    r = volregime_cli("db", "status", env=env)
    st = json.loads(r.stdout)
    assert st["postgres_uri_from"] == "environment POSTGRES_URI" and "topsecret" not in r.stdout


def test_synth_then_ingest_local_from_the_cli(tmp_path):
    r = volregime_cli("synth", "--out", str(tmp_path / "exp"), "--format", "csv.gz", "--start", "2018-12-03",
                      "--end", "2019-02-28", "--n-contracts", "40")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "exp" / "opprcd2018.csv.gz").exists() and (tmp_path / "exp" / "opprcd2019.csv.gz").exists()
    # no --start/--end: every date of the export files
    r = volregime_cli("ingest", "--source", "local", "--path", str(tmp_path / "exp"), "--data", str(tmp_path / "d"),
                      "--consolidate", str(tmp_path / "hist.parquet"))
    assert r.returncode == 0, r.stderr
    hist = pl.read_parquet(tmp_path / "hist.parquet")
    assert json.loads(r.stdout.splitlines()[0])["rows"]["opprcd"] == hist.height
    assert str(hist["date"].min()) == "2018-12-03" and str(hist["date"].max()) == "2019-02-28"
    r = volregime_cli("ingest", "--source", "local", "--path", str(tmp_path / "exp"), "--data", str(tmp_path / "d"),
                      "--start", "2019-01-02", "--end", "2019-01-31")
    assert r.returncode == 0, r.stderr
    days = pl.read_parquet(tmp_path / "d" / "raw" / "secprd.parquet")["date"]
    assert str(days.min()) == "2019-01-02" and str(days.max()) == "2019-01-31"
    r = volregime_cli("ingest", "--source", "wrds", "--data", str(tmp_path / "d"))
    assert r.returncode == 2 and "source=wrds needs start and end" in r.stderr
    r = volregime_cli("ingest", "--source", "local", "--path", str(tmp_path / "nowhere"), "--data", str(tmp_path / "d"))
    assert r.returncode == 2 and "export folder not found" in r.stderr


@pytest.mark.slow
def test_run_smoke_end_to_end_and_a_failing_stage(tmp_path):
    data = tmp_path / "data"
    r = volregime_cli("run", "--profile", "smoke", "--stages", "01", "--data", str(data), "--run-id", "pytest-ok", "--no-progress")
    assert r.returncode == 0, r.stderr
    # stage kernels on Unix sockets in a private folder: no localhost TCP ports, no unencrypted-TCP warning
    assert "without encryption" not in r.stderr
    run_dir, rep = RUNS / "pytest-ok", REPORTS / "pytest-ok"
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "ok" and rec["versions"]["polars"] and "git_sha" in rec
    assert rec["stages"][0]["status"] == "ok" and rec["stages"][0]["seconds"] > 0
    assert rec["stages"][0]["headline"]["rows_opprcd"] > 0
    assert (run_dir / "01_ingest.ipynb").exists()
    page = (rep / "01_ingest.html").read_text()
    assert "Underlying and ATM IV term structure" in page and "def run_ingest" not in page  # no code cells
    # the report opens offline: plotly.js beside it, not from the CDN, and the figures draw without a network
    assert "cdn.plot.ly" not in page and (rep / "plotly.min.js").stat().st_size > 1_000_000
    assert re.findall(r'<script[^>]*\ssrc="https?://[^"]*"', page) == []   # no script from any CDN
    assert page.count('src="plotly.min.js"') == 1
    assert "<title>01_ingest · volregime run pytest-ok</title>" in page
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = b.new_context(offline=True).new_page()
        pg.goto((rep / "01_ingest.html").as_uri())
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2 && "
                             "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g.data && g.data.length > 0)",
                             timeout=30_000)
        b.close()
    index = (rep / "index.html").read_text()
    assert "01_ingest" in index and "rows_opprcd" in index
    assert (REPORTS / "latest").resolve() == rep.resolve()
    before = {p: p.stat().st_mtime_ns for p in (data / "raw").rglob("*.parquet")}
    # a failing stage: non-zero exit, one-line reason, failed notebook and HTML kept, earlier artifacts intact
    r = volregime_cli("run", "--profile", "smoke", "--stages", "01", "--data", str(data), "--run-id", "pytest-fail",
                      "--set", "source=local", "--set", f"local_path={tmp_path / 'missing'}", "--no-progress")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("volregime run: stage 01_ingest failed: IngestError") and "export folder not found" in last
    frep = REPORTS / "pytest-fail"
    assert "export folder not found" in (frep / "01_ingest.html").read_text()
    assert "failed" in (frep / "index.html").read_text()
    assert json.loads((RUNS / "pytest-fail" / "run.json").read_text())["status"] == "failed"
    assert {p: p.stat().st_mtime_ns for p in (data / "raw").rglob("*.parquet")} == before


def test_unknown_parameter_is_refused():
    r = volregime_cli("run", "--profile", "smoke", "--set", "k_maxx=3", "--no-progress")
    assert r.returncode == 2 and "unknown parameter(s) k_maxx" in r.stderr
    r = volregime_cli("run", "--profile", "nosuch", "--no-progress")
    assert r.returncode == 2 and "profile 'nosuch'" in r.stderr


def test_every_parameter_of_every_stage_is_visible_to_papermill():
    import re
    import nbformat
    from volregime.pipeline import declared_parameters, stage_notebooks
    nbs = stage_notebooks()
    assert [p.name[:2] for p in nbs] == ["01", "02", "03", "04", "05", "06"]
    for nb in nbs:
        cell = next(c for c in nbformat.read(nb, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        written = {m.group(1) for m in re.finditer(r"^(\w+)\s*:", cell.source, re.M)}
        assert written == set(declared_parameters(nb)), f"{nb.name}: papermill cannot parse {written - set(declared_parameters(nb))}"


@pytest.mark.slow
def test_ctrl_c_records_the_run_as_interrupted(tmp_path):
    "Ctrl-C (SIGINT to the terminal's process group) mid-stage: exit 130, run.json and the index say where it stopped."
    import os
    import signal
    import subprocess
    import sys
    import time
    import shutil
    exe = str(Path(sys.executable).parent / "volregime")
    rec, rep = RUNS / "pytest-int", REPORTS / "pytest-int"
    shutil.rmtree(rec, ignore_errors=True); shutil.rmtree(rep, ignore_errors=True)
    p = subprocess.Popen([exe, "run", "--profile", "smoke", "--stages", "01,05", "--data", str(tmp_path / "d"),
                          "--run-id", "pytest-int", "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    for _ in range(600):   # until stage 05 has started (stage 01's report is rendered when it has ended)
        if (rep / "01_ingest.html").exists() or p.poll() is not None: break
        time.sleep(0.1)
    time.sleep(3)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "volregime run: stage 05_lstm_nested_cv interrupted"
    run = json.loads((rec / "run.json").read_text())
    assert run["status"] == "interrupted"
    got = [(s["stage"], s["status"]) for s in run["stages"]]
    assert got[1] == ("05_lstm_nested_cv", "interrupted") and got[0] in (("01_ingest", "ok"), ("01_ingest", "cached"))
    assert "interrupted" in (rep / "index.html").read_text()
