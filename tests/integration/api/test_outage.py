"""Dependencies down: 503 with Retry-After, never a 500; a slow projector only delays the 201."""

from __future__ import annotations

import socket
import time

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from journeys_runtime.topics import Topics
from tests.integration.api.conftest import api_settings, serving
from tests.unit.api.journeys import DESIGN_JOURNEY

SOME_JOURNEY = "00000000-0000-4000-8000-000000000000"


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
        created = await client.post("/journeys", json=DESIGN_JOURNEY)
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
        response = await client.post("/journeys", json=DESIGN_JOURNEY)
        elapsed = time.monotonic() - started

    assert response.status_code == 201, response.text
    assert 0.3 <= elapsed < 2
    after = REGISTRY.get_sample_value("journeys_api_read_your_writes_timeouts_total", labels)
    assert (after or 0) == (before or 0) + 1


async def test_waits_in_turn_share_one_answer_deadline(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    """The chain `make faults` 8a once caught: the write is acknowledged, the projector never
    reaches it, and Kafka does not take the audit record. Each wait alone is bounded (3 s
    here); in turn they took 6 s. The answer deadline (4 s) bounds them together."""
    settings = api_settings(
        kafka_bootstrap, read_models, topics, produce_timeout_seconds=3,
        read_your_writes_timeout_seconds=3, answer_timeout_seconds=4,
    )  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topics.audit])  # the record of any answer now fails
    finally:
        await admin.close()

    async with serving(settings) as client:  # no projector runs: nothing is ever projected
        started = time.monotonic()
        response = await client.post("/journeys", json=DESIGN_JOURNEY)
        elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    # 2 s of read-your-writes (the 4 s less the audit record's 2 s reserve), 2 s for the
    # record; the margin is for a slow machine, the 6 s it took before is well past it.
    assert 3.5 <= elapsed < 5, elapsed
