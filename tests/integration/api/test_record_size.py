"""Requests whose records cannot fit in Kafka get 413 naming the limit, never 503.

A trigger of 1,048,000 bytes (under the 1 MiB body limit) was answered 503 "kafka is
unavailable, retry later": Kafka refused the record, and a well-behaved client retried for
ever. Real Kafka and PostgreSQL here; the sizes at the limit are those the executor's own
records will have.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from journeys_api.record_size import MAX_RECORD_VALUE_BYTES, STATE_RESERVE_BYTES, run_record_sizes
from journeys_contracts.commands import StartRun, StartRunSealed, decode_command
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.events import RunStarted
from journeys_contracts.keys import patient_key
from journeys_runtime.kafka import RECORD_MAX_BYTES
from journeys_runtime.sealing import open_start_run, seal_event
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.topics import Topics, ensure_topics
from tests.conftest import PARTITIONS
from tests.integration.api.conftest import Api, api_settings, serving
from tests.integration.api.helpers import (
    KEYRING,
    commands_on_topic,
    create_journey,
    data_key,
    records_on_topic,
)
from tests.integration.api.projector_sim import simulated_projector
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY, linear_journey

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
DEFINITION = JourneyDefinition.model_validate(HIP_REPLACEMENT_JOURNEY)
PAD = "x"


def padded(patient_id: str, pad: int) -> dict[str, Any]:
    return {"id": patient_id, "pad": PAD * pad}


def body_of(context: dict[str, Any]) -> bytes:
    return json.dumps(context, separators=(",", ":")).encode()


def assert_413_naming_the_limit(response: Any) -> None:
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert f"limit of {MAX_RECORD_VALUE_BYTES} bytes" in detail
    assert PAD * 20 not in response.text
    assert "patient-" not in response.text
    assert "retry-after" not in response.headers  # nothing to retry: the same request fails


async def test_a_trigger_of_1048000_bytes_is_413_naming_the_limit(api: Api) -> None:
    journey_id = await create_journey(api)
    context = padded("patient-big", 0)
    context["pad"] = PAD * (1_048_000 - len(body_of(context)))
    body = body_of(context)
    assert len(body) == 1_048_000 < api.settings.max_body_bytes

    response = await api.client.post(f"/journeys/{journey_id}/trigger", content=body, headers=JSON)

    assert_413_naming_the_limit(response)
    assert await commands_on_topic(api) == []


def largest(journey_id: uuid.UUID, context: dict[str, Any], *, sealed: bool = False) -> int:
    patient_id = str(context["id"])
    sealed_for = (KEYRING, patient_key(DEV_PATIENT_KEY_SECRET, patient_id)) if sealed else None
    sizes = run_record_sizes(journey_id, patient_id, context, DEFINITION, sealed_for=sealed_for)
    return max(sizes.values())


@pytest.fixture
async def unsealed_api(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> AsyncIterator[Api]:
    settings = api_settings(
        kafka_bootstrap, read_models, topics, JOURNEYS_PATIENT_DATA_SEALING=False
    )
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        yield Api(c, settings, read_models, topics)


async def test_a_trigger_at_the_limit_is_accepted_and_one_byte_over_is_413(
    unsealed_api: Api,
) -> None:
    """With sealing off, every record of the run holds the context in clear."""
    api = unsealed_api
    journey_id = uuid.UUID(await create_journey(api))
    # One more padding character is one more byte in every record.
    pad = 1_000_000
    pad += MAX_RECORD_VALUE_BYTES - largest(journey_id, padded("patient-at", pad))
    at_limit, over = padded("patient-at", pad), padded("patient-ov", pad + 1)
    assert largest(journey_id, at_limit) == MAX_RECORD_VALUE_BYTES
    assert largest(journey_id, over) == MAX_RECORD_VALUE_BYTES + 1
    trigger = f"/journeys/{journey_id}/trigger"

    accepted = await api.client.post(trigger, content=body_of(at_limit), headers=JSON)
    refused = await api.client.post(trigger, content=body_of(over), headers=JSON)

    assert accepted.status_code == 202, accepted.text
    assert_413_naming_the_limit(refused)
    (record,) = await commands_on_topic(api)
    command = decode_command(record.value)
    assert isinstance(command, StartRun)
    assert command.patient_context == at_limit
    # What the executor will write from it, built here as it builds it, fits too.
    started = RunStarted(
        run_id=command.run_id, journey_id=command.journey_id, patient_id=command.patient_id,
        seq=1, occurred_at=datetime.now(UTC), journey_name=command.definition.name,
        start_node_id=command.definition.start_node_id,
        patient_context=command.patient_context, definition=command.definition,
    )  # fmt: skip
    assert len(record.value) < len(started.to_json())
    assert len(started.to_json()) + STATE_RESERVE_BYTES < MAX_RECORD_VALUE_BYTES == RECORD_MAX_BYTES


async def test_a_sealed_trigger_at_the_limit_is_accepted_and_one_byte_over_is_413(
    api: Api,
) -> None:
    """Sealed, the context grows by a third (base64) in the StartRun and the sealed RunStarted:
    those are measured, not the clear ones, which would let past a trigger whose sealed
    records Kafka refuses."""
    journey_id = uuid.UUID(await create_journey(api))
    low, high = 0, 1_000_000  # the largest padding whose records fit: low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        fits = largest(journey_id, padded("patient-at", middle), sealed=True)
        low, high = (middle, high) if fits <= MAX_RECORD_VALUE_BYTES else (low, middle)
    at_limit, over = padded("patient-at", low), padded("patient-ov", low + 1)
    assert largest(journey_id, at_limit) < MAX_RECORD_VALUE_BYTES - 200_000  # clear, far under
    trigger = f"/journeys/{journey_id}/trigger"

    accepted = await api.client.post(trigger, content=body_of(at_limit), headers=JSON)
    refused = await api.client.post(trigger, content=body_of(over), headers=JSON)

    assert accepted.status_code == 202, accepted.text
    assert_413_naming_the_limit(refused)
    (record,) = await commands_on_topic(api)
    sealed = decode_command(record.value)
    assert isinstance(sealed, StartRunSealed)
    assert len(record.value) <= MAX_RECORD_VALUE_BYTES
    key = data_key(api.database_url, sealed.patient_key)
    command = open_start_run(sealed, key)
    assert command.patient_context == at_limit
    # What the executor will write from it, sealed and as the clear twin, fits too.
    started = RunStarted(
        run_id=command.run_id, journey_id=command.journey_id, patient_id=command.patient_id,
        seq=1, occurred_at=datetime.now(UTC), journey_name=command.definition.name,
        start_node_id=command.definition.start_node_id,
        patient_context=command.patient_context, definition=command.definition,
        sealed_twin=True,
    )  # fmt: skip
    assert len(started.to_json()) < MAX_RECORD_VALUE_BYTES
    assert len(seal_event(started, key, sealed.patient_key).to_json()) <= MAX_RECORD_VALUE_BYTES


async def test_a_definition_too_large_for_a_record_is_413(api: Api) -> None:
    """A body just under the 1 MiB body limit; its record adds the journey's id and time."""
    journey = linear_journey("large", *(["m" * 10_000] * 104), "m")
    journey["nodes"][-1]["message"] += "m" * (
        api.settings.max_body_bytes - 16 - len(body_of(journey))
    )
    body = body_of(journey)
    assert len(body) == api.settings.max_body_bytes - 16

    response = await api.client.post("/journeys", content=body, headers=JSON)

    assert_413_naming_the_limit(response)
    assert await records_on_topic(api, api.topics.definitions) == []


async def test_a_definition_no_run_of_which_could_fit_is_413(api: Api) -> None:
    """The definition record fits, but a run's records repeat it with a context and more."""
    journey = linear_journey("almost", *(["m" * 10_000] * 103), "m" * 8_000)
    body = body_of(journey)
    assert len(body) < MAX_RECORD_VALUE_BYTES

    response = await api.client.post("/journeys", content=body, headers=JSON)

    assert_413_naming_the_limit(response)
    assert "run" in response.json()["detail"]
    assert await records_on_topic(api, api.topics.definitions) == []


async def test_a_record_kafka_refuses_for_its_size_is_413_not_503(
    kafka_bootstrap: str, read_models: str
) -> None:
    """Whatever the API's own check misses (a topic configured smaller, say), Kafka's
    refusal is final: the same request would fail again, so it is never a 503."""
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    small = {**topics.configs()[topics.definitions], "max.message.bytes": "20000"}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # created with the small limit: no wait for a changed config to reach the broker
        await admin.create_topics(
            [NewTopic(topics.definitions, PARTITIONS, 1, topic_configs=small)]
        )
    finally:
        await admin.close()
    await ensure_topics(kafka_bootstrap, topics, PARTITIONS)
    settings = api_settings(kafka_bootstrap, read_models, topics)
    journey = linear_journey("mid-sized", *(["m" * 10_000] * 3))

    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        response = await c.post("/journeys", json=journey)

    assert response.status_code == 413, response.text
    assert response.json() == {"detail": "Kafka refused the record this request makes for its size"}
    assert "retry-after" not in response.headers
