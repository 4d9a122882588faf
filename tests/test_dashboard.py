"""Stage 07 in a real headless Chromium (Debian's), driven by playwright, against Voila and a real PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from conftest import ARTIFACTS, ROOT, free_port, labeled_rows

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def dashboard(pg_uri, tmp_path_factory):
    "A loaded table, and `volregime dashboard` serving it."
    from volregime.db import load_results, write_table
    d = tmp_path_factory.mktemp("dash")
    df = labeled_rows(6000, seed=0, year=2020)
    df.write_parquet(d / "rows.parquet")
    load_results(d / "rows.parquet", pg_uri, table="dash_test", schema="vr_dash", progress=False)
    days = df.group_by("date").agg([(pl.col("cluster") == i).mean().alias(f"share_{i}") for i in range(3)]).sort("date") \
             .with_columns(secid=pl.lit(109820, pl.Int64), regime=pl.lit(1, pl.Int64))
    t = days.to_arrow()
    write_table(pg_uri, "vr_dash", "regime_daily", iter(t.to_batches()), t.num_rows, "replace", ["date"], progress=False,
                copy_threshold=10**9)
    port = free_port()
    env = dict(os.environ, POSTGRES_URI=pg_uri, SCHEMA="vr_dash", TABLE_NAME="dash_test", LABEL_COL="cluster",
               API_ROWS_CAP="50000", VOLREGIME_DASHBOARD_DATA=str(d))
    exe = str(Path(sys.executable).parent / "volregime")
    proc = subprocess.Popen([exe, "dashboard", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=2); break
        except Exception: time.sleep(0.5)
    yield url, df
    proc.terminate()
    log = proc.communicate(timeout=20)[0].decode(errors="replace")
    assert "without encryption" not in log   # the app's kernels on Unix sockets, not localhost TCP


@pytest.fixture(scope="module")
def page(dashboard):
    from playwright.sync_api import sync_playwright
    url, _ = dashboard
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        pg = b.new_page(viewport={"width": 1400, "height": 1600})
        pg.goto(url, timeout=120_000)
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 5 && "
                             "document.querySelectorAll('.js-plotly-plot')[0].data && document.querySelectorAll('.js-plotly-plot')[0].data.length > 0",
                             timeout=120_000)
        yield pg
        b.close()


def plots(pg):
    return pg.evaluate("""Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => ({
        n: g.data ? g.data.length : 0, names: g.data ? g.data.map(t => t.name) : [],
        x: (g.data && g.data[0]) ? Array.from(g.data[0].x).slice(0, 5) : [],
        xtitle: g.layout && g.layout.xaxis && g.layout.xaxis.title ? g.layout.xaxis.title.text : null}))""")


def wait_for(pg, js: str, timeout: int, what: str):
    "page.wait_for_function, failing with what the figures hold when the state is not reached (a timeout alone says nothing)."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try: pg.wait_for_function(js, timeout=timeout)
    except PlaywrightTimeout:
        pytest.fail(f"{what} not reached in {timeout / 1000:.0f} s; figures now: "
                    f"{[(p['n'], p['names']) for p in plots(pg)]}; errors shown: {pg.locator('.vr-error').all_inner_texts()}")


def set_combo(pg, cls, value):
    box = pg.locator(f".{cls} input")
    box.fill(value)
    box.press("Enter")


def test_page_loads_with_one_trace_per_cluster(page, dashboard):
    ps = plots(page)
    grid = ps[:4]
    assert all(p["n"] == 3 for p in grid), ps
    assert grid[0]["names"] == ["0 calm", "1 normal", "2 stressed"]
    assert grid[0]["xtitle"] == "impl_volatility"
    assert "6,000" in page.inner_text(".vr-count") and "cap 50,000" in page.inner_text(".vr-count")
    # the page names the table, never the database's server, user or files on the server
    from conftest import SANDBOX
    assert "source: PostgreSQL, table vr_dash.dash_test" in page.inner_text("body")
    html = page.content()
    assert "postgresql" not in html.lower().replace("source: postgresql", "") and str(SANDBOX) not in html
    # plotly.js reaches the page once, by URL, for every figure (not once per figure in its widget state)
    res = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert sum("plotly-widget-" in r for r in res) == 1 and not any("jupyterlab-plotly" in r for r in res), res
    # every figure is drawn at its cell's width: two windows side by side, the timeline across the page
    widths = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => "
                           "[Math.round(g.getBoundingClientRect().width), g._fullLayout.width])")
    assert all(abs(el - fig) <= 1 for el, fig in widths), widths
    assert widths[-1][1] > 1.8 * widths[0][1], widths
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_changing_x_changes_axis_title_and_data(page):
    before = plots(page)[0]
    set_combo(page, "vr-x-0", "delta")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot')[0].layout.xaxis.title.text === 'delta'", timeout=30_000)
    after = plots(page)[0]
    assert after["xtitle"] == "delta" and after["x"] != before["x"]
    assert all(-1 <= v <= 1 for v in after["x"])


def test_cluster_filter_removes_traces(page):
    page.locator(".widget-select-multiple select").select_option(label=["0 calm", "2 stressed"])
    page.get_by_role("button", name="apply filters").click()
    wait_for(page, "Array.from(document.querySelectorAll('.js-plotly-plot')).slice(0, 4).every(g => g.data && g.data.length === 2)",
             120_000, "four windows of two regimes")   # four WebGL redraws: over 30 s on a loaded 2-core runner
    assert plots(page)[1]["names"] == ["0 calm", "2 stressed"]


def test_window_count_control_changes_the_grid(page):
    # the grid is rebuilt figure by figure, so wait for the finished state -- n windows plus the timeline, every one drawn
    # and every window still showing the two filtered regimes -- not for a count an intermediate state can also reach
    figs = "Array.from(document.querySelectorAll('.js-plotly-plot'))"
    box = page.locator(".widget-text input[type=number]").first
    for n in (2, 5, 4):
        box.fill(str(n)); box.press("Enter")
        wait_for(page, f"{figs}.length === {n + 1} && {figs}.every(g => g.data && g.data.length > 0) && "
                       f"{figs}.slice(0, {n}).every(g => g.data.length === 2)",
                 120_000, f"{n} windows of two regimes and the timeline")   # 5 WebGL figures: ~70 s on a loaded 2-core runner
    ps = plots(page)
    assert [p["n"] for p in ps[:4]] == [2, 2, 2, 2] and ps[3]["xtitle"] == "impl_volatility"   # the regime filter still applies


def test_unknown_column_shows_a_visible_error(page):
    set_combo(page, "vr-y-1", "no_such_column")
    page.wait_for_selector(".vr-error", timeout=30_000)
    text = page.inner_text(".vr-message")
    assert "unknown column 'no_such_column'" in text and "Traceback" not in page.content()


def test_falls_back_to_parquet_when_the_database_is_down(tmp_path):
    from volregime.dashboard import DashboardConfig, DataSource, DashboardError, build_app
    (tmp_path / "regimes").mkdir()
    import datetime as dt
    pl.DataFrame({"date": [dt.date(2020, 1, 2)] * 3, "secid": [1] * 3, "cluster": [0, 1, 1],
                  "impl_volatility": [0.1, 0.3, 0.35], "pca_component_1": [0.0, 1.0, 2.0]}).write_parquet(tmp_path / "regimes" / "labeled_options.parquet")
    cfg = DashboardConfig(postgres_uri="postgresql://u:pw@127.0.0.1:1/none", data_dir=str(tmp_path))
    src = DataSource(cfg)
    assert src.columns()["numeric"] == ["secid", "cluster", "impl_volatility", "pca_component_1"]
    assert "database unreachable" in src.note and "pw" not in src.note
    df = src.fetch(["impl_volatility"], clusters=[1])
    assert df["cluster"].to_list() == [1, 1]
    # the count shown against the cap applies the same filters as the rows (dates included)
    assert src.count([1]) == 2 and src.count([1], date_from="2020-01-03") == 0 == src.fetch(["impl_volatility"], date_from="2020-01-03").height
    with pytest.raises(DashboardError, match="no cluster selected"):
        src.fetch(["impl_volatility"], clusters=[])
    with pytest.raises(DashboardError, match="unknown column 'x'"):
        src.fetch(["x"])
    # nothing to fall back to: the page is a message, not a traceback
    root = build_app(postgres_uri="postgresql://u:pw@127.0.0.1:1/none", data_dir=str(tmp_path / "empty"))
    text = root.children[-1].value
    assert "database unreachable" in text and "no parquet fallback" in text and "pw@" not in text
