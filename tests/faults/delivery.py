"""The delivery scenarios: every message of the load goes by the webhook channel to a loopback
gateway in this process, which verifies each signature, de-duplicates on `webhook-id` as the
Standard Webhooks scheme asks of receivers, and counts every request; then the delivery
service or the gateway is broken under load.

What the checkers read here is the gateway, not a log: `dup_delivery`, a message id the
gateway got that no committed `message.requested` carries (a send the patient would get twice
under a new key); `lost_delivery`, a message the executor asked for that the gateway never
accepted although it was recorded sent, or one whose run neither recorded its outcome nor was
cancelled (never reached the patient); `failed_delivery`, a message given up
(`message.failed`) although the provider came back. `redelivered` counts message ids the
gateway took and was then handed again: a resend after a crash, or after a timeout while the
gateway still held the first, absorbed by its de-duplication (a gateway that does not
de-duplicate would pass them on). Attempts it refused (503, 429) are retries, counted apart.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

from tests.faults.observe import Observed
from tests.faults.stack import FaultStack
from tests.providers.webhook import WebhookGateway

_gateway: WebhookGateway | None = None


def gateway() -> WebhookGateway:
    """The gateway of every delivery scenario, started on first use; reset before each."""
    global _gateway
    if _gateway is None:
        _gateway = WebhookGateway().__enter__()
    return _gateway


def delivery_stack() -> dict[str, Any]:
    """How `fault_stack` builds a delivery scenario's stack: every message by webhook to the
    gateway, retries quick and many enough to outlast the longest outage (30 s)."""
    gw = gateway()
    gw.status, gw.hang_seconds, gw.retry_after, gw.failures_left = 200, 0.0, None, 0
    return {"service_env": {
        "EXECUTOR_DEFAULT_CHANNEL": "webhook", "DELIVERY_DEFAULT_CHANNEL": "webhook",
        "DELIVERY_WEBHOOK_URL": gw.url, "DELIVERY_WEBHOOK_SECRET": gw.secret,
        "DELIVERY_WEBHOOK_TIMEOUT_SECONDS": "2", "DELIVERY_WEBHOOK_MAX_ATTEMPTS": "50",
        "DELIVERY_RETRY_INITIAL_SECONDS": "0.5", "DELIVERY_RETRY_MAX_SECONDS": "4",
    }}  # fmt: skip


def observe_gateway(seen: Observed) -> None:
    """The gateway's view of this stack's runs: each message id it was handed, counted once
    plus each repeat it answered 200 after taking the message (so `redelivered` counts the
    messages that would have reached the patient twice without its de-duplication; refused
    attempts are retries, not repeats), and which it took."""
    gw = gateway()
    runs = set(seen.events)
    with gw._lock:
        ours = {m for m, run in gw.runs.items() if run in runs}
        seen.channel = Counter({m: 1 + gw.absorbed[m] for m in ours})
        seen.delivered = {m for m in ours if m in gw.received}


def lost_delivery(seen: Observed) -> list[str]:
    """Messages recorded sent that the gateway never accepted, and messages asked for whose run
    neither recorded an outcome (sent, failed) nor was cancelled meanwhile. A run cancelled
    while its message waited to be retried never sends it again: that is the cancel's effect,
    not a loss (the load cancels a share of its runs)."""
    lost = set()
    for events in seen.events.values():
        kinds = {e["type"] for e in events}
        for e in events:
            message = e.get("messageId")
            if e["type"] == "journeys.message.sent.v1" and message not in seen.delivered:
                lost.add(message)
            if (
                e["type"] == "journeys.message.requested.v1"
                and not any(
                    f.get("messageId") == message
                    and f["type"] in ("journeys.message.sent.v1", "journeys.message.failed.v1")
                    for f in events
                )
                and "journeys.run.cancelled.v1" not in kinds
            ):
                lost.add(message)
    return sorted(lost)


def failed_delivery(seen: Observed) -> list[str]:
    """Messages given up although the provider came back within the retries' reach."""
    return sorted(
        e["messageId"] for events in seen.events.values() for e in events
        if e["type"] == "journeys.message.failed.v1"
    )  # fmt: skip


DELIVERY_CHECKERS = {"lost_delivery": lost_delivery, "failed_delivery": failed_delivery}


async def kill_delivery(stack: FaultStack) -> dict[str, int]:
    """SIGKILL while sends are in flight (the gateway answers after 0.3 s, so at any moment
    many are between the request and the answer or the report), then start it again."""
    gw = gateway()
    gw.hang_seconds = 0.3
    await asyncio.sleep(2.0)
    in_flight = sum(gw.attempts.values()) - len(gw.received)
    stack.supervisor.kill("delivery", signal.SIGKILL)
    await asyncio.sleep(1.0)
    gw.hang_seconds = 0.0
    await asyncio.to_thread(stack.supervisor.restart, "delivery")
    return {"requests_unanswered_at_kill": max(0, in_flight)}


async def provider_down(stack: FaultStack) -> dict[str, int]:
    """The gateway answers 503 for 30 s, then comes back."""
    gw = gateway()
    before = sum(gw.attempts.values())
    gw.status = 503
    await asyncio.sleep(30.0)
    gw.status = 200
    return {"requests_refused": sum(gw.attempts.values()) - before}


async def provider_throttles(stack: FaultStack) -> dict[str, int]:
    """429 with `Retry-After: 2` for 8 s, then 503 with `Retry-After: 1` for 8 s."""
    gw = gateway()
    before = sum(gw.attempts.values())
    gw.status, gw.retry_after = 429, "2"
    await asyncio.sleep(8.0)
    gw.status, gw.retry_after = 503, "1"
    await asyncio.sleep(8.0)
    gw.status, gw.retry_after = 200, None
    return {"requests_refused": sum(gw.attempts.values()) - before}


async def provider_hangs(stack: FaultStack) -> dict[str, int]:
    """For 15 s the gateway holds every request 5 s before it takes it, past the channel's
    2 s timeout: each is sent again while the gateway still holds the first."""
    gw = gateway()
    before = sum(gw.attempts.values())
    gw.hang_seconds = 5.0
    await asyncio.sleep(15.0)
    gw.hang_seconds = 0.0
    await asyncio.sleep(6.0)  # the last held requests are taken
    return {"requests_during_hang": sum(gw.attempts.values()) - before}
