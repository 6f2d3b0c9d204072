"""The dashboard's web app: three pages, their JSON endpoints, the artifact downloads, and controls.

Pages are shells rendered by Jinja2 (autoescaped); their scripts fetch JSON and build the DOM with
textContent, so nothing a sweep file or a run stored is ever parsed as HTML. Every script and style
is served from here: our own from dashboard/static, plotly.js from the installed plotly package.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard import views
from dashboard.live import Views
from dashboard.security import Access, AccessGate, OutsideRunFolder, artifact_file, artifact_listing, csrf_refusal
from store.errors import RunNotFound, StoreError, SweepNotFound
from store.protocol import Store

HERE = Path(__file__).resolve().parent
PANELS_MIN_INTERVAL_S = 3.0  # the forest behind parameter importance is refitted at most this often
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


class DashboardOptions(BaseModel):
    allow_control: bool = False
    poll_ms: int = 1500  # how often a page asks for changes
    warm: bool = True  # read and encode every sweep at start, in the background


class JSON(JSONResponse):
    """Strict JSON (a NaN would be a syntax error to the browser's JSON.parse), never cached."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(content, status_code, headers={"cache-control": "no-store"})


class SecurityHeaders:
    """Content-Security-Policy and friends on every response: only this origin's scripts run.
    Server-Timing says how long the server took (the benchmark and the browser's tools read it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = message.setdefault("headers", [])
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                            (b"server-timing", f"app;dur={took:.2f}".encode())]
            await send(message)

        await self.app(scope, receive, add_headers if scope["type"] == "http" else send)


class PanelCache:
    """The sweep panels per sweep, recomputed only when the sweep changed and not too often."""

    def __init__(self) -> None:
        self._done: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, sweep_id: str, cursor: int, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            found = self._done.get(sweep_id)
            if found and (found[0] == cursor or time.monotonic() - found[1] < PANELS_MIN_INTERVAL_S):
                return found[2] | {"cursor": found[0]}
            data = compute()
            self._done[sweep_id] = (cursor, time.monotonic(), data)
            return data | {"cursor": cursor}


def create_app(store: Store, access: Access, options: DashboardOptions | None = None) -> ASGIApp:
    options = options or DashboardOptions()
    live = Views(store)
    panel_cache = PanelCache()
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    plotly_js = _plotly_js()
    actions = control_actions() if options.allow_control else []

    def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        body = templates.get_template(template).render(csrf=access.csrf, control=options.allow_control, actions=actions,
                                                   poll_ms=options.poll_ms, store=store.url, **context)
        return HTMLResponse(body, status_code=status_code, headers={"cache-control": "no-store"})

    def not_found(message: str) -> HTMLResponse:
        return page("missing.html", status_code=404, message=message)

    # -- pages ----------------------------------------------------------------------------------------

    def sweeps_page(request: Request) -> Response:
        return page("sweeps.html")

    def sweep_page(request: Request) -> Response:
        sweep_id = request.path_params["sweep_id"]
        try:
            sweep = live.get(sweep_id).sweep
        except SweepNotFound as error:
            return not_found(str(error))
        return page("sweep.html", sweep_id=sweep_id, name=(sweep.config.get("name") if sweep else None))

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            run = store.get_run(run_id)
        except (RunNotFound, SweepNotFound) as error:
            return not_found(str(error))
        return page("run.html", run_id=run_id, sweep_id=run.sweep_id)

    # -- JSON -------------------------------------------------------------------------------------------

    def api_sweeps(request: Request) -> Response:
        listing = []
        for sweep in store.list_sweeps():
            try:
                view = live.get(sweep.id)
                view.refresh()
            except SweepNotFound:  # deleted between the two reads
                continue
            listing.append(views.listing_json(view))
        return JSON({"store": store.url, "sweeps": listing})

    def api_sweep(request: Request) -> Response:
        try:
            text = views.snapshot_text(live.get(request.path_params["sweep_id"]))
        except SweepNotFound as error:
            return JSON({"error": str(error)}, 404)
        return Response(text, media_type="application/json", headers={"cache-control": "no-store"})

    def api_changes(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return JSON({"error": "since must be an integer cursor"}, 400)
        try:
            view = live.get(request.path_params["sweep_id"])
        except SweepNotFound as error:
            return JSON({"error": str(error)}, 404)
        return JSON(views.update_json(view.update_since(since)))

    def api_panels(request: Request) -> Response:
        try:
            view = live.get(request.path_params["sweep_id"])
        except SweepNotFound as error:
            return JSON({"error": str(error)}, 404)
        view.refresh()
        assert view.sweep is not None
        sweep = view.sweep
        return JSON(panel_cache.get(sweep.id, view.cursor,
                                    lambda: views.panels_json(sweep, view.records(), store.run_path)))

    def api_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            found = store.get_run(run_id)
            view = live.get(found.sweep_id)
        except (RunNotFound, SweepNotFound) as error:
            return JSON({"error": str(error)}, 404)
        # The run as of the view's cursor, so the page's live updates start exactly where this leaves off.
        view.refresh()
        run = view.record(run_id) or found
        assert view.sweep is not None
        folder = _run_folder(store, run)
        listing = artifact_listing(folder) if folder is not None else []
        data = views.run_page_json(view.sweep, run, store.list_attempts(run_id=run.id), listing, folder,
                                   store.artifacts)
        return JSON(data | {"cursor": view.cursor})

    def artifact(request: Request) -> Response:
        try:
            run = store.get_run(request.path_params["run_id"])
        except (RunNotFound, SweepNotFound) as error:
            return JSON({"error": str(error)}, 404)
        folder = _run_folder(store, run)
        try:
            if folder is None:
                raise OutsideRunFolder(request.path_params["path"])
            path = artifact_file(folder, request.path_params["path"])
        except OutsideRunFolder:
            return JSON({"error": "no such file in the run's folder"}, 404)
        return FileResponse(path, filename=path.name, content_disposition_type="attachment",
                            media_type="application/octet-stream")

    def plotly(request: Request) -> Response:
        return Response(plotly_js, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    # -- control (only with --allow-control) -------------------------------------------------------

    def control(action: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not options.allow_control:
                return JSON({"error": "read-only dashboard: start it with --allow-control"}, 403)
            refusal = csrf_refusal(request, access)
            if refusal is not None:
                return JSON({"error": refusal}, 403)
            sweep_id = request.path_params["sweep_id"]
            from starlette.concurrency import run_in_threadpool

            try:
                result = await run_in_threadpool(_control, store, action, sweep_id)
            except StoreError as error:
                return JSON({"error": str(error)}, 409)
            return JSON(result)

        return endpoint

    # Sweep ids may hold slashes (W&B's entity/project/id), hence :path and the specific routes first.
    routes = [Route(f"/api/sweeps/{{sweep_id:path}}/{action}", control(action), methods=["POST"])
              for action in control_actions()]
    routes += [
        Route("/", sweeps_page),
        Route("/api/sweeps", api_sweeps),
        Route("/api/sweeps/{sweep_id:path}/changes", api_changes),
        Route("/api/sweeps/{sweep_id:path}/panels", api_panels),
        Route("/api/sweeps/{sweep_id:path}", api_sweep),
        Route("/sweeps/{sweep_id:path}", sweep_page),
        Route("/runs/{run_id}/artifacts/{path:path}", artifact),
        Route("/runs/{run_id}", run_page),
        Route("/api/runs/{run_id}", api_run),
        Route("/static/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    if options.warm:
        threading.Thread(target=live.warm, args=(views.listing_json,), name="dashboard-warm", daemon=True).start()
    return SecurityHeaders(AccessGate(app, access))


def control_actions() -> list[str]:
    """stop and cancel always; retry where the controller offers it."""
    from agent.controller import Controller

    return ["stop", "cancel"] + (["retry"] if hasattr(Controller, "retry") else [])


def _control(store: Store, action: str, sweep_id: str) -> dict[str, Any]:
    from agent.controller import Controller

    controller = Controller(store)
    if action == "retry":
        offered = controller.retry(sweep_id)
        return {"action": action, "state": f"{len(offered)} run(s) offered again", "runs": offered}
    sweep = controller.stop_sweep(sweep_id, cancel=action == "cancel")
    return {"action": action, "state": sweep.state, "state_reason": sweep.state_reason}


def _run_folder(store: Store, run) -> Path | None:
    try:
        return store.run_path(run)
    except (StoreError, ValueError, TypeError):  # a run that never got an artifact folder
        return None


def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()
