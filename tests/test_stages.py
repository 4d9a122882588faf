"""Stages as functions: one parameter declaration per stage, the same regimes standalone and in a run, source=wrds through
`volregime run`, CLI paths relative to the working directory, and the estimator contract for Ward and Keras."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import numpy as np
import polars as pl
import pytest

from conftest import REPORTS, ROOT, RUNS, volregime_cli
from volregime.core import InputError, check_unknown, load_profile
from volregime.pipeline import stage_notebooks, stage_params


def _parameters_cell(nb: Path) -> dict:
    "The values a stage notebook's `parameters` cell assigns."
    cell = next(c for c in nbformat.read(nb, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    ns: dict = {}
    exec(cell.source, {}, ns)
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def test_parameters_cell_dataclass_and_smoke_profile_agree():
    smoke = load_profile("smoke")
    classes = stage_params()
    assert [nb.stem for nb in stage_notebooks()] == list(classes)
    for nb in stage_notebooks():
        cls = classes[nb.stem]
        cell = _parameters_cell(nb)
        defaults = cls().to_dict()
        assert set(cell) - {"data_dir"} == set(defaults), f"{nb.name}: cell and {cls.__name__} declare different parameters"
        for k, v in defaults.items():
            assert cell[k] == v, f"{nb.name}: {k} = {cell[k]!r} in the notebook, {v!r} in {cls.__name__}"
            if k in smoke: assert smoke[k] == v, f"{k}: smoke profile says {smoke[k]!r}, {cls.__name__} {v!r}"
    # every key of every profile belongs to some stage, with the right type
    for prof in ("smoke", "demo", "full"):
        check_unknown(load_profile(prof), list(classes.values()), extra=("data_dir",))


def test_stage_parameters_never_show_a_password():
    from volregime.db import LoadParams
    from volregime.ingest import IngestParams
    os.environ["VOLREGIME_TEST_PW_URI"] = "postgresql://u:Hunter2Pw@h/db"
    for cls, key in ((IngestParams, "wrds_uri"), (LoadParams, "postgres_uri")):
        p = cls.from_dict({key: "env:VOLREGIME_TEST_PW_URI"})
        assert getattr(p, key).endswith("Hunter2Pw@h/db") and "Hunter2Pw" not in repr(p) and "Hunter2Pw" not in str(p)


def test_parameters_are_checked_with_the_key_and_the_type():
    classes = list(stage_params().values())
    with pytest.raises(InputError, match=r"unknown parameter\(s\) k_maxx"):
        check_unknown({"k_maxx": 3}, classes)
    with pytest.raises(InputError, match="parameter 'k_max' of ScanParams expects int, got 'six'"):
        check_unknown({"k_max": "six"}, classes)
    r = volregime_cli("run", "--profile", "smoke", "--set", "tickers=SPY", "--no-progress")
    assert r.returncode == 2 and "parameter 'tickers' of IngestParams expects list" in r.stderr


def test_a_stage_runs_in_process_without_papermill(tmp_path):
    from volregime.core import Artifacts, read_headlines
    from volregime.features import FeatureParams, run_features
    from volregime.ingest import IngestParams, run_ingest
    art = Artifacts(tmp_path)
    s = run_ingest(art, IngestParams(start="2019-01-02", end="2019-03-29", n_contracts=40))
    f = run_features(art, FeatureParams())
    assert s.rows["opprcd"] > 0 and f.daily_rows == pl.read_parquet(art.features_daily).height > 50
    h = read_headlines(art)
    assert h["01_ingest"]["rows_opprcd"] == s.rows["opprcd"] and h["02_features"]["corr_atm_iv_vs_truth"] > 0.95


@pytest.mark.slow
def test_ward_stage_alone_sees_the_regimes_of_a_smoke_run(tmp_path):
    "04 run alone by papermill on an empty data dir builds 01-03 with the smoke profile: the same daily regimes as stages 01-04 run in turn."
    import papermill as pm
    from volregime.core import Artifacts, merge_params
    from volregime.robustness import stage_runners
    alone = tmp_path / "alone"
    pm.execute_notebook(str(ROOT / "nbs" / "04_ward_validation.ipynb"), str(tmp_path / "04.ipynb"), parameters={"data_dir": str(alone)},
                        kernel_name="python3", progress_bar=False, cwd=str(ROOT / "nbs"))
    run = tmp_path / "run"   # the stage functions `volregime run` calls, in process (the command itself: test_pipeline.py, test_workbench.py)
    p = merge_params("smoke")
    for cls, fn in list(stage_runners().values())[:4]: fn(Artifacts(run), cls.from_dict(p))
    for rel in ("regimes/daily.parquet", "regimes/methods.parquet", "regimes/ward_scan.parquet"):
        a, b = pl.read_parquet(alone / rel), pl.read_parquet(run / rel)
        assert a.equals(b), rel


def _files_containing(root: Path, secret: bytes) -> list:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
def test_run_with_source_wrds_end_to_end(tmp_path, pg_uri, market, exports):
    "`volregime run --set source=wrds` against a WRDS-layout mirror: every row of the asked ticker and dates, no password anywhere."
    from volregime.core import libpq_uri
    from volregime.ingest import mirror_to_postgres
    mirror_to_postgres(exports["parquet"], pg_uri)
    base = libpq_uri(pg_uri)
    secid = int(market.secnmd.filter(pl.col("ticker") == "QQQ")["secid"][0])
    want = market.opprcd.filter((pl.col("secid") == secid) & pl.col("date").is_between(pl.date(2019, 2, 1), pl.date(2019, 3, 29)))
    assert want.height > 1000
    sets = ["--set", "source=wrds", "--set", "tickers=[QQQ]", "--set", "start=2019-02-01", "--set", "end=2019-03-29"]
    pw = "Wr0ngHorse-Battery"
    with_pw = re.sub(r"^postgresql://([^:@/]*)(:[^@/]*)?@", rf"postgresql://\1:{pw}@", base)
    assert pw in with_pw
    pw2 = "Stapl3-Correct"
    no_cred = re.sub(r"^postgresql://[^@/]*@", "postgresql://@", base)
    cases = [("pytest-wrds-uri", ["--set", f"wrds_uri={with_pw}"], {}, pw),
             ("pytest-wrds-env", ["--set", f"wrds_uri={no_cred}"], {"PGUSER": "postgres", "PGPASSWORD": pw2}, pw2)]
    for run_id, extra, env, secret in cases:
        data = tmp_path / run_id
        r = volregime_cli("run", "--profile", "smoke", "--stages", "01", "--data-dir", str(data), "--run-id", run_id,
                          "--no-progress", *sets, *extra, env=env)
        assert r.returncode == 0, r.stderr
        got = pl.read_parquet(data / "raw" / "opprcd" / "**" / "*.parquet", hive_partitioning=False)
        assert got.height == want.height and set(got["optionid"]) == set(want["optionid"])
        assert got["date"].min() == want["date"].min() and got["date"].max() == want["date"].max()
        assert secret not in r.stdout + r.stderr
        leaks = [p for root in (RUNS / run_id, REPORTS / run_id, data) for p in _files_containing(root, secret.encode())]
        assert leaks == [], leaks


def test_cli_paths_are_relative_to_the_working_directory(tmp_path, pg_uri):
    sub = tmp_path / "sub"; sub.mkdir()
    n = 500
    pl.DataFrame({"date": np.repeat(np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-11")), 50),
                  "secid": 1, "optionid": np.arange(n), "impl_volatility": np.linspace(0.1, 0.5, n),
                  "cluster": np.arange(n) % 3}).write_parquet(sub / "x.parquet")
    r = volregime_cli("load", "--parquet", "sub/x.parquet", "--postgres-uri", pg_uri, "--table", "cwd_relative", "--no-progress",
                      cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cwd_relative: 500 rows" in r.stdout
    r = volregime_cli("synth", "--out", "exp", "--start", "2019-01-02", "--end", "2019-01-31", "--n-contracts", "20", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "exp" / "opprcd2019.parquet").exists(), r.stderr
    r = volregime_cli("ingest", "--source", "local", "--local-path", "exp", "--data-dir", "d", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "d" / "raw" / "secprd.parquet").exists(), r.stderr
    r = volregime_cli("load", "--parquet", "sub/none.parquet", "--postgres-uri", pg_uri, cwd=tmp_path)
    assert r.returncode == 2 and str(sub / "none.parquet") in r.stderr and "Traceback" not in r.stderr


def test_a_bug_keeps_its_traceback():
    "Only the project's input errors become one line and exit 2: anything else is a bug and keeps its traceback."
    import subprocess
    import sys
    code = ("import sys, volregime.cli as c\n"
            "def _cmd_db(a): return {}['missing key']   # a programming bug in a subcommand\n"
            "c.COMMANDS['db'] = (c.COMMANDS['db'][0], _cmd_db)   # subcommands are registered in COMMANDS\n"
            "sys.exit(c.main(['db', 'status']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" in r.stderr and "KeyError: 'missing key'" in r.stderr


def test_ward_regimes_passes_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator
    from volregime.wardtree import WardRegimes
    # Waived: none. WardRegimes validates in fit, stores only hyperparameters in __init__, is deterministic, and orders
    # its labels with volregime.core.order_labels like RegimeKMeans.
    check_estimator(WardRegimes(n_clusters=3, random_state=0))


@pytest.mark.slow
def test_keras_forecaster_passes_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator
    from volregime.supervised import KerasForecaster, configure_devices
    configure_devices("none", True, 0)
    # Waived, with the reason:
    float32 = ("the network computes in float32: a row's forecast agrees across batch orders and subsets to float32 "
               "precision (differences of about 6e-8, 6e-7 relative), not to the check's 1e-7 relative and 1e-9 absolute")
    waived = {"check_methods_sample_order_invariance": float32, "check_methods_subset_invariance": float32}
    # refit_full=False: one fit per check instead of two (the contract is the same; the refit on every row is checked by
    # test_supervised.py::test_scalers_fit_on_training_rows_only and the nested-CV tests)
    check_estimator(KerasForecaster("gru", units=4, epochs=2, patience=1, random_state=0, refit_full=False),
                    expected_failed_checks=waived)


@pytest.mark.slow
def test_every_model_family_is_tuned_by_the_same_grid_search():
    "sklearn baselines and the Keras families go through one GridSearchCV over TimeSeriesSplit(gap=H), refit on all rows."
    import datetime as dt
    from volregime.supervised import KerasForecaster, configure_devices, inner_splits_of, make_sequences, tune
    configure_devices("none", True, 0)
    rng = np.random.default_rng(0)
    n = 260
    iv = 0.2 + 0.05 * np.sin(np.arange(n) / 15) + rng.normal(0, 0.005, n)
    d = pl.DataFrame({"date": [dt.date(2018, 1, 1) + dt.timedelta(days=i) for i in range(n)], "atm_iv_30d": iv,
                      "rv_21d": iv * 0.9 + rng.normal(0, 0.01, n)})
    s = make_sequences(d, ["atm_iv_30d", "rv_21d"], window=10, horizon=5)
    splits = inner_splits_of(len(s.X), 2, 5)
    for tr, va in splits: assert tr[-1] + 5 < va[0]
    est, best = tune(KerasForecaster("lstm", epochs=2, patience=1, gap=5), {"units": [4, 8], "window": [5]}, s.X, s.y, splits)
    assert set(best) == {"units", "window"} and est.get_params()["units"] == best["units"]
    assert est.feature_scaler_.n_samples_seen_ > (len(s.X) - 60) * best["window"]   # refit on (nearly) all rows, not a split


@pytest.mark.parametrize("name,content", [("opprcd2019.parquet", b"PAR1 truncated"), ("opprcd2019.csv.gz", b"not gzip at all")])
def test_a_corrupt_export_file_is_one_line_naming_it_and_loses_nothing(tmp_path, exports, name, content):
    "Only input errors are one line: a corrupt file must be one, not a traceback, and earlier output stays byte-identical."
    import shutil
    fmt = "parquet" if name.endswith(".parquet") else "csv.gz"
    good = volregime_cli("ingest", "--source", "local", "--local-path", str(exports[fmt]), "--data-dir", str(tmp_path / "d"))
    assert good.returncode == 0, good.stderr
    before = {p: p.read_bytes() for p in (tmp_path / "d" / "raw").rglob("*.parquet")}
    bad = tmp_path / "bad"
    shutil.copytree(exports[fmt], bad)
    (bad / name).write_bytes(content)
    r = volregime_cli("ingest", "--source", "local", "--local-path", str(bad), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"ingest: {name}: unreadable or corrupt file" in r.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "d" / "raw").rglob("*.parquet")} == before


def test_local_exports_keep_their_own_span_and_underlyings(tmp_path):
    "source=local through the profile: its synthetic dates and ticker do not cut a user's exports; what is --set does."
    from volregime.core import Artifacts, merge_params, read_headlines
    from volregime.ingest import IngestParams, run_ingest
    from volregime.synth import simulate_market, write_exports
    write_exports(simulate_market("2018-10-01", "2018-11-30", ["AAA", "BBB"], 20, seed=4), tmp_path / "exp", "parquet")
    p = IngestParams.from_dict(merge_params("smoke", sets=["source=local", f"local_path={tmp_path / 'exp'}"]))
    art = Artifacts(tmp_path / "d")
    run_ingest(art, p)
    h = read_headlines(art)["01_ingest"]
    assert (h["first_date"], h["last_date"], h["underlyings"]) == ("2018-10-01", "2018-11-30", 2)   # smoke says 2019, [SPY]
    p = IngestParams.from_dict(merge_params("smoke", sets=["source=local", f"local_path={tmp_path / 'exp'}",
                                                           "start=2018-11-01", "tickers=[BBB]"]))
    run_ingest(art, p)
    h = read_headlines(art)["01_ingest"]
    assert (h["first_date"], h["last_date"], h["underlyings"]) == ("2018-11-01", "2018-11-30", 1)


def test_stages_hold_on_monthly_chains_with_outage_days(tmp_path):
    "Monthly expiries, 2 % outage days, no vsurfd: stages 02-05 run, and the forecast keeps >= 95 % of possible samples."
    from dataclasses import replace
    from volregime.core import Artifacts, read_headlines
    from volregime.features import FeatureParams, run_features
    from volregime.ingest import IngestParams, run_ingest
    from volregime.scan import ScanParams, run_scan
    from volregime.supervised import ForecastParams, run_forecast
    from volregime.synth import MarketSpec, simulate_market, write_exports
    spec = replace(MarketSpec(), expiry_schedule="monthly", outage_share=0.02)
    write_exports(simulate_market("2016-01-04", "2018-06-29", ["AAA"], 120, seed=21, spec=spec), tmp_path / "exp", "parquet")
    for p in (tmp_path / "exp").glob("vsurfd*"): p.unlink()
    art = Artifacts(tmp_path / "d")
    run_ingest(art, IngestParams(source="local", local_path=str(tmp_path / "exp"), tickers=[], start="", end=""))
    run_features(art, FeatureParams())
    run_scan(art, ScanParams(granularities=["day"], k_max=4, n_boot=3))
    W, H = 20, 5
    res = run_forecast(art, ForecastParams(window=W, window_grid=[W], horizon=H, keras_families=[], sklearn_models=["ridge"],
                                           n_folds=1, test_days=60, min_train_days=200), progress=False)
    h = read_headlines(art)
    outages = h["02_features"]["surface_missing_days"]
    assert outages > 0 and h["02_features"]["atm_iv_30d_null_days"] == outages        # only the days without options
    days = h["01_ingest"]["days"]
    possible = days - 21 - W - H + 1                                                   # after rv_21d's warm-up
    assert res.headline["samples"] >= 0.95 * possible, (res.headline["samples"], possible)
    assert res.headline["days_dropped_missing"] == outages
