"""`sweep dashboard` in a real Chromium (Playwright driving Debian's chromium) against a real SQLite store.

Skipped only where /usr/bin/chromium is missing and CI is not "true"; under CI it must be there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dashboard_helpers import ROOT, ServerThread, writer_command
from dashboard_runs import SWEEP_CONFIG, add_run, open_store

CHROMIUM = Path("/usr/bin/chromium")
PAGE_TIMEOUT_MS = 90_000  # first paint of a page on a loaded two-core box; the live update has its own 5 s
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing under CI (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Recorded:
    """A page with every request it made and every console error or uncaught exception it logged."""

    def __init__(self, page) -> None:
        self.page, self.requests, self.errors = page, [], []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    recorded = Recorded(context.new_page())
    recorded.page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield recorded
    context.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dashboard-store")


@pytest.fixture(scope="module")
def filled(home) -> dict[str, Any]:
    """A sweep with three finished runs and one failed one, and a sweep whose name and values are markup."""
    store = open_store(home)
    sweep = store.create_sweep(SWEEP_CONFIG)
    configs = [{"lr": lr, "optimizer": opt, "epochs": 30} for lr, opt in
               ((0.3, "nesterov"), (0.05, "sgd"), (0.12, "nesterov"), (0.2, "sgd"))]
    leases = [add_run(store, sweep.id, config, epochs=n, seed=i, state="failed" if i == 3 else "finished",
                      detail="CUDA error: out of memory" if i == 3 else None)
              for i, (config, n) in enumerate(zip(configs, (6, 5, 4, 2)))]
    hostile_config = dict(SWEEP_CONFIG, name=f"evil {HOSTILE}",
                          parameters={"optimizer": {"values": [HOSTILE, "sgd"]}, "lr": {"value": 0.1}})
    hostile = store.create_sweep(hostile_config)
    hostile_runs = [add_run(store, hostile.id, {"optimizer": value, "lr": 0.1}, epochs=2, seed=9,
                            state="failed" if value == "sgd" else "finished",
                            detail=f"failure {HOSTILE}" if value == "sgd" else None)
                    for value in (HOSTILE, "sgd")]
    store.close()
    return {"sweep": sweep.id, "runs": [lease.run_id for lease in leases], "epochs": [6, 5, 4, 2],
            "hostile": hostile.id, "hostile_runs": [lease.run_id for lease in hostile_runs]}


@pytest.fixture(scope="module")
def server(home, filled):
    store = open_store(home)
    with ServerThread(store) as running:
        yield running
    store.close()


# Each chart trace holds one or more runs' curves as segments split by nulls, `meta` naming their runs.
CURVES = """() => document.getElementById('curves').data.flatMap(trace => {
  const lengths = []; let n = 0;
  for (const x of trace.x) { if (x === null) { lengths.push(n); n = 0; } else n++; }
  if (n) lengths.push(n);
  return trace.meta.map((run, i) => ({run, points: lengths[i], colour: trace.line.color}));
})"""


def curves(page) -> list[dict[str, Any]]:
    return page.evaluate(CURVES)


def test_sweeps_page_lists_a_created_sweep(server, filled, page):
    page.page.goto(f"{server.base}/")
    row = page.page.wait_for_selector(f"#sweeps tbody tr[data-sweep='{filled['sweep']}']")
    text = row.inner_text()
    assert "dashboard test sweep" in text and "random" in text and "maximize val_acc" in text
    assert re.search(r"finished\s+3", text, re.I) and re.search(r"failed\s+1", text, re.I)


def test_sweep_page_draws_one_curve_per_run(server, filled, page):
    page.page.goto(f"{server.base}/sweeps/{filled['sweep']}")
    page.page.wait_for_selector("body[data-ready]", state="attached")
    drawn = curves(page.page)
    assert sorted(c["run"] for c in drawn) == sorted(filled["runs"])
    assert {c["run"]: c["points"] for c in drawn} == dict(zip(filled["runs"], filled["epochs"]))
    assert page.page.locator("#runs tbody tr").count() == len(filled["runs"])
    page.page.wait_for_selector("body[data-panels]", state="attached")
    # The panels name the best finished run; the failed run (whatever its score) never is.
    best = page.page.locator("#best-link").inner_text()
    assert best in filled["runs"][:3]
    assert page.page.locator("#runs tbody tr.best").get_attribute("data-run") == best
    page.page.wait_for_function(f"() => ({CURVES})().some(c => c.run === {best!r} && c.colour === '#d62728')")
    assert sorted(c["run"] for c in curves(page.page)) == sorted(filled["runs"])  # still one curve each


def test_an_epoch_written_by_a_running_writer_appears_within_5_s_without_a_reload(server, home, page):
    store = open_store(home)
    sweep = store.create_sweep(dict(SWEEP_CONFIG, name="live sweep"))
    running = add_run(store, sweep.id, {"lr": 0.2, "optimizer": "sgd", "epochs": 30}, epochs=1, state="running")
    store.close()
    page.page.goto(f"{server.base}/sweeps/{sweep.id}")
    page.page.wait_for_selector("body[data-ready]", state="attached")
    assert [(c["run"], c["points"]) for c in curves(page.page)] == [(running.run_id, 1)]
    page.page.evaluate("() => { window.__sameDocument = true; }")

    writer = subprocess.run(writer_command(home, running, [2, 3], new_run=True), capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert writer.returncode == 0, writer.stderr
    written_at = float(re.search(r"written (\S+)", writer.stdout).group(1))
    new_run = re.search(r"new (\S+)", writer.stdout).group(1)
    page.page.wait_for_function(
        f"""([run, fresh]) => {{ const drawn = ({CURVES})();
             const grown = drawn.find(c => c.run === run), added = drawn.find(c => c.run === fresh);
             return grown && grown.points === 3 && added && added.points === 1; }}""",
        arg=[running.run_id, new_run], timeout=5000)
    seen_after = time.time() - written_at
    assert seen_after < 5.0, f"the new epochs took {seen_after:.1f}s to appear"
    assert page.page.evaluate("() => window.__sameDocument") is True  # no reload happened
    assert page.page.locator(f"#runs tbody tr[data-run='{new_run}']").count() == 1


def test_pages_request_only_their_own_origin_and_log_no_console_errors(server, filled, page):
    for path, ready in ((f"/", "#sweeps tbody tr"), (f"/sweeps/{filled['sweep']}", "body[data-panels]"),
                        (f"/runs/{filled['runs'][0]}", "body[data-ready]")):
        page.page.goto(f"{server.base}{path}")
        page.page.wait_for_selector(ready, state="attached")
        page.page.wait_for_timeout(2500)  # at least one live poll
    foreign = [url for url in page.requests if not url.startswith(f"{server.base}/")]
    assert foreign == []
    assert any(url.endswith("/static/plotly.min.js") for url in page.requests)
    assert any("/changes?since=" in url for url in page.requests)
    assert page.errors == []


def test_run_page_shows_attempts_failure_and_config(server, filled, page):
    failed = filled["runs"][3]
    page.page.goto(f"{server.base}/runs/{failed}")
    page.page.wait_for_selector("body[data-ready]", state="attached")
    assert "CUDA error: out of memory" in page.page.locator("#run-failure").inner_text()
    attempt = page.page.locator("#attempts tbody tr").first.inner_text()
    assert "tester@box:1" in attempt and "failed" in attempt.lower()
    assert "optimizer" in page.page.locator("#config").inner_text()
    assert page.page.evaluate("() => document.getElementById('acc-curves').data.length") == 2


def test_a_finished_run_page_lists_test_accuracy_per_class(server, filled, page):
    page.page.goto(f"{server.base}/runs/{filled['runs'][0]}")
    page.page.wait_for_selector("body[data-ready]", state="attached")
    rows = page.page.locator("#per-class tbody tr")
    assert rows.count() == 10
    assert rows.first.locator("td").all_inner_texts()[0] == "airplane"
    assert "per_class_acc" not in page.page.locator("#summary").inner_text()  # shown once, as the table


def test_markup_in_a_sweep_name_a_value_and_a_failure_is_shown_as_text(server, filled, page):
    page.page.goto(f"{server.base}/")
    page.page.wait_for_selector(f"#sweeps tbody tr[data-sweep='{filled['hostile']}']")
    assert HOSTILE in page.page.locator(f"#sweeps tbody tr[data-sweep='{filled['hostile']}']").inner_text()
    page.page.goto(f"{server.base}/sweeps/{filled['hostile']}")
    page.page.wait_for_selector("body[data-panels]", state="attached")
    assert page.page.locator("#sweep-name").inner_text() == f"evil {HOSTILE}"
    assert HOSTILE in page.page.locator("#runs tbody").inner_text()
    page.page.goto(f"{server.base}/runs/{filled['hostile_runs'][1]}")
    page.page.wait_for_selector("body[data-ready]", state="attached")
    assert HOSTILE in page.page.locator("#run-failure").inner_text()
    assert page.page.evaluate("() => window.__pwned") is None
    assert page.page.locator("img[src=x]").count() == 0
    assert page.errors == []


# -- a non-loopback bind: the real `sweep dashboard` process ---------------------------------------------


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


@pytest.fixture
def exposed(home, filled, tmp_path):
    """`sweep dashboard --host 127.0.0.2`: not 127.0.0.1, so it must demand its printed token."""
    out = (tmp_path / "out.txt").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "dashboard", "--home", str(home),
                                "--host", "127.0.0.2", "--port", "0"], cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        found = re.search(r"open (http://127\.0\.0\.2:\d+/\?token=\S+)", (tmp_path / "out.txt").read_text())
        url = found.group(1) if found else None
    try:
        assert url, (tmp_path / "out.txt").read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        out.close()


def test_a_non_loopback_bind_refuses_requests_without_the_token(exposed, filled, browser):
    base, token = exposed.split("/?token=")
    assert fetch(f"{base}/")[0] == 401
    assert fetch(f"{base}/api/sweeps")[0] == 401
    assert fetch(f"{base}/static/plotly.min.js")[0] == 401
    assert fetch(f"{base}/api/sweeps?token=wrong{token}")[0] == 401
    assert fetch(f"{base}/api/sweeps", {"X-Dashboard-Token": token})[0] == 200
    status, headers = fetch(exposed)
    assert status == 303 and headers["location"] == "/"  # the token leaves the address bar for a cookie
    cookie = headers["set-cookie"].split(";")[0]
    assert "httponly" in headers["set-cookie"].lower()
    assert fetch(f"{base}/api/sweeps", {"Cookie": cookie})[0] == 200
    # A browser that opened the printed URL keeps working on the cookie alone.
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(exposed)
        tab.wait_for_selector(f"#sweeps tbody tr[data-sweep='{filled['sweep']}']", timeout=PAGE_TIMEOUT_MS)
        assert "token" not in tab.url
    finally:
        context.close()


def test_buttons_appear_only_with_allow_control_and_stop_the_sweep(home, server, page):
    from dashboard.app import DashboardOptions

    store = open_store(home)
    sweep = store.create_sweep(dict(SWEEP_CONFIG, name="control sweep"))
    add_run(store, sweep.id, {"lr": 0.2, "optimizer": "sgd", "epochs": 30}, epochs=2, state="running")
    page.page.goto(f"{server.base}/sweeps/{sweep.id}")  # the read-only server
    page.page.wait_for_selector("body[data-ready]", state="attached")
    assert not page.page.locator("#controls").is_visible()
    with ServerThread(store, options=DashboardOptions(allow_control=True, poll_ms=1000)) as control:
        page.page.goto(f"{control.base}/sweeps/{sweep.id}")
        page.page.wait_for_selector("body[data-ready]", state="attached")
        assert page.page.locator("#controls button[data-action=retry]").is_visible()
        page.page.once("dialog", lambda dialog: dialog.accept())
        page.page.click("#controls button[data-action=cancel]")
        page.page.wait_for_function("() => document.getElementById('control-result').textContent.includes('stopped')")
    assert store.get_sweep(sweep.id).state == "stopped"
    assert store.list_runs(sweep.id)[0].stop_requested  # cancel asks the running run to stop
    store.close()
    assert page.errors == []


def test_a_seed_swept_sweep_shows_each_setting_pooled_over_its_finished_seeds(home, server, filled, page):
    page.page.goto(f"{server.base}/sweeps/{filled['sweep']}")  # no seed among its parameters: no table
    page.page.wait_for_selector("body[data-panels]", state="attached")
    assert not page.page.locator("#over-seeds-section").is_visible()

    store = open_store(home)
    config = dict(SWEEP_CONFIG, name="seeds sweep", method="grid",
                  parameters={"lr": {"values": [0.05, 0.3]}, "seed": {"values": [0, 1]}, "epochs": {"value": 3}})
    sweep = store.create_sweep(config)
    for n, (lr, seed, state) in enumerate([(0.05, 0, "finished"), (0.3, 0, "finished"), (0.05, 1, "finished"),
                                           (0.3, 1, "finished"), (0.3, 1, "failed")]):
        add_run(store, sweep.id, {"lr": lr, "seed": seed, "epochs": 3}, epochs=3, seed=n, state=state)
    finished = [run for run in store.list_runs(sweep.id) if run.state == "finished"]
    store.close()

    def mean_best(lr: float) -> float:
        bests = [max(row["val_acc"] for row in run.history) for run in finished if run.config["lr"] == lr]
        return sum(bests) / len(bests)

    page.page.goto(f"{server.base}/sweeps/{sweep.id}")
    page.page.wait_for_selector("#over-seeds tbody tr")
    rows = [row.locator("td").all_inner_texts() for row in page.page.locator("#over-seeds tbody tr").all()]
    # The higher rate's ceiling is higher (dashboard_runs.epoch_metrics); the failed run adds no seed.
    assert [row[:3] for row in rows] == [["1", "lr=0.3000", "0, 1"], ["2", "lr=0.0500", "0, 1"]]
    assert [row[3] for row in rows] == [f"{100 * mean_best(0.3):.2f}%", f"{100 * mean_best(0.05):.2f}%"]
    assert page.errors == []
