"""Past API_MAX_IN_FLIGHT requests in hand, the next is answered 503 at once, with Retry-After."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from journeys_api.limits import InFlightLimit


def _app(release: asyncio.Event, entered: asyncio.Queue[None]) -> InFlightLimit:
    async def slow(request: Request) -> PlainTextResponse:
        await entered.put(None)
        await release.wait()
        return PlainTextResponse("done")

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ready")

    app = Starlette(routes=[Route("/slow", slow, methods=["POST"]), Route("/ready", ready)])
    return InFlightLimit(app, limit=2)


async def test_requests_past_the_limit_are_shed_and_the_probes_never_are() -> None:
    release, entered = asyncio.Event(), asyncio.Queue[None]()
    limited = _app(release, entered)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        held = [asyncio.create_task(client.post("/slow")) for _ in range(2)]
        for _ in held:
            await asyncio.wait_for(entered.get(), 5)

        shed = await client.post("/slow")
        probe = await client.get("/ready")
        release.set()
        answers = await asyncio.gather(*held)
        after = await client.post("/slow")

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json() == {"detail": "the API is at capacity, retry later"}
    assert probe.status_code == 200
    assert [a.status_code for a in answers] == [200, 200]
    assert after.status_code == 200
    assert limited.in_flight == 0
