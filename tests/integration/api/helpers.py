"""Given/when helpers of the API's integration tests."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from journeys_runtime.kafka import consumer
from tests.conftest import PARTITIONS
from tests.integration.api.conftest import Api
from tests.unit.api.journeys import DESIGN_JOURNEY


async def create_journey(api: Api) -> str:
    """The journey of DESIGN.md, created through the API."""
    response = await api.client.post("/journeys", json=DESIGN_JOURNEY)
    assert response.status_code == 201, response.text
    return str(response.json()["journeyId"])


async def commands_on_topic(api: Api) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the commands topic, read to its current end."""
    c = consumer(api.settings.kafka_bootstrap_servers, None)
    await c.start()
    try:
        parts = [TopicPartition(api.topics.commands, p) for p in range(PARTITIONS)]
        c.assign(parts)
        await c.seek_to_beginning(*parts)
        ends = await c.end_offsets(parts)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await c.position(tp) < ends[tp] for tp in parts]):
            for batch in (await c.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await c.stop()
