"""`sweep dashboard`: serve the live web view of the store's sweeps."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from cli.common import HomeOption, StoreOption, cli_errors, console, open_store_for


def dashboard(
    store_url: StoreOption = None,
    home: HomeOption = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but 127.0.0.1 requires the printed token on every "
                       "request; on a remote box keep the default and use `ssh -L 8080:127.0.0.1:8080 box`.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8080,
    allow_control: Annotated[bool, typer.Option(
        "--allow-control", help="Add stop/cancel/retry buttons (POST, protected against cross-site requests).")]
    = False,
) -> None:
    """Live web page of every sweep: runs table, curves, parallel coordinates, importance; Ctrl-C stops it."""
    from dashboard.server import Served, serve

    def announce(served: Served) -> None:
        mode = "read-write (--allow-control)" if allow_control else "read-only"
        console.print(f"sweep dashboard ({mode}) on {escape(served.host)}:{served.port}", highlight=False)
        console.print(f"  open {escape(served.url)}", highlight=False, soft_wrap=True)
        if served.token:
            console.print("  every request needs this token; anyone who has the URL can read the store",
                          highlight=False)
        console.print("  Ctrl-C to stop", highlight=False)

    with cli_errors():
        store = open_store_for(store_url, home)
        serve(store, host=host, port=port, allow_control=allow_control, announce=announce)
