"""Trimming consumed records, against a real broker: only what every group has committed past."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from journeys_runtime import kafka
from journeys_runtime.topics import Topics
from journeys_runtime.trimming import trim_consumed

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, tp: TopicPartition, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(tp.topic, f"record {i}".encode(), partition=tp.partition)
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    c = kafka.consumer(bootstrap, group)
    await c.start()
    try:
        c.assign(list(offsets))
        await c.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await c.stop()


async def _first_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    c = kafka.consumer(bootstrap, None)
    await c.start()
    try:
        return dict(await c.beginning_offsets(tps))
    finally:
        await c.stop()


async def test_trims_to_the_slowest_group_and_spares_partitions_a_group_has_not_read(
    kafka_bootstrap: str, topics: Topics
) -> None:
    p0, p1 = TopicPartition(topics.commands, 0), TopicPartition(topics.commands, 1)
    await _produce(kafka_bootstrap, p0, 10)
    await _produce(kafka_bootstrap, p1, 10)
    fast, slow = f"fast-{uuid.uuid4().hex}", f"slow-{uuid.uuid4().hex}"
    await _commit(kafka_bootstrap, fast, {p0: 7, p1: 9})
    await _commit(kafka_bootstrap, slow, {p0: 4})  # has not read partition 1 at all

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        trimmed = await trim_consumed(admin, [fast, slow], [p0, p1])
        assert trimmed == {p0: 4}
        assert await _first_offsets(kafka_bootstrap, [p0, p1]) == {p0: 4, p1: 0}
        # Nothing moved since: no request at all, nothing trimmed.
        assert await trim_consumed(admin, [fast, slow], [p0, p1], trimmed) == {}
        await _commit(kafka_bootstrap, slow, {p0: 8, p1: 2})
        assert await trim_consumed(admin, [fast, slow], [p0, p1], trimmed) == {p0: 7, p1: 2}
        assert await _first_offsets(kafka_bootstrap, [p0, p1]) == {p0: 7, p1: 2}
    finally:
        await admin.close()
