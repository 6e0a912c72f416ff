"""A small HTTP server for the non-HTTP services: /health, /ready and /metrics."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from journeys_runtime.logs import describe_error

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


class OpsServer:
    """`/ready` answers 200 only when every named dependency check passes."""

    def __init__(self, host: str, port: int, ready: ReadyCheck) -> None:
        self.host, self.port, self._ready = host, port, ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready_view)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("ops server listening", extra={"port": self.port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready_view(self, _: web.Request) -> web.Response:
        try:
            checks = await self._ready()
        except Exception as exc:  # a failing check means "not ready", never a 500
            log.warning("readiness check raised", extra={"error": describe_error(exc)})
            checks = {"checks": False}
        ok = all(checks.values())
        return web.json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
