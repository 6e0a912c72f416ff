"""Delivery: how many messages per second one delivery service sends to a webhook gateway.

`delivery-throughput`: `messages` delivery requests (distinct patients, every partition) are
put on `journeys.deliveries.v1` first; then one delivery service starts, sends each to a
loopback gateway (`journeys_bench.receiver`, its own process, which verifies every signature)
and reports each outcome on the commands topic. The rate counts reports readable
(read_committed) per second, from the service's start to the last report, and over the middle
80% of them (the steady state, without start-up and the tail).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess  # nosec B404: the benchmark starts its own receiver, a module of ours
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from journeys_bench.harness import PATIENT_KEY_SECRET, Infra, deployment
from journeys_bench.load import Record, Watch, producer, send, wait_until
from journeys_bench.memory import RssSampler
from journeys_contracts.deliveries import DeliveryRequested, delivery_id
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.keys import patient_key
from journeys_stack.ports import free_port, wait_for_port

log = logging.getLogger(__name__)

SECRET = "whsec_" + base64.b64encode(b"delivery-benchmark-signing-key!!").decode()


def requests(count: int) -> list[Record]:
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        patient = f"bench-delivery-{n}"
        request = DeliveryRequested(
            message_id=uuid.uuid4(), run_id=uuid.uuid4(), journey_id=uuid.uuid4(),
            node_id="hello", patient_key=patient_key(PATIENT_KEY_SECRET, patient),
            patient_id=patient, channel="webhook", message="Your appointment is tomorrow.",
            requested_at=now,
        )  # fmt: skip
        envelope = CloudEvent(id=delivery_id(request.message_id, 1), type=request.type,
                              source="/bench", subject=str(request.run_id), time=now)  # fmt: skip
        out.append(Record(str(request.run_id), request.patient_key.encode(), request.to_json(),
                          envelope.headers()))  # fmt: skip
    return out


def delivery_throughput(infra: Infra, messages: int, concurrency: int = 256) -> dict[str, Any]:
    port = free_port()
    receiver = subprocess.Popen(  # noqa: S603  # nosec B603: our own module, fixed arguments
        [sys.executable, "-m", "journeys_bench.receiver", str(port), SECRET]
    )
    try:
        if not wait_for_port(port, 30):
            raise RuntimeError("the benchmark's webhook receiver did not start")
        env = {"DELIVERY_WEBHOOK_URL": f"http://127.0.0.1:{port}/messages",
               "DELIVERY_WEBHOOK_SECRET": SECRET,
               "DELIVERY_WEBHOOK_CONCURRENCY": str(concurrency)}  # fmt: skip
        with deployment(infra, "delivery", {}, env) as dep:
            asyncio.run(_fill(infra.kafka_bootstrap, dep.topics.deliveries, requests(messages)))
            result = asyncio.run(_measure(dep, messages))
        result["gateway"] = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
        result["concurrency"] = concurrency
        log.info("delivery throughput: %s", result)
        return result
    finally:
        receiver.terminate()
        receiver.wait(10)


async def _fill(bootstrap: str, topic: str, records: list[Record]) -> None:
    async with producer(bootstrap) as p:
        acks = [await send(p, topic, r) for r in records]
        await asyncio.gather(*acks)


async def _measure(dep: Any, messages: int) -> dict[str, Any]:
    arrivals: list[float] = []
    async with Watch(dep.kafka_bootstrap, dep.topics.commands, dep.partitions,
                     lambda tp, record, at: arrivals.append(at)):  # fmt: skip
        started = time.monotonic()
        await asyncio.to_thread(dep.start, {"delivery": 1})
        ready = time.monotonic()
        with RssSampler(dep.pids()) as rss:
            await wait_until(lambda: len(arrivals) >= messages, max(120.0, messages / 200), 0.2)
    arrivals.sort()
    done = len(arrivals) >= messages
    if not arrivals:
        return {"messages": messages, "reported": 0, "finished": False}
    first, last = arrivals[0], arrivals[-1]
    lo, hi = arrivals[len(arrivals) // 10], arrivals[max((len(arrivals) * 9) // 10 - 1, 0)]
    return {
        "messages": messages, "reported": len(arrivals), "finished": done,
        "start_seconds": round(ready - started, 2),
        "seconds": round(last - ready, 2),
        "messages_per_s": round(len(arrivals) / max(last - ready, 1e-9)),
        "steady_messages_per_s": round((len(arrivals) * 0.8) / max(hi - lo, 1e-9)),
        "first_report_after_s": round(first - ready, 2),
        "rss": {name: {"rest_mb": round(rss.rest.get(name, 0), 1),
                       "peak_mb": round(rss.peak.get(name, 0), 1)} for name in rss.peak},
    }  # fmt: skip
