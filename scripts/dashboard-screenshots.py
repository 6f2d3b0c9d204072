#!/usr/bin/env python3
"""PNG screenshots of the dashboard's three pages for a store and a sweep (the README's pictures).

    python scripts/dashboard-screenshots.py --home .sweep --sweep ID [--run RUN] [--out docs]

Serves the dashboard on a free loopback port inside this process, opens it in headless Chromium
(/usr/bin/chromium), and writes dashboard-sweeps.png, dashboard-sweep.png and dashboard-run.png
(the run is the sweep's best finished run unless --run names one).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1400
SETTLE_MS = 1500  # let the first live poll land and the charts finish their transitions


def serve_in_thread(store):
    import uvicorn

    from dashboard.app import DashboardOptions, create_app
    from dashboard.security import access_for
    from dashboard.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(store, access_for("127.0.0.1", port), DashboardOptions())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the dashboard did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="store URL (as `sweep --store`)")
    parser.add_argument("--home", type=Path, help="store folder (as `sweep --home`)")
    parser.add_argument("--sweep", required=True, help="sweep id")
    parser.add_argument("--run", help="run id for the run page (default: the best finished run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from cli.common import open_store_for

    from store.errors import StoreError

    try:
        store = open_store_for(args.store, args.home)
        store.get_sweep(args.sweep)  # an unknown id fails here, before anything is written
    except StoreError as error:
        raise SystemExit(f"error: {error}") from None
    server, thread, base = serve_in_thread(store)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(120_000)
            shots = [("dashboard-sweeps.png", "/", "#sweeps tbody tr"),
                     ("dashboard-sweep.png", f"/sweeps/{args.sweep}", "body[data-panels]")]
            for name, path, ready in shots:
                page.goto(base + path)
                page.wait_for_selector(ready, state="attached")
                page.wait_for_timeout(SETTLE_MS)
                page.screenshot(path=str(args.out / name), full_page=True)
                print(args.out / name)
            run_id = args.run or page.locator("#best-link").inner_text().strip()
            if not args.run and not page.locator("#best-link").get_attribute("href").startswith("/runs/"):
                raise SystemExit(f"sweep {args.sweep} has no finished run yet; pass --run")
            page.goto(f"{base}/runs/{run_id}")
            page.wait_for_selector("body[data-ready]", state="attached")
            page.wait_for_timeout(SETTLE_MS)
            page.screenshot(path=str(args.out / "dashboard-run.png"), full_page=True)
            print(args.out / "dashboard-run.png")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
