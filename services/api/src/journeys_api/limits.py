"""Limits: the request-body size (413) and the requests in hand at once (503, at once)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeys_api.metrics import SHED

SHED_RETRY_AFTER_SECONDS = 1  # an overload passes in moments, unlike an outage


class BodyLimit:
    """A declared length over the limit is refused unread; a chunked body is counted as it comes.

    Raising HTTPException from `receive` lets FastAPI's body reading pass it on to the
    HTTPException handler, so both cases answer the same JSON.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}
        """Paths that take uploads (`POST /imports`), each with a limit of its own."""

    @staticmethod
    def too_large(limit: int) -> HTTPException:
        return HTTPException(413, f"request body exceeds the limit of {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse({"detail": self.too_large(limit).detail}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self.too_large(limit)
            return message

        await self.app(scope, receive_limited, send)


class InFlightLimit:
    """At most `limit` requests in hand; beyond that, 503 with Retry-After, answered at once.

    An API past its capacity otherwise queues every request until its caller gives up: at
    1,500 triggers a second against a capacity near 600, `make bench` saw 38,059 of 41,137
    requests get no answer within 10 s. Shedding keeps the accepted ones fast and tells the
    others when to come back. The probes and /metrics are never shed.
    """

    EXEMPT = frozenset({"/health", "/ready", "/metrics"})

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A console's live timeline stays open for minutes: the console counts those itself.
        streaming = (
            scope["type"] == "http"
            and str(scope["path"]).startswith("/console/")
            and str(scope["path"]).endswith("/stream")
        )
        if scope["type"] != "http" or scope["path"] in self.EXEMPT or streaming:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            SHED.inc()
            response = JSONResponse(
                {"detail": "the API is at capacity, retry later"},
                status_code=503,
                headers={"Retry-After": str(SHED_RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
