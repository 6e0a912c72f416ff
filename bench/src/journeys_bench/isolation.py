"""Isolation: one provider hanging does not hold up the messages that go by another channel.

`delivery-isolation`: an executor and a delivery service; an SMTP server (aiosmtpd, in this
process) takes the email, and a Twilio-shaped SMS gateway (this process too) that answers at
once, or in the second phase holds every request past `DELIVERY_SMS_TIMEOUT_SECONDS`. Each
phase paces `runs` one-email runs at `rate` a second, with as many one-SMS runs interleaved on
the same partitions, and measures each email run from its StartRun's send to its
`run.completed` (the executor's request, the delivery service's send and report, the
executor's decision). Three phases: healthy, the SMS gateway hanging, healthy again (the
figure compared: the stack warm in both). The figure is the email runs' p99 with the SMS
gateway hanging, beside the healthy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from journeys_bench.engine import Completions
from journeys_bench.harness import Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import Watch, producer, send, start_runs, wait_until
from journeys_stack.ports import free_port

log = logging.getLogger(__name__)

EMAIL_JOURNEY: dict[str, Any] = {
    "name": "bench: one email", "start_node_id": "remind",
    "nodes": [{"id": "remind", "type": "MESSAGE", "channel": "email", "subject": "Reminder",
               "message": "Your appointment is tomorrow.", "next_node_id": None}],
}  # fmt: skip
SMS_JOURNEY: dict[str, Any] = {
    "name": "bench: one SMS", "start_node_id": "remind",
    "nodes": [{"id": "remind", "type": "MESSAGE", "channel": "sms",
               "message": "Your appointment is tomorrow.", "next_node_id": None}],
}  # fmt: skip
SMS_TIMEOUT_SECONDS = 2.0


class _Inbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


class _SmsGateway:
    """Answers 201 to every message, after `hang` seconds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hang = 0.0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="sms-gateway")

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        await request.read()
        if self.hang:  # held until `hang` passes, or the gateway stops
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang)
        return web.json_response({"sid": "SM0", "status": "queued"}, status=201)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()

    def __enter__(self) -> _SmsGateway:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._release.set()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def delivery_isolation(infra: Infra, runs: int = 1500, rate: float = 100.0) -> dict[str, Any]:
    smtp = Controller(_Inbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with _SmsGateway() as sms:
            env = {
                "DELIVERY_SMTP_HOST": "127.0.0.1", "DELIVERY_SMTP_PORT": str(smtp.port),
                "DELIVERY_SMTP_FROM": "care@clinic.example", "DELIVERY_SMTP_STARTTLS": "false",
                "DELIVERY_SMS_URL": f"http://127.0.0.1:{sms.port}",
                "DELIVERY_SMS_ACCOUNT_SID": "ACbench", "DELIVERY_SMS_AUTH_TOKEN": "bench-token",
                "DELIVERY_SMS_FROM": "+15550000000",
                "DELIVERY_SMS_TIMEOUT_SECONDS": str(SMS_TIMEOUT_SECONDS),
            }  # fmt: skip
            with deployment(infra, "isolation", {"executor": 1, "delivery": 1}, env) as dep:
                warm = asyncio.run(_phase(dep, runs, rate, 0))
                sms.hang = 30.0
                hanging = asyncio.run(_phase(dep, runs, rate, runs))
                sms.hang = 0.0
                # Healthy again, on a warm stack, with the hung SMS runs waiting on retries.
                healthy = asyncio.run(_phase(dep, runs, rate, 2 * runs))
            result = {
                "runs": runs, "rate": rate, "sms_timeout_seconds": SMS_TIMEOUT_SECONDS,
                "healthy": healthy, "healthy_first": warm, "sms_hanging": hanging,
                "sms_requests": sms.requests,
            }  # fmt: skip
    finally:
        smtp.stop()
    log.info("delivery isolation: %s", result)
    return result


async def _phase(dep: Any, runs: int, rate: float, first: int) -> dict[str, Any]:
    """`runs` email runs and `runs` SMS runs, one of each per tick, paced at `rate`; the
    email runs' latencies, and how many SMS runs ended within the phase."""
    email = start_runs(runs, EMAIL_JOURNEY, first=first,
                       context=lambda n: {"email": f"patient{n}@example.org"})  # fmt: skip
    sms = start_runs(runs, SMS_JOURNEY, first=first + 10 * runs,
                     context=lambda n: {"phone": f"+1555{n:07d}"})  # fmt: skip
    sent_at: dict[str, float] = {}
    done = Completions()
    async with (
        Watch(dep.kafka_bootstrap, dep.topics.events, dep.partitions, done),
        producer(dep.kafka_bootstrap) as p,
    ):
        started = time.monotonic()
        for n, (mail, text) in enumerate(zip(email, sms, strict=True)):
            await _pace(started, n, rate)
            sent_at[mail.id] = time.monotonic()
            await send(p, dep.topics.commands, mail)
            await send(p, dep.topics.commands, text)
        await p.flush()
        await wait_until(lambda: all(r in done.ended for r in sent_at), 120, 0.2)
    latencies = Latencies()
    for run_id, at in sent_at.items():
        if run_id in done.ended:
            latencies.record(done.ended[run_id] - at)
    sms_ended = sum(1 for r in sms if r.id in done.ended)
    return {**latencies.summary(), "email_runs_ended": latencies.count,
            "sms_runs_ended": sms_ended}  # fmt: skip


async def _pace(started: float, n: int, rate: float) -> None:
    due = started + n / rate
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
