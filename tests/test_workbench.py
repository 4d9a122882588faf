"""The researcher's workbench: the stage cache, sweeps and JupyterLab, each through the installed `volregime` command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from conftest import REPORTS, ROOT, RUNS, free_port, volregime_cli

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SHORT = ["--profile", "smoke", "--set", "end=2019-02-28", "--set", "n_contracts=40", "--no-progress"]


def statuses(run_id: str) -> list:
    return [(s["stage"][:2], s["status"]) for s in json.loads((RUNS / run_id / "run.json").read_text())["stages"]]


def stage(run_id: str, num: str) -> dict:
    return next(s for s in json.loads((RUNS / run_id / "run.json").read_text())["stages"] if s["stage"].startswith(num))


@pytest.mark.slow
def test_a_second_identical_run_is_cached_and_a_change_reruns_its_stage_and_what_follows():
    r = volregime_cli("run", *SHORT, "--stages", "01,02,03", "--run-id", "pytest-cache-1")
    assert r.returncode == 0, r.stderr
    assert statuses("pytest-cache-1") == [("01", "ok"), ("02", "ok"), ("03", "ok")]
    t0 = time.perf_counter()
    r = volregime_cli("run", *SHORT, "--stages", "01,02,03", "--run-id", "pytest-cache-2")
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert statuses("pytest-cache-2") == [("01", "cached"), ("02", "cached"), ("03", "cached")]
    assert "3 of 3 stages from the cache" in r.stdout and took < 30
    for num in ("01", "02", "03"):
        assert stage("pytest-cache-2", num)["key"] == stage("pytest-cache-1", num)["key"]
        assert stage("pytest-cache-2", num)["cached_from"] == "pytest-cache-1"
    # the reused run holds the same files, report and headlines as the one that computed them
    for rel in ("features/daily.parquet", "regimes/daily.parquet"):
        assert pl.read_parquet(RUNS / "pytest-cache-2" / "data" / rel).equals(pl.read_parquet(RUNS / "pytest-cache-1" / "data" / rel))
    assert (REPORTS / "pytest-cache-2" / "03_unsupervised_scan.html").stat().st_size > 10_000
    assert stage("pytest-cache-2", "03")["headline"] == stage("pytest-cache-1", "03")["headline"]
    # a stage-03 parameter: 01 and 02 reused, 03 computed again
    r = volregime_cli("run", *SHORT, "--stages", "01,02,03", "--run-id", "pytest-cache-3", "--set", "k_max=4")
    assert r.returncode == 0, r.stderr
    assert statuses("pytest-cache-3") == [("01", "cached"), ("02", "cached"), ("03", "ok")]
    assert stage("pytest-cache-3", "03")["key"] != stage("pytest-cache-1", "03")["key"]
    # a stage-02 parameter: 02 and 03 computed (03's input changed), 01 reused
    r = volregime_cli("run", *SHORT, "--stages", "01,02,03", "--run-id", "pytest-cache-4", "--set", "rv_window=10")
    assert r.returncode == 0, r.stderr
    assert statuses("pytest-cache-4") == [("01", "cached"), ("02", "ok"), ("03", "ok")]
    # --from and --force recompute
    r = volregime_cli("run", *SHORT, "--stages", "01,02", "--run-id", "pytest-cache-5", "--from", "02")
    assert r.returncode == 0 and statuses("pytest-cache-5") == [("01", "cached"), ("02", "ok")], r.stderr
    r = volregime_cli("run", *SHORT, "--stages", "01", "--run-id", "pytest-cache-6", "--force")
    assert r.returncode == 0 and statuses("pytest-cache-6") == [("01", "ok")], r.stderr
    r = volregime_cli("run", *SHORT, "--stages", "01", "--run-id", "pytest-cache-7", "--from", "07")
    assert r.returncode == 2 and "--from 07: unknown stage" in r.stderr
    # the cache: listed, pruned per stage
    r = volregime_cli("cache", "list")
    assert r.returncode == 0 and "03_unsupervised_scan" in r.stdout and "pytest-cache-1" in r.stdout, r.stderr
    r = volregime_cli("cache", "prune", "--keep", "0", "--stage", "01")
    assert r.returncode == 0 and "removed" in r.stdout
    listed = volregime_cli("cache", "list").stdout
    assert "01_ingest" not in listed and "03_unsupervised_scan" in listed
    r = volregime_cli("run", *SHORT, "--stages", "01", "--run-id", "pytest-cache-8")
    assert statuses("pytest-cache-8") == [("01", "ok")], r.stderr


@pytest.mark.slow
def test_a_sweep_reuses_upstream_stages_and_compares_the_runs_in_one_page():
    r = volregime_cli("sweep", "--profile", "smoke", "--set", "end=2019-02-28", "--set", "n_contracts=40", "--set", "k_max=3,5",
                      "--stages", "01,02,03", "--sweep-id", "pytest-sweep", "--jobs", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    sw = json.loads((REPORTS / "sweeps" / "pytest-sweep" / "sweep.json").read_text())
    assert [r["point"] for r in sw["runs"]] == [{"end": "2019-02-28", "n_contracts": 40, "k_max": 3},
                                                {"end": "2019-02-28", "n_contracts": 40, "k_max": 5}]
    # the tests share one stage cache: no other test runs stage 03 with these settings and k_max=5 (the cache test's
    # k_max=4 entry stays in it), so the second point must compute 03 and may reuse only what the first point stored
    second = [(s["stage"][:2], s["status"]) for s in sw["runs"][1]["stages"]]
    assert second == [("01", "cached"), ("02", "cached"), ("03", "ok")]
    page = REPORTS / "sweeps" / "pytest-sweep" / "index.html"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        pg = b.new_context(offline=True).new_page()
        pg.goto(page.as_uri())
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3 && "
                             "Array.from(document.querySelectorAll('.js-plotly-plot')).every(g => g.data && g.data[0].x.length == 2)",
                             timeout=30_000)
        rows = pg.evaluate("Array.from(document.querySelectorAll('table tr')).map(r => r.innerText)")
        assert len(rows) == 3 and "k_max" in rows[0] and "03_unsupervised_scan.k_star_day" in rows[0]
        assert pg.locator("a[href='../../pytest-sweep-01/index.html']").count() == 1
        b.close()
    r = volregime_cli("sweep", "--set", "k_maxx=3,4", "--no-progress")
    assert r.returncode == 2 and "unknown parameter(s) k_maxx" in r.stderr


@pytest.mark.slow
def test_jupyterlab_opens_a_stage_notebook_and_runs_it(tmp_path):
    "`volregime lab` in Chromium: 02_features opens with the project's kernel, Run All finishes, a figure renders, no error."
    port, token = free_port(), "pytest-lab-token"
    # the notebook is the project's source: Lab's autosave would write this run's outputs into it
    lab_settings = tmp_path / "lab-settings" / "@jupyterlab" / "docmanager-extension"
    lab_settings.mkdir(parents=True)
    (lab_settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    nb_settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    nb_settings.mkdir(parents=True)   # every cell in the page, not only those scrolled into view
    (nb_settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    before = (ROOT / "nbs" / "02_features.ipynb").read_bytes()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"))
    exe = str(Path(sys.executable).parent / "volregime")
    proc = subprocess.Popen([exe, "lab", "02_features.ipynb", "--no-browser", "--port", str(port), "--token", token], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2); break
            except Exception: time.sleep(0.5)
        kernels = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", timeout=10).read())
        assert Path(kernels["kernelspecs"]["python3"]["spec"]["argv"][0]).resolve() == Path(sys.executable).resolve() or \
            kernels["kernelspecs"]["python3"]["spec"]["argv"][0] == "python"
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            pg = b.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(f"http://127.0.0.1:{port}/lab/tree/nbs/02_features.ipynb?token={token}", timeout=120_000)
            pg.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-CodeCell').length > 10", timeout=120_000)
            # the kernel must be up before Run All: a click while it is still starting runs nothing
            for _ in range(240):
                sessions = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={token}", timeout=10).read())
                if sessions and all(s["kernel"]["execution_state"] == "idle" for s in sessions): break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the notebook's kernel never became idle: {sessions}")
            pg.wait_for_function("document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]') !== null", timeout=120_000)
            n_code = pg.evaluate("document.querySelectorAll('.jp-Notebook .jp-CodeCell').length")
            assert n_code > 10
            prompts = "Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')).map(e => e.innerText)"
            started = "() => " + prompts + ".some(t => /\\[(\\*|\\d+)\\]/.test(t))"
            for attempt in range(3):   # Run All, again if nothing was queued
                pg.click("div.lm-MenuBar-itemLabel:text-is('Run')")
                pg.click("li.lm-Menu-item:has-text('Run All Cells')")
                try: pg.wait_for_function(started, timeout=30_000, polling=500); break
                except Exception:
                    pg.keyboard.press("Escape")
            else:
                raise AssertionError("Run All Cells queued no cell three times")
            done = """() => {
                const p = """ + prompts + """;
                const err = Array.from(document.querySelectorAll('.jp-OutputArea-output')).some(e => e.innerText.includes('Traceback'));
                return err || (p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t)));
            }"""
            try: pg.wait_for_function(done, timeout=300_000, polling=1000)
            except Exception:   # say where it stopped: the prompts, the kernel's state, the last outputs
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={token}", timeout=10).read())
                last = pg.evaluate("Array.from(document.querySelectorAll('.jp-OutputArea-output')).slice(-3).map(e => e.innerText.slice(0, 300))")
                dialogs = pg.evaluate("Array.from(document.querySelectorAll('.jp-Dialog')).map(e => e.innerText.slice(0, 200))")
                raise AssertionError(f"Run All did not finish in 300 s: prompts {pg.evaluate(prompts)}; "
                                     f"kernel {[s['kernel']['execution_state'] for s in state]}; dialogs {dialogs}; last outputs {last}") from None
            texts = pg.evaluate("Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText)")
            assert not [t for t in texts if "Traceback" in t], [t[:300] for t in texts if "Traceback" in t][:2]
            pg.wait_for_function("document.querySelectorAll('.jp-Notebook .js-plotly-plot').length >= 1", timeout=60_000)
            b.close()
    finally:
        import psutil
        tree = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()
        try: proc.communicate(timeout=30)
        except subprocess.TimeoutExpired: proc.kill()
        gone, alive = psutil.wait_procs(tree, timeout=20)
        for p in alive: p.kill()
    assert not alive, f"JupyterLab or its kernels outlived `volregime lab`: {[p.pid for p in alive]}"
    assert (ROOT / "nbs" / "02_features.ipynb").read_bytes() == before   # the source notebook is left as it was


@pytest.fixture(scope="module")
def split_files(tmp_path_factory):
    "Train, validation and test files cut by date from the daily features of a small synthetic market."
    from volregime.core import Artifacts
    from volregime.features import FeatureParams, run_features
    from volregime.ingest import IngestParams, run_ingest
    d = tmp_path_factory.mktemp("split")
    art = Artifacts(d / "data")
    run_ingest(art, IngestParams(start="2019-01-02", end="2019-12-31", n_contracts=40))
    run_features(art, FeatureParams())
    daily = (pl.read_parquet(art.features_daily).sort("secid", "date")
             .with_columns(target=pl.col("atm_iv_30d").shift(-5).over("secid")))
    cuts = {"train": (None, "2019-08-31"), "val": ("2019-09-01", "2019-10-31"), "test": ("2019-11-01", None)}
    out = {}
    for name, (lo, hi) in cuts.items():
        f = daily
        if lo: f = f.filter(pl.col("date") >= pl.lit(lo).str.to_date())
        if hi: f = f.filter(pl.col("date") <= pl.lit(hi).str.to_date())
        f.write_parquet(d / f"{name}.parquet"); out[name] = d / f"{name}.parquet"
    return out


@pytest.mark.slow
def test_train_on_a_split_the_user_brings(split_files, tmp_path):
    f = split_files
    args = ["train", "--train", str(f["train"]), "--val", str(f["val"]), "--test", str(f["test"]), "--target", "target",
            "--features", "atm_iv_30d,rv_21d,skew_25d,term_slope"]
    r = volregime_cli(*args, "--model", "lstm", "--epochs", "3", "--units", "8", "--out", str(tmp_path / "lstm"), "--gpu-devices", "none")
    assert r.returncode == 0, r.stderr
    for name in ("lstm_model.h5", "feature_scaler.pkl", "target_scaler.pkl", "training_history.csv", "metrics.csv", "predictions.csv"):
        assert (tmp_path / "lstm" / name).stat().st_size > 0, name
    meta = json.loads((tmp_path / "lstm" / "train.json").read_text())
    assert meta["sequences"]["train"][1:] == [1, 4]       # tabular rows as (batch, 1, features)
    assert meta["dropped"]["test"]["target"] == 5          # the last five test days have no target
    import joblib
    train = pl.read_parquet(f["train"]).drop_nulls(["atm_iv_30d", "rv_21d", "skew_25d", "term_slope", "target"])
    assert abs(joblib.load(tmp_path / "lstm" / "feature_scaler.pkl").mean_[0] - train["atm_iv_30d"].mean()) < 1e-9
    preds = pl.read_csv(tmp_path / "lstm" / "predictions.csv")
    assert preds.group_by("split").len().sort("split")["len"].to_list() == [int(pl.read_csv(tmp_path / "lstm" / "metrics.csv")
                                                                            .sort("split")["n"][i]) for i in range(3)]
    import keras
    m = keras.models.load_model(tmp_path / "lstm" / "lstm_model.h5", compile=False)
    assert m.input_shape == (None, 1, 4)
    r = volregime_cli(*args, "--model", "ridge", "--out", str(tmp_path / "ridge"))
    assert r.returncode == 0 and (tmp_path / "ridge" / "ridge_model.joblib").exists(), r.stderr
    ridge = pl.read_csv(tmp_path / "ridge" / "metrics.csv").filter(pl.col("split") == "test")["rmse"][0]
    naive = ((pl.read_parquet(f["test"])["target"].drop_nulls() - train["target"].mean()) ** 2).mean() ** 0.5
    assert ridge < naive      # better than forecasting the training mean
    # bad splits: one line naming the files, nothing written
    r = volregime_cli(*args[:4], str(f["train"]), *args[5:], "--model", "ridge", "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("volregime train: --train and --val share")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "bad").exists()
    r = volregime_cli(*args[:-1], "atm_iv_30d,vix", "--model", "ridge", "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "missing column(s) vix" in r.stderr and "--train" in r.stderr


def test_a_wider_wrds_range_pulls_only_the_missing_days(tmp_path, pg_uri, market, exports):
    """`volregime run --set source=wrds` over February, then February–March: the second run reads February back from
    the pull cache (the server no longer has it) and pulls March only; `cache list` shows the pieces, `prune --pulls` empties them."""
    import psycopg2
    from volregime.core import Artifacts, libpq_uri, read_headlines
    from volregime.ingest import mirror_to_postgres
    from volregime.pulls import PullCache
    base = libpq_uri(pg_uri)
    db = "wrds_incremental"
    c = psycopg2.connect(base)
    c.autocommit = True   # CREATE DATABASE runs outside a transaction
    with c.cursor() as cur:
        cur.execute(f"drop database if exists {db}"); cur.execute(f"create database {db}")
    c.close()
    from sqlalchemy.engine import make_url
    uri = make_url(pg_uri).set(database=db).render_as_string(hide_password=False)
    mirror_to_postgres(exports["parquet"], uri)
    env = {"VOLREGIME_CACHE_DIR": str(tmp_path / "cache")}
    secid = int(market.secnmd.filter(pl.col("ticker") == "QQQ")["secid"][0])
    sets = ["--set", "source=wrds", "--set", "tickers=[QQQ]", "--set", f"wrds_uri={uri}", "--set", "start=2019-02-01"]

    def run(run_id, end):
        r = volregime_cli("run", "--profile", "smoke", "--stages", "01", "--data-dir", str(tmp_path / run_id), "--run-id", run_id,
                          "--no-progress", *sets, "--set", f"end={end}", env=env)
        assert r.returncode == 0, r.stderr
        return r, pl.read_parquet(tmp_path / run_id / "raw" / "opprcd" / "**" / "*.parquet", hive_partitioning=False)

    _, feb = run("pytest-pull-feb", "2019-02-28")
    with psycopg2.connect(libpq_uri(uri)) as c, c.cursor() as cur:   # February leaves the server: only the pieces hold it
        cur.execute("delete from optionm.opprcd2019 where date < '2019-03-01'")
    r, both = run("pytest-pull-febmar", "2019-03-29")
    want = market.opprcd.filter((pl.col("secid") == secid) & pl.col("date").is_between(pl.date(2019, 2, 1), pl.date(2019, 3, 29)))
    assert both.height == want.height and set(both["optionid"]) == set(want["optionid"])
    assert both.filter(pl.col("date") < pl.date(2019, 3, 1)).height == feb.height > 0
    assert "reused from the pull cache" in (RUNS / "pytest-pull-febmar" / "01_ingest.ipynb").read_text()   # the stage's log
    h01 = read_headlines(Artifacts(tmp_path / "pytest-pull-febmar"))["01_ingest"]   # every table's rows: options, vsurfd, prices
    assert h01["pull_rows_reused"] >= feb.height and h01["pull_rows_fetched"] >= both.height - feb.height, h01
    pc = PullCache(tmp_path / "cache" / "pulls")
    opt = [e for e in pc.entries() if e["ident"]["table"] == "opprcd"]
    assert [e["spans"] for e in opt] == [[["2019-02-01", "2019-03-29"]]]
    parts = pc.meta(opt[0]["key"])["parts"]
    assert [p["span"] for p in parts] == [["2019-02-01", "2019-02-28"], ["2019-03-01", "2019-03-29"]]
    assert all("optionm.opprcd2019" in p["query"] for p in parts) and "password" not in json.dumps(parts)
    ls = volregime_cli("cache", "list", env=env)
    assert ls.returncode == 0 and "pulled pieces" in ls.stdout and "opprcd" in ls.stdout, ls.stderr
    pr = volregime_cli("cache", "prune", "--pulls", env=env)
    assert pr.returncode == 0 and pc.entries() == [], pr.stdout + pr.stderr
