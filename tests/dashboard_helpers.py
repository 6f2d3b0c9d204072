"""Dashboard tests' shared pieces: the real server in a thread, and a writer process command."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from dashboard.app import DashboardOptions, create_app
from dashboard.security import Access, access_for
from dashboard.server import bind
from store.protocol import Lease, Store

ROOT = Path(__file__).resolve().parents[1]


class ServerThread:
    """The real app under uvicorn on a free loopback port, in a thread of the test process."""

    def __init__(self, store: Store, access: Access | None = None, host: str = "127.0.0.1",
                 options: DashboardOptions | None = None) -> None:
        self.sock = bind(host, 0)
        self.port = self.sock.getsockname()[1]
        self.access = access or access_for(host, self.port)
        self.base = f"http://{host}:{self.port}"
        app = create_app(store, self.access, options or DashboardOptions(poll_ms=1000))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def lease_argument(lease: Lease) -> str:
    return json.dumps(lease.model_dump())


def writer_command(home: Path, lease: Lease, epochs: list[int], new_run: bool = False) -> list[str]:
    """A separate process that writes these epochs of the leased run (and, optionally, a new run)."""
    return [sys.executable, str(ROOT / "tests" / "dashboard_writer.py"), str(home), lease_argument(lease),
            ",".join(map(str, epochs)), "new" if new_run else "same"]
