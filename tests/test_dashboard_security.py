"""The dashboard bound to a non-loopback address, probed as a hostile client would: no token, a websocket without
Jupyter's protocol, a flood of widget-state requests that are never read, too many pages, SIGTERM mid-flood; and
`/api/data` with and without its token. A real `volregime dashboard`, a real PostgreSQL, real sockets."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import ROOT, free_port, labeled_rows

PROTO = "v1.kernel.websocket.jupyter.org"


def get(url: str, headers: dict | None = None, timeout: float = 60) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k): return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r: return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e: return e.code, e.read().decode(errors="replace")


def server_procs(cli: subprocess.Popen) -> list:
    "The Voilà server (the CLI's child) and its kernels."
    try: return psutil.Process(cli.pid).children(recursive=True)
    except psutil.NoSuchProcess: return []


def voila_server(cli: subprocess.Popen) -> psutil.Process:
    return next(p for p in server_procs(cli) if "serve_main" in " ".join(p.cmdline()))


def kernels(cli: subprocess.Popen) -> list:
    return [p for p in server_procs(cli) if "ipykernel" in " ".join(p.cmdline())]


def start_dashboard(pg_uri: str, d: Path, *args: str) -> tuple[subprocess.Popen, int, Path]:
    "`volregime dashboard *args` over a loaded table, no token configured; up once its first line is printed."
    from volregime.db import load_results
    labeled_rows(3000, seed=1, year=2021, secid=1, n_pca=2).write_parquet(d / "rows.parquet")
    load_results(d / "rows.parquet", pg_uri, table="sec_test", schema="vr_sec", progress=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "VOLREGIME_DASHBOARD_TOKEN"}
    env.update(POSTGRES_URI=pg_uri, SCHEMA="vr_sec", TABLE_NAME="sec_test", LABEL_COL="cluster", API_ROWS_CAP="1000",
               VOLREGIME_DASHBOARD_DATA=str(d))
    exe = str(Path(sys.executable).parent / "volregime")
    log = d / "server.log"   # a file, not a pipe nobody drains: a full pipe would stall the server, not the test
    cli = subprocess.Popen([exe, "dashboard", "--port", str(port), *args], env=env,
                           stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT, text=True)
    t0 = time.time()
    while not log.read_text().strip() and time.time() - t0 < 60: time.sleep(0.2)
    return cli, port, log


def wait_up(cli: subprocess.Popen, base: str) -> None:
    "Until the server answers and its preheated kernel runs (probed at /api/data: a page would start a kernel)."
    for _ in range(240):
        try:
            if get(base + "api/data?limit=1", timeout=2)[0] in (200, 403): break
        except Exception: pass
        time.sleep(0.5)
    t0 = time.time()
    while len(kernels(cli)) < 1 and time.time() - t0 < 120: time.sleep(0.5)


@pytest.fixture(scope="module")
def served(pg_uri, tmp_path_factory):
    "`volregime dashboard --host 0.0.0.0` over a loaded table, no token configured: it makes one."
    cli, port, log = start_dashboard(pg_uri, tmp_path_factory.mktemp("dash-sec"), "--host", "0.0.0.0", "--max-kernels", "2",
                                     "--max-kernels-per-client", "2")
    first = log.read_text().splitlines()[0]
    m = re.search(r"\?token=([A-Za-z0-9_\-]+)", first)
    assert m, first
    token = m[1]
    base = f"http://127.0.0.1:{port}/"
    wait_up(cli, base)
    yield {"cli": cli, "base": base, "token": token, "port": port, "pg_uri": pg_uri, "first": first, "log": log}
    if cli.poll() is None:
        cli.kill()
        cli.wait()


def test_token_printed_once_and_required(served):
    base, token, cli = served["base"], served["token"], served["cli"]
    assert len(token) >= 32 and "Ctrl-C" in served["first"]
    n0 = len(kernels(cli))
    for _ in range(5):   # anonymous visitors: sent to the login page, no kernel started for them
        code, body = get(base)
        assert code in (302, 403), code
    code, _ = get(base + "?token=wrong-token-0123456789")
    assert code in (302, 403)
    time.sleep(2)
    assert len(kernels(cli)) == n0, "tokenless requests started kernels"
    ps = " ".join(" ".join(p.cmdline()) for p in server_procs(cli))
    assert token not in ps, "the token is on a command line"


def test_api_data_behind_the_token(served):
    base, token = served["base"], served["token"]
    code, body = get(base + "api/data?limit=5")
    assert code == 403
    auth = {"Authorization": f"token {token}"}
    code, body = get(base + "api/data?limit=5&offset=10&columns=impl_volatility,delta&clusters=1&date_from=2021-03-01", auth)
    assert code == 200, body
    d = json.loads(body)
    assert d["returned"] == 5 and d["offset"] == 10 and d["rows_cap"] == 1000 and d["label_col"] == "cluster"
    assert {r["cluster"] for r in d["rows"]} == {1} and all(r["date"] >= "2021-03-01" for r in d["rows"])
    assert set(d["rows"][0]) == {"date", "cluster", "impl_volatility", "delta"}
    assert "impl_volatility" in d["schema"]["numeric"] and "date" in d["schema"]["datetime"]
    assert d["total"] > 5
    # the rows cap holds; the default columns are every numeric one; the token also works as ?token=
    code, body = get(base + f"api/data?limit=100000&token={token}")
    d = json.loads(body)
    assert code == 200 and d["returned"] == 1000 and d["limit"] == 1000 and "pca_component_2" in d["rows"][0]
    for q, msg in (("limit=-3", "limit='-3': expected a whole number"), ("sort=date", "unknown parameter 'sort'"),
                   ("columns=nope", "unknown column 'nope'"), ("date_to=2021-02-30", "expected a date as YYYY-MM-DD"),
                   ("columns=a;drop%20table%20x", "expected comma-separated column names")):
        code, body = get(base + "api/data?" + q, auth)
        assert code == 400, (q, code, body)
        err = json.loads(body)["error"]
        assert msg in err and "\n" not in err, (q, err)


def page_kernel(served) -> str:
    code, html = get(served["base"] + f"?token={served['token']}", timeout=180)
    assert code == 200
    m = re.search(r'kernelId["\']?\s*[:=]\s*["\']([0-9a-f-]{36})', html) or re.search(r'"kernel_id":\s*"([0-9a-f-]{36})"', html)
    assert m, "kernel id on the page"
    return m[1]


def ws_url(served, kid: str) -> str:
    return f"ws://127.0.0.1:{served['port']}/api/kernels/{kid}/channels?session_id={uuid.uuid4().hex}&token={served['token']}"


def v1(msg_type: str, content: dict, channel: str = "shell") -> bytes:
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
    hdr = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "x", "session": "s", "date": "2021-01-01T00:00:00Z",
           "version": "5.3"}
    parts = [json.dumps(p).encode() for p in (hdr, {}, {}, content)]
    return serialize_msg_to_ws_v1(parts, channel)


def test_websocket_without_the_protocol_is_refused(served):
    import websocket
    kid = page_kernel(served)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(served, kid), timeout=20)
    assert e.value.status_code == 400
    ws = websocket.create_connection(ws_url(served, kid), timeout=20, subprotocols=[PROTO])   # with it: accepted
    assert ws.getsubprotocol() == PROTO
    ws.close()
    served["kid"] = kid


def test_flood_of_state_requests_is_cut_off_and_the_server_stays_up(served):
    import websocket
    from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1
    cli, kid = served["cli"], served.get("kid") or page_kernel(served)
    srv = voila_server(cli)
    rss0 = srv.memory_info().rss
    ws = websocket.create_connection(ws_url(served, kid), timeout=120, subprotocols=[PROTO])
    ws.settimeout(3)
    comms, seen = None, []
    t0 = time.time()
    while comms is None and time.time() - t0 < 120:   # asked again until answered: the first may arrive mid-connect
        try: op, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            ws.send_binary(v1("comm_info_request", {"target_name": "jupyter.widget"}))
            continue
        seen.append((op, data[:200]))
        if op == websocket.ABNF.OPCODE_BINARY:
            channel, parts = deserialize_msg_from_ws_v1(data)
            if json.loads(parts[0])["msg_type"] == "comm_info_reply": comms = list(json.loads(parts[3])["comms"])
    assert comms, f"the page's widget comms ({seen[:5]})"
    ws.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)   # read nothing from here on
    ws.settimeout(60)   # a send that times out leaves half a frame: block instead
    sent, closed_after, peak = 0, None, rss0
    t0 = time.time()
    while time.time() - t0 < 25:
        try:
            for c in comms:
                ws.send_binary(v1("comm_msg", {"comm_id": c, "data": {"method": "request_state"}}))
                sent += 1
        except (BrokenPipeError, ConnectionResetError, websocket.WebSocketConnectionClosedException, OSError):
            closed_after = time.time() - t0
            break
        if sent % 200 < len(comms): peak = max(peak, srv.memory_info().rss)
    peak = max(peak, srv.memory_info().rss)
    assert closed_after is not None and closed_after < 15, f"the flood went on for 25 s ({sent} messages)"
    assert peak - rss0 < 400 << 20, f"server RSS grew by {(peak - rss0) >> 20} MiB"
    t0 = time.time()
    code, _ = get(served["base"] + "api/data?limit=1", {"Authorization": f"token {served['token']}"}, timeout=15)
    assert code == 200 and time.time() - t0 < 15, "the server answers after the flood"


def test_open_pages_are_capped(served):
    cli = served["cli"]
    codes = []
    for _ in range(3):   # the cap is 2 pages; the flood test's page holds one
        code, body = get(served["base"] + f"?token={served['token']}", timeout=180)
        codes.append(code)
        if code == 503: break
    assert codes[-1] == 503 and "limit" in body, codes
    assert len(kernels(cli)) <= 4   # two pages, the one kept warm, one more that may slip in while it is replaced


def test_sigterm_stops_server_and_kernels(served):
    cli = served["cli"]
    procs = server_procs(cli)
    assert procs
    t0 = time.time()
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=30) == 0
    gone, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, [p.pid for p in alive]
    assert time.time() - t0 < 40


def get_from(port: int, client: str, timeout: float = 180) -> tuple[int, dict, str]:
    "A plain `GET /` from the loopback address `client` (no browser, no websocket): status, headers, body."
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(client, 0))
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode(errors="replace")
    finally: c.close()


def test_pages_that_never_open_their_websocket_free_their_slots(pg_uri, tmp_path_factory):
    "What a link preview or a health check does: plain GETs. They cannot lock the server, nor can one client take it."
    grace = 25
    cli, port, _ = start_dashboard(pg_uri, tmp_path_factory.mktemp("dash-grace"), "--max-kernels", "2",
                                   "--max-kernels-per-client", "1", "--ws-grace-s", str(grace))
    try:
        wait_up(cli, f"http://127.0.0.1:{port}/")
        t_first = time.time()
        assert get_from(port, "127.0.0.2")[0] == 200
        code, hdr, body = get_from(port, "127.0.0.2")   # the same client again: over its share
        assert code == 429 and "its share" in body and "try again in" in body, (code, body)
        assert 1 <= int(hdr["Retry-After"]) <= grace + 1
        assert get_from(port, "127.0.0.3")[0] == 200
        code, hdr, body = get_from(port, "127.0.0.4")   # every slot held: told when to come back
        assert code == 503 and "its limit" in body and f"try again in {hdr['Retry-After']} s" in body, (code, body)
        wait = int(hdr["Retry-After"])
        assert 1 <= wait <= grace + 1
        time.sleep(wait)
        codes, t0 = [], time.time()
        while time.time() - t0 < 30:   # the sweep runs every few seconds
            codes.append(get_from(port, "127.0.0.4")[0])
            if codes[-1] == 200: break
            time.sleep(1)
        assert codes[-1] == 200, codes
        assert time.time() - t_first < grace + 60, "slots freed within the grace, not the idle cull"
        assert f"no websocket within {grace} s" in (tmp_path_factory.getbasetemp() / "dash-grace0" / "server.log").read_text()
    finally:
        cli.kill()
        cli.wait()
