"""Per request: a trace id for the logs, metrics by route template, and a last-resort 500."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeys_api.metrics import REQUEST_SECONDS, REQUESTS
from journeys_runtime.logs import trace_id_var

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# A client's request id lands in our logs: only a plain token is taken as is.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "<unmatched>"
CLIENT_CLOSED = 499


def trace_id(headers: Headers) -> str:
    """The W3C trace id of `traceparent`, else a well-formed `X-Request-ID`, else a new id."""
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    request_id = headers.get("x-request-id", "").strip()
    if _REQUEST_ID.match(request_id):
        return request_id
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return path if isinstance(path, str) else UNMATCHED


class RequestObservation:
    """Outside everything but the security headers: every answer, even a 500, is counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_trace = trace_id(Headers(scope=scope))
        token = trace_id_var.set(request_trace)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_trace)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except asyncio.CancelledError:
            if not response_started:
                status = CLIENT_CLOSED  # the client went away; nothing failed on our side
            raise
        except Exception as exc:
            # Type and route template only: the message or traceback could carry the body's
            # patient data, and a path can name a patient (`DELETE /patients/{patientId}`).
            log.error(
                "unhandled exception",
                extra={"exception": type(exc).__name__, "route": route_template(scope)},
            )
            if not response_started:
                response = JSONResponse({"detail": "internal error"}, status_code=500)
                await response(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            labels = (scope["method"], route, str(status))
            REQUESTS.labels(*labels).inc()
            REQUEST_SECONDS.labels(*labels).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            trace_id_var.reset(token)


# Answers carry patient data: never cached, never sniffed, framed or referred. The docs page
# loads Swagger UI's scripts, so it alone goes without the content policy.
SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
CONTENT_POLICY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
WITH_POLICY = (*SECURITY_HEADERS, CONTENT_POLICY)
DOC_PATHS = ("/docs", "/redoc")
# The console's pages run our own scripts and styles only: nothing inline, nothing elsewhere.
CONSOLE_POLICY = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
)
WITH_CONSOLE_POLICY = (*SECURITY_HEADERS, CONSOLE_POLICY)


class SecurityHeaders:
    """Pure ASGI: adds the headers to every answer, errors and 503s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        extra: tuple[tuple[bytes, bytes], ...]
        if path.startswith(DOC_PATHS):
            extra = SECURITY_HEADERS
        elif path == "/console" or path.startswith("/console/"):
            extra = WITH_CONSOLE_POLICY
        else:
            extra = WITH_POLICY

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.setdefault(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, with_headers)
