"""The operator console: pages for care teams and operators at `/console`, on the API's origin.

`install` adds it to the API: the sign-in (an API key, or the OIDC issuer's in `oidc.py`; the
session is a cookie, `sessions.py`), the pages (`pages.py`), the live timelines (`live.py`),
our own CSS and script (`static/`), and the browser libraries from npm
(`services/api/console/package.json`, installed with `npm ci` by `make install` and the image
build), served from here under a Content-Security-Policy that runs no script but ours.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from journeys_api.console import oidc, pages
from journeys_api.console.live import Conversations, Timelines
from journeys_api.console.sessions import Sessions, cookie_name, set_cookie
from journeys_api.console.streams import StreamCount
from journeys_api.settings import ApiSettings

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SOURCE_ASSETS = HERE.parents[2] / "console"
"""In a checkout, services/api/console: `npm ci` fills its node_modules, `npm run build` its
dist (the journey editor's bundle)."""
VENDOR = {
    "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
    "htmx-sse.min.js": "node_modules/htmx-ext-sse/dist/sse.min.js",
    "dagre.min.js": "node_modules/@dagrejs/dagre/dist/dagre.min.js",
    "chart.umd.min.js": "node_modules/chart.js/dist/chart.umd.min.js",
    "editor.min.js": "dist/editor.min.js",
}
"""The files the pages load, by the name they load them under."""


def assets_dir(settings: ApiSettings) -> Path:
    return Path(settings.console_assets_dir) if settings.console_assets_dir else SOURCE_ASSETS


def _same_origin(request: Request) -> bool:
    """False for a request a browser says another site sent (a login CSRF)."""
    site = request.headers.get("sec-fetch-site")
    return site in (None, "same-origin", "none")


public = APIRouter(prefix="/console", include_in_schema=False)


@public.get("")
async def home() -> Response:
    return RedirectResponse("/console/journeys", status_code=303)


@public.get("/sign-in")
async def sign_in_page(request: Request) -> HTMLResponse:
    return pages.render(request, "sign_in.html", error=None)


@public.post("/sign-in")
async def sign_in(request: Request, api_key: Annotated[str, Form(max_length=500)] = "") -> Response:
    if not _same_origin(request):
        return pages.render(request, "sign_in.html", status=403, error="sign in from this page")
    try:
        principal = await request.app.state.authenticator.principal(None, api_key.strip())
    except HTTPException as exc:
        if exc.status_code not in (400, 401):
            raise
        return pages.render(request, "sign_in.html", status=401, error="unknown or revoked key")
    settings: ApiSettings = request.app.state.resources.settings
    sessions: Sessions = request.app.state.console_sessions
    token = await sessions.open(principal, api_key=api_key.strip())
    log.info("console sign-in", extra={"subject": principal.subject})
    response = RedirectResponse("/console/journeys", status_code=303)
    set_cookie(response, token, settings.console_cookie_secure, settings.console_session_hours)
    return response


@public.post("/sign-out")
async def sign_out(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    settings: ApiSettings = request.app.state.resources.settings
    name = cookie_name(settings.console_cookie_secure)
    session = await pages.session_of(request)
    if session is not None:
        pages.checked(request, session, csrf_token)
        await request.app.state.console_sessions.close(request.cookies[name])
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(name, path="/", secure=settings.console_cookie_secure,
                           httponly=True, samesite="strict")  # fmt: skip
    return response


@public.get("/vendor/{name}")
async def vendor(request: Request, name: str) -> Response:
    if name not in VENDOR:
        raise pages.PageError(404, "no such file")
    path = assets_dir(request.app.state.resources.settings) / VENDOR[name]
    if not path.is_file():
        log.error("console asset missing: `make install` (npm in services/api/console)",
                  extra={"asset": name})  # fmt: skip
        raise pages.PageError(503, "the console's libraries are not installed",
                              headers={"Retry-After": "60"})  # fmt: skip
    return FileResponse(path, media_type="text/javascript")


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, pages.PageError)
    response = pages.render(request, "error.html", status=exc.status_code, message=exc.detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, pages.SignInNeeded)
    return RedirectResponse("/console/sign-in", status_code=303)


JSON_PATHS = ("/console/imports/upload", "/console/vendor/")
"""Console paths whose callers read JSON errors (the upload's script) or none (assets)."""


def _as_pages(app: FastAPI) -> None:
    """The API's error answers (422, 404, 409, 503 with Retry-After...) as HTML pages on the
    console's paths, their status and headers kept; JSON everywhere else."""
    for kind, handler in list(app.exception_handlers.items()):
        if not isinstance(kind, type) or kind in (pages.PageError, pages.SignInNeeded):
            continue

        async def answer(request: Request, exc: Exception, handler: Any = handler) -> Response:
            response = await handler(request, exc)
            path = request.url.path
            if not path.startswith("/console/") or path.startswith(JSON_PATHS):
                return response
            try:
                detail = json.loads(bytes(response.body))["detail"]
            except (ValueError, KeyError, TypeError):
                detail = "something went wrong"
            if isinstance(detail, list):  # a validation error: each field and why
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}"
                                   for d in detail)  # fmt: skip
            page = pages.render(request, "error.html", status=response.status_code,
                                message=str(detail))  # fmt: skip
            for name in ("retry-after", "www-authenticate"):
                if name in response.headers:
                    page.headers[name] = response.headers[name]
            return page

        app.add_exception_handler(kind, answer)


def install(app: FastAPI, settings: ApiSettings) -> None:
    resources = app.state.resources
    app.state.console_sessions = Sessions(
        resources.pool, timedelta(hours=settings.console_session_hours),
        dev_key=settings.auth_dev_key is not None,
    )  # fmt: skip
    app.state.console_streams = StreamCount(settings.console_max_streams)
    app.state.console_timelines = Timelines(resources, settings.console_stream_poll_seconds)
    app.state.console_conversations = Conversations(resources, settings.console_stream_poll_seconds)
    if not (assets_dir(settings) / VENDOR["htmx.min.js"]).is_file():
        log.warning("the console's libraries are missing: `npm ci` in services/api/console")
    _as_pages(app)
    app.add_exception_handler(pages.PageError, _page_error)
    app.add_exception_handler(pages.SignInNeeded, _sign_in_needed)
    app.include_router(public)
    oidc.install(app, settings)
    app.include_router(pages.ops)  # first: `/console/journeys/new` is not a journey id
    app.include_router(pages.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
