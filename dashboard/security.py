"""Who may read the dashboard, who may press its buttons, and which files it may hand out.

- Bound to 127.0.0.1 (the default) it needs no token, but answers only requests whose Host header
  names a loopback address, so a web page elsewhere cannot reach it by DNS rebinding.
- Bound anywhere else it needs a token on every request: `?token=` once (it becomes an HttpOnly
  cookie), the cookie, or the `X-Dashboard-Token` header. Without it: 401.
- Control endpoints (only with --allow-control) are POSTs that carry the page's CSRF token in a
  custom header, which a cross-site form cannot set and a cross-site fetch cannot send without a
  CORS preflight that is never granted; an Origin, when sent, must be the dashboard's own.
- An artifact is served only when it resolves, symlinks followed, inside its run's folder.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_PARAM = "token"
TOKEN_HEADER = "x-dashboard-token"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class Access(BaseModel):
    """The dashboard's access rules, fixed when it starts."""

    token: str | None  # required on every request when set
    csrf: str  # what a control POST must carry in X-CSRF-Token
    port: int = 0  # the cookie is per port: two dashboards on one host do not share it
    loopback_only: bool = True  # no token: answer only Host headers naming a loopback address

    @property
    def cookie(self) -> str:
        return f"sweep_dashboard_{self.port}"


def access_for(host: str, port: int, token: str | None = None) -> Access:
    """127.0.0.1 needs no token; any other bind gets one (the caller's, or a fresh random one)."""
    needs_token = host != "127.0.0.1"
    return Access(token=(token or secrets.token_urlsafe(24)) if needs_token else None,
                  csrf=secrets.token_urlsafe(24), port=port, loopback_only=not needs_token)


def is_loopback_host(host_header: str) -> bool:
    host = urlsplit(f"//{host_header}").hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AccessGate:
    """ASGI middleware: refuses every HTTP request that does not meet `Access`."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        given = request.query_params.get(TOKEN_PARAM)
        if self.access.token is not None and given is not None:
            # The token came in the URL: keep it in a cookie and take it out of the address bar.
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM])
            redirect = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            redirect.set_cookie(self.access.cookie, self.access.token, httponly=True, samesite="strict")
            await redirect(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        if self.access.token is None:
            if self.access.loopback_only and not is_loopback_host(request.headers.get("host", "")):
                return PlainTextResponse("this dashboard answers only on a loopback address\n", status_code=403)
            return None
        offered = (request.query_params.get(TOKEN_PARAM) or request.headers.get(TOKEN_HEADER)
                   or request.cookies.get(self.access.cookie) or "")
        if secrets.compare_digest(offered.encode(), self.access.token.encode()):
            return None
        return PlainTextResponse("token required: open the URL `sweep dashboard` printed (…/?token=…)\n",
                                 status_code=401)


def csrf_refusal(request: Request, access: Access) -> str | None:
    """Why a control request must be refused, or None when it may proceed."""
    if request.method != "POST":
        return "control requests must be POST"
    offered = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(offered.encode(), access.csrf.encode()):
        return "missing or wrong X-CSRF-Token header"
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return f"cross-origin request from {origin}"
    return None


class OutsideRunFolder(Exception):
    """The requested file is not inside the run's artifact folder (or does not exist)."""


def artifact_file(run_folder: Path, relative: str) -> Path:
    """The file `relative` names inside `run_folder`, after resolving every symlink; else OutsideRunFolder."""
    root = run_folder.resolve()
    if not relative or Path(relative).is_absolute() or "\x00" in relative:
        raise OutsideRunFolder(relative)
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root or not target.is_file():
        raise OutsideRunFolder(relative)
    return target


def artifact_listing(run_folder: Path, limit: int = 500) -> list[tuple[str, int]]:
    """Files inside the run's folder (path relative to it, size), symlinks leaving it left out."""
    root = run_folder.resolve()
    if not root.is_dir():
        return []
    found: list[tuple[str, int]] = []
    for path in sorted(root.rglob("*")):
        if len(found) >= limit:
            break
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved.is_file() and resolved.is_relative_to(root):
            found.append((path.relative_to(root).as_posix(), resolved.stat().st_size))
    return found
