"""Dependencies down: 503 with Retry-After, never a 500; a slow projector only delays the 201."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from journeys_api.app import create_app
from journeys_api.deadline import AUDIT_RESERVE_SECONDS
from journeys_api.resources import Resources
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import DEV_KEY, api_settings, serving
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

SOME_JOURNEY = "00000000-0000-4000-8000-000000000000"
AUTH = {"X-API-Key": DEV_KEY}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_postgres_unreachable_is_503_with_retry_after(
    kafka_bootstrap: str, topics: Topics
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/journeys"
    settings = api_settings(kafka_bootstrap, url, topics, db_pool_timeout_seconds=0.3)

    async with serving(settings) as client:
        responses = [
            await client.get(f"/journeys/{SOME_JOURNEY}"),
            await client.post(f"/journeys/{SOME_JOURNEY}/trigger", json={"id": "p-1"}),
            await client.get("/journeys/runs", params={"patientId": "p-1"}),
        ]
        ready = await client.get("/ready")
        health = await client.get("/health")

    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json() == {"detail": "postgres is unavailable, retry later"}
    assert "p-1" not in "".join(r.text for r in responses)
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready", "checks": {"postgres": False, "kafka": True}}
    assert health.status_code == 200


async def test_kafka_unreachable_is_503_with_retry_after(read_models: str, topics: Topics) -> None:
    settings = api_settings(f"127.0.0.1:{closed_port()}", read_models, topics)
    unconfirmed = REGISTRY.get_sample_value("journeys_api_audit_unconfirmed_total") or 0.0

    async with serving(settings) as client:
        created = await client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
        ready = await client.get("/ready")

    # Its audit record could not even be handed to a producer; counted, not waited for.
    assert REGISTRY.get_sample_value("journeys_api_audit_unconfirmed_total") == unconfirmed + 1

    assert created.status_code == 503, created.text
    assert created.headers["retry-after"] == "5"
    assert created.json() == {"detail": "kafka is unavailable, retry later"}
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"postgres": True, "kafka": False}


async def test_all_dependencies_up_is_ready(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    async with serving(api_settings(kafka_bootstrap, read_models, topics)) as client:
        ready = await client.get("/ready")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"postgres": True, "kafka": True}}


async def test_projector_lagging_past_the_wait_still_answers_201_and_counts_it(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    settings = api_settings(
        kafka_bootstrap, read_models, topics, read_your_writes_timeout_seconds=0.3
    )
    labels = {"topic": "journeys.definitions.v1"}
    before = REGISTRY.get_sample_value("journeys_api_read_your_writes_timeouts_total", labels)

    async with serving(settings) as client:  # no projector runs: nothing is ever projected
        started = time.monotonic()
        response = await client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
        elapsed = time.monotonic() - started

    assert response.status_code == 201, response.text
    assert 0.3 <= elapsed < 2
    after = REGISTRY.get_sample_value("journeys_api_read_your_writes_timeouts_total", labels)
    assert (after or 0) == (before or 0) + 1


async def delete_topic(bootstrap: str, topic: str) -> None:
    """Delete `topic` and return once the broker no longer lists it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        async with asyncio.timeout(30):
            for _ in iter(int, 1):  # until the broker stops listing it
                if topic not in await admin.list_topics():
                    return
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_an_api_started_without_its_audit_topic_answers_503_at_once(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The early answer the deadline test once met: when the audit topic is already gone as
    the API starts, its producer never connects (topics missing, and not its to create), so
    every write is a 503 at once, with nothing to wait for. Not a way around the deadline."""
    await delete_topic(kafka_bootstrap, topics.audit)

    async with serving(api_settings(kafka_bootstrap, read_models, topics)) as client:
        response = await client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)
        ready = await client.get("/ready")

    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "kafka is unavailable, retry later"}
    assert ready.json()["checks"]["kafka"] is False


@dataclass
class Wait:
    """One wait of a request: what for, the time it was granted, and how it ended."""

    what: str
    granted: float
    took: float = 0.0
    outcome: str = ""


def record_waits(resources: Resources, topics: Topics) -> list[Wait]:
    """Spies on the producer's sends and the projection waits, passing every call through."""
    waits: list[Wait] = []
    send, wait = resources.publisher.send, resources.waiter.wait

    async def timed(entry: Wait, call: Awaitable[Any]) -> Any:
        waits.append(entry)
        started = time.monotonic()
        try:
            result = await call
        except Exception as exc:
            entry.outcome = type(exc).__name__
            raise
        else:
            entry.outcome = str(result) if isinstance(result, bool) else "acknowledged"
            return result
        finally:
            entry.took = time.monotonic() - started

    async def spied_send(topic: str, *args: Any, max_wait: float, **kwargs: Any) -> Any:
        name = f"send {topic.removeprefix(topics.prefix)}"
        return await timed(Wait(name, max_wait), send(topic, *args, max_wait=max_wait, **kwargs))

    async def spied_wait(topic: str, partition: int, offset: int, granted: float) -> Any:
        name = f"projection of {topic.removeprefix(topics.prefix)}"
        return await timed(Wait(name, granted), wait(topic, partition, offset, granted))

    resources.publisher.send = spied_send  # type: ignore[method-assign]
    resources.waiter.wait = spied_wait  # type: ignore[method-assign]
    return waits


async def test_waits_in_turn_share_one_answer_deadline(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The chain `make faults` 8a once caught: the write is acknowledged, the projector never
    reaches it, and Kafka does not take the audit record. Each wait alone is bounded (3 s
    here); in turn they took 6 s. The answer deadline (4 s) bounds them together: the
    projection wait gets what is left before the audit record's 2 s reserve, the audit
    record the rest, and each runs to its grant."""
    answer, bound = 4.0, 3.0
    settings = api_settings(
        kafka_bootstrap, read_models, topics, produce_timeout_seconds=bound,
        read_your_writes_timeout_seconds=bound, answer_timeout_seconds=answer,
    )  # fmt: skip
    app = create_app(settings)
    waits = record_waits(app.state.resources, topics)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as client,
    ):  # no projector runs: nothing is ever projected
        assert app.state.resources.publisher.connected
        # Deleted once the producer is connected, so the audit record is what fails.
        await delete_topic(kafka_bootstrap, topics.audit)
        response = await client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert [(w.what, w.outcome) for w in waits] == [
        ("send journeys.definitions.v1", "acknowledged"),
        ("projection of journeys.definitions.v1", "False"),  # timed out
        ("send journeys.audit.v1", "UnavailableError"),
    ]
    command, projection, audit = waits
    reserve = AUDIT_RESERVE_SECONDS
    # Each wait was granted at most what the deadline had left, not its own 3 s bound...
    assert command.granted <= answer - reserve
    assert projection.granted <= answer - reserve - command.took
    assert reserve <= audit.granted <= answer - command.took - projection.took + 0.05
    # ...ran to its grant (a wait that ended early would be another path answering)...
    assert projection.took >= projection.granted - 0.05
    assert audit.took >= audit.granted - 0.05
    # ...and together they stayed within the deadline.
    assert command.took + projection.granted + audit.granted <= answer + 0.1
