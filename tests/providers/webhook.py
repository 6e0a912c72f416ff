"""A messaging gateway that receives Standard Webhooks: it verifies every signature with the
`standardwebhooks` package (as a receiver must), de-duplicates on `webhook-id` (as the scheme
asks of receivers), and answers what the test tells it to.

It runs its own event loop in a thread, so a test can use it whether the sender is in the
test's process (its event loop) or a service started as a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from journeys_stack.ports import free_port

SECRET = "whsec_" + base64.b64encode(b"loopback-gateway-signing-key-32b").decode()


@dataclass
class WebhookGateway:
    secret: str = SECRET
    port: int = field(default_factory=free_port)
    status: int = 200
    """What the gateway answers to a valid request (200, or a failure to simulate)."""
    hang_seconds: float = 0.0
    retry_after: str | None = None
    failures_left: int = 0
    """Answer this many more valid requests with `failure_status` (and `retry_after`), then as
    `status` says: a provider down for a while that comes back."""
    failure_status: int = 503
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted messages by `webhook-id`, each once."""
    attempts: Counter[str] = field(default_factory=Counter)
    """Every request by `webhook-id`, repeats included."""
    refused: list[str] = field(default_factory=list)
    """Why requests were refused (a bad signature, a missing header)."""
    runs: dict[str, str] = field(default_factory=dict)
    """The run each `webhook-id` came for (the payload's `data.runId`)."""
    accepted_at: list[float] = field(default_factory=list)
    """When each message was first accepted (`time.monotonic()`), in order."""
    absorbed: Counter[str] = field(default_factory=Counter)
    """Requests answered 200 for a message already accepted: repeats the de-duplication kept
    from the patient (a gateway without it would have sent them on)."""

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages"

    def __enter__(self) -> WebhookGateway:
        self._thread = threading.Thread(target=self._serve, name="webhook-gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the webhook gateway did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/messages", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _receive(self, request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            self._verifier.verify(payload, dict(request.headers))
        except WebhookVerificationError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        run_id = json.loads(payload).get("data", {}).get("runId")
        with self._lock:
            self.attempts[msg_id] += 1
            if isinstance(run_id, str):
                self.runs[msg_id] = run_id
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        with self._lock:
            failing = self.failures_left > 0
            self.failures_left -= failing
        if failing:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.failure_status, headers=headers)
        if self.status >= 300:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.status, headers=headers)
        with self._lock:
            if msg_id in self.received:
                self.absorbed[msg_id] += 1
            else:
                self.received[msg_id] = json.loads(payload)
                self.accepted_at.append(time.monotonic())
        return web.Response(status=200)

    def wait_for_message(self, message_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The accepted message with this `webhook-id`, once it has come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if message_id in self.received:
                    return self.received[message_id]
            time.sleep(0.05)
        raise AssertionError(f"message {message_id} never reached the gateway")

    def wait_for(self, count: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """The accepted messages, once there are at least `count`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return dict(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, the gateway has {len(self.received)}")
