"""Start the dashboard: bind the socket, print the address (with its token, as Jupyter does), serve."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from pydantic import BaseModel

from dashboard.app import DashboardOptions, create_app
from dashboard.errors import DashboardError
from dashboard.security import TOKEN_PARAM, Access, access_for
from store.protocol import Store

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class Served(BaseModel):
    host: str
    port: int
    url: str  # what to open, token included
    token: str | None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line DashboardError (address taken, not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                             "choose another --port or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int, access: Access) -> str:
    shown = socket.gethostname() if host in WILDCARDS else (f"[{host}]" if ":" in host else host)
    query = f"?{TOKEN_PARAM}={access.token}" if access.token else ""
    return f"http://{shown}:{port}/{query}"


def serve(store: Store, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, allow_control: bool = False,
          token: str | None = None, announce: Callable[[Served], None] | None = None) -> None:
    """Serve until interrupted. Any --host other than 127.0.0.1 requires a token on every request."""
    if not store.exists():
        raise DashboardError(f"{store.url}: no store there yet (create a sweep first, or pass --store/--home)")
    sock = bind(host, port)
    port = sock.getsockname()[1]  # port 0 asks the system for a free one
    access = access_for(host, port, token)
    app = create_app(store, access, DashboardOptions(allow_control=allow_control))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    if announce is not None:
        announce(Served(host=host, port=port, url=address(host, port, access), token=access.token))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
