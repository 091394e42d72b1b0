"""The console's FastAPI app: server-rendered pages, each with a JSON twin (``?format=json``).

Every page is a function of the project returning a :class:`~noria.console.pages.Page`: its title,
the JSON payload (what the CLI's ``--json`` prints for the same question) and the HTML parts drawn
from it. Pages are kept in a :class:`~noria.console.cache.PageCache` until a record they read
changes. Reading needs a key (:mod:`noria.console.auth`); actions are in :mod:`noria.console.actions`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from noria.console import layout
from noria.console.auth import COOKIE, Access, read_form, request_key
from noria.console.cache import PageCache
from noria.console.pages import Page
from noria.console.plots import PREFIX as PLOTS
from noria.console.plots import PlotStore
from noria.errors import NoriaError

if TYPE_CHECKING:
    from noria.config import Project

log = logging.getLogger("noria.console")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PLOT_CACHE = "private, max-age=31536000, immutable"  # a plot's address is its content's digest
PLOT_NAME = re.compile(r"[0-9a-f]{24}\.svg")


@dataclass
class Console:
    """What every request needs: the project, who may do what, the cache, the links out."""

    project: Project
    access: Access
    serving_url: str | None = None
    mlflow_url: str | None = None
    cache: PageCache = field(init=False)
    plots: PlotStore = field(init=False, default_factory=PlotStore)

    def __post_init__(self) -> None:
        from noria.registry.mlflow_client import is_remote, tracking_uri

        self.cache = PageCache(self.project, remote=is_remote(tracking_uri(self.project)))

    def html(self, page: Page, current: str, status: int = 200) -> HTMLResponse:
        text = layout.shell(
            page.title, current, page.parts, project=self.project.config.project, mlflow_url=self.mlflow_url
        )
        return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def page_routes() -> dict[str, Callable[..., Page]]:
    """Each address and its page function."""
    from noria.console import pages, pages_models, pages_monitoring, pages_more

    return {
        "/": pages.overview,
        "/data": pages.data,
        "/data/{ref}": pages.snapshot,
        "/data/{ref}/quarantine": pages.quarantine,
        "/features": pages_more.features,
        "/models": pages_models.models,
        "/models/{name}/{version}": pages_models.version,
        "/requests": pages_models.request,
        "/monitoring": pages_monitoring.monitoring,
        "/monitoring/review": pages_monitoring.review,
        "/maturity": pages_more.maturity,
    }


def create_app(
    project: Project,
    access: Access,
    *,
    serving_url: str | None = None,
    mlflow_url: str | None = None,
    warm: bool = False,
) -> FastAPI:
    """The console for ``project``; ``serving_url`` makes the overview ask the service for its health;
    ``warm`` builds the pages without parameters in a background thread at once."""
    from noria.console import actions, pages

    console = Console(project, access, serving_url, mlflow_url)
    app = FastAPI(title="Noria console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.url.path in ("/login", "/health") or access.can_read(request_key(request)):
            response: Response = await call_next(request)
            return response
        if _wants_json(request):
            return _json({"error": "missing or wrong API key", "fix": _FIX}, 401)
        return RedirectResponse(f"/login?next={_quote(request.url.path)}", status_code=303)

    def show(path: str, key: Callable[[Request], str], build: Callable[..., Page]) -> None:
        async def endpoint(request: Request) -> Response:
            params = dict(request.path_params) | {k: v for k, v in request.query_params.items() if k != "format"}
            try:
                page = await run_in_threadpool(console.cache.get, key(request), lambda: build(console, **params))
                page = pages.live(console, page)
            except NoriaError as exc:
                return _error(console, request, exc)
            if _wants_json(request):
                return _json(page.payload)
            return console.html(page, "/" + path.strip("/").split("/")[0] if path != "/" else "/")

        endpoint.__name__ = f"page_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}"
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)

    for path, build in page_routes().items():
        show(path, _key_of, build)

    @app.get(PLOTS + "{name}", include_in_schema=False)
    async def plot(request: Request, name: str) -> Response:
        """A plot of the monitoring page by its content's digest: the browser may keep it for good."""
        digest = name.removesuffix(".svg")
        if not PLOT_NAME.fullmatch(name):
            return Response("no such plot\n", status_code=404, headers=SECURITY_HEADERS)
        etag = f'"{digest}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": PLOT_CACHE})
        svg = console.plots.get(digest)
        if svg is None:  # drawn by a page this process has not built (yet): build it, look again
            try:
                await run_in_threadpool(
                    console.cache.get, "/monitoring?[]", lambda: page_routes()["/monitoring"](console)
                )
            except NoriaError as exc:
                return _error(console, request, exc)
            svg = console.plots.get(digest)
        if svg is None:
            return Response("no such plot: reload the monitoring page\n", status_code=404, headers=SECURITY_HEADERS)
        headers = SECURITY_HEADERS | {"Cache-Control": PLOT_CACHE, "ETag": etag}
        return Response(svg, media_type="image/svg+xml", headers=headers)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return _json({"status": "alive"})

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "/") -> Response:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        form = (
            '<form method="post" action="/login"><fieldset><legend>Sign in with an API key</legend>'
            '<label for="key">API key</label><input id="key" name="key" type="password" autocomplete="off" required>'
            f'<input type="hidden" name="next" value="{escape(target)}"> <button type="submit">Sign in</button>'
            "</fieldset></form><p class=muted>A key from NORIA_API_KEYS reads; a key from NORIA_ADMIN_KEYS also "
            "acts (promote, rollback, reload, review).</p>"
        )
        return console.html(Page("Sign in", {}, [form]), "/login")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        key, target = form.get("key", ""), form.get("next", "/")
        target = target if target.startswith("/") and not target.startswith("//") else "/"
        if not access.can_read(f"Bearer {key}"):
            return console.html(Page("Sign in", {}, [layout.error_box("that key is not accepted")]), "/login", 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.get("/mlflow", include_in_schema=False)
    async def mlflow() -> Response:
        if console.mlflow_url:
            return RedirectResponse(console.mlflow_url, status_code=303)
        text = (
            "<p>MLflow's own UI runs beside the console: start it with <code>noria ui --mlflow</code> "
            "(or give the console its address with <code>noria ui --mlflow-url URL</code>).</p>"
        )
        return console.html(Page("MLflow UI", {}, [text]), "/mlflow")

    actions.add(app, console)
    if warm:
        import threading

        threading.Thread(target=_warm, args=(console, page_routes()), name="console-warm", daemon=True).start()
    return app


def _warm(console: Console, routes: Mapping[str, Callable[..., Page]]) -> None:
    """Build the pages without parameters once at start, so the first visitor does not wait for them."""
    for path, build in routes.items():
        if "{" in path:
            continue
        try:
            console.cache.get(path + "?[]", functools.partial(build, console))
        except Exception as exc:  # a page that cannot be built now says why when it is visited
            log.debug("warming %s: %s", path, exc)


_FIX = "send 'Authorization: Bearer <key>' with a key from NORIA_API_KEYS, or sign in on /login"


def _key_of(request: Request) -> str:
    query = sorted((k, v) for k, v in request.query_params.items() if k != "format")
    return request.url.path + "?" + json.dumps(query)


def _wants_json(request: Request) -> bool:
    return request.query_params.get("format") == "json"


def _json(payload: Any, status: int = 200) -> Response:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return Response(text, status_code=status, media_type="application/json", headers=SECURITY_HEADERS)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _error(console: Console, request: Request, exc: NoriaError) -> Response:
    status = exc.http_status if isinstance(getattr(exc, "http_status", None), int) else 500
    if _wants_json(request):
        return _json({"error": exc.message, "fix": exc.fix}, status)
    return console.html(Page("Not available", {}, [layout.error_box(exc.message, exc.fix)]), request.url.path, status)


__all__ = ["SECURITY_HEADERS", "Console", "create_app", "page_routes"]
