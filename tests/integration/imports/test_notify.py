"""The chat notifier against a real HTTP server on loopback playing the incoming webhook: in
order, retried through outages and throttling, never raising, never waiting past `close`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from journeys_api.imports.notify import ChatNotifier
from journeys_stack.ports import free_port


@dataclass
class Webhook:
    """Answers `answers` in turn (then 200), keeps the bodies it took."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    taken: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    hang: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.taken) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def receive(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if self.hang:
            await asyncio.sleep(self.hang)
        if self.answers:
            status, headers = self.answers.pop(0)
            return web.Response(status=status, headers=headers)
        self.taken.append(body)
        self.arrived.set()
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def serving(hook: Webhook) -> AsyncIterator[str]:
    """`hook` on loopback, at the URL yielded, an incoming webhook's shape."""
    app = web.Application()
    app.router.add_post("/services/T000/B000/XXXX", hook.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/services/T000/B000/XXXX"
    finally:
        await runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    async with serving(hook) as url:
        yield hook, url


def text(n: int) -> dict[str, Any]:
    return {"text": f"message {n}", "blocks": []}


async def test_messages_arrive_in_order_through_an_outage_and_a_throttle(
    webhook: tuple[Webhook, str],
) -> None:
    hook, url = webhook
    hook.answers = [(503, {}), (503, {}), (429, {"Retry-After": "0.2"})]
    notifier = ChatNotifier(url, initial_seconds=0.05, max_seconds=0.5)
    started = time.monotonic()
    notifier.post(text(1))
    notifier.post(text(2), replaceable=True)
    elapsed_posting = time.monotonic() - started
    await notifier.close(within=10)
    assert elapsed_posting < 0.05  # posting never waits for the webhook
    assert [m["text"] for m in hook.taken] == ["message 1", "message 2"]
    assert (notifier.outbox.delivered, notifier.outbox.failed_attempts) == (2, 3)
    assert notifier.outbox.last_error == "answered 429"


async def test_newer_progress_replaces_older_progress_still_waiting(
    webhook: tuple[Webhook, str],
) -> None:
    hook, url = webhook
    hook.answers = [(503, {})] * 2
    notifier = ChatNotifier(url, initial_seconds=0.1, max_seconds=0.2)
    notifier.post(text(0))  # the start: never replaced
    for n in range(1, 6):
        notifier.post(text(n), replaceable=True)
    notifier.post(text(9))  # the end
    await notifier.close(within=10)
    assert [m["text"] for m in hook.taken] == ["message 0", "message 5", "message 9"]
    assert notifier.outbox.replaced == 4


async def test_a_refusal_is_not_retried_and_a_dead_webhook_never_holds_up_close(
    webhook: tuple[Webhook, str],
) -> None:
    hook, url = webhook
    hook.answers = [(404, {})]
    refused = ChatNotifier(url)
    refused.post(text(1))
    await refused.close(within=10)
    assert (hook.calls, refused.outbox.given_up, refused.outbox.delivered) == (1, 1, 0)

    dead = ChatNotifier(f"http://127.0.0.1:{free_port()}/hook", attempts=50,
                        initial_seconds=0.05, max_seconds=0.1)  # fmt: skip
    dead.post(text(1))
    dead.post(text(2))
    started = time.monotonic()
    await dead.close(within=1.0)
    assert time.monotonic() - started < 2.0
    assert dead.outbox.delivered == 0
    assert dead.outbox.given_up == 2
    assert dead.outbox.failed_attempts >= 2
    assert dead.outbox.last_error == "ClientConnectorError"
