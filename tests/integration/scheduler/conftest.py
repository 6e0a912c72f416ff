"""Schedulers against the real broker and a fresh database; event writers; command readers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from journeys_contracts.commands import FireTimer, decode_command
from journeys_contracts.envelope import CloudEvent, event_id
from journeys_contracts.events import EventBase, PatientErased, erasure_event_id, type_of
from journeys_contracts.keys import patient_key
from journeys_runtime.kafka import consumer, producer
from journeys_runtime.sealing import seal_event
from journeys_runtime.shredding import DataKey
from journeys_runtime.topics import Topics
from journeys_scheduler.app import Scheduler
from journeys_scheduler.settings import SchedulerSettings
from tests.conftest import PARTITIONS

pytestmark = pytest.mark.integration


def key_of(patient: str) -> bytes:
    return patient_key("test-secret", patient).encode()


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def ready(scheduler: Scheduler, within: float = 15.0) -> Scheduler:
    """Owns every partition, its window is loaded and it is not holding fires."""
    window = scheduler.window
    await wait_for(
        lambda: len(window.partitions) == PARTITIONS
        and not window.needs_refresh(datetime.now(UTC))
        and window.held_until is None,
        within, "the scheduler to own every partition",
    )  # fmt: skip
    return scheduler


@pytest.fixture
def settings(kafka_bootstrap: str, fresh_database: str, topics: Topics) -> SchedulerSettings:
    return SchedulerSettings.model_validate({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": fresh_database,
        "JOURNEYS_TOPIC_PREFIX": topics.prefix, "JOURNEYS_PARTITIONS": PARTITIONS,
        "ops_port": 0, "catch_up_seconds": 5,
    })  # fmt: skip


@pytest.fixture
async def start_scheduler(
    settings: SchedulerSettings,
) -> AsyncIterator[Callable[[], Awaitable[Scheduler]]]:
    started: list[Scheduler] = []

    async def start() -> Scheduler:
        scheduler = Scheduler(settings)
        started.append(scheduler)
        await scheduler.start()
        return scheduler

    yield start
    for scheduler in started:
        await scheduler.stop()


class EventWriter:
    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self._producer = producer(bootstrap)
        self.topics = topics

    async def send(self, event: EventBase, key: bytes) -> int:
        """Write an event as the executor does; returns its partition."""
        envelope = CloudEvent(
            id=event_id(event.run_id, event.seq), type=type_of(type(event)),
            source="/journeys/executor", subject=str(event.run_id), time=event.occurred_at,
        )  # fmt: skip
        meta = await self._producer.send_and_wait(
            self.topics.events, event.to_json(), key=key, headers=envelope.headers()
        )
        return int(meta.partition)

    async def send_sealed(self, event: EventBase, key: bytes, data_key: DataKey) -> int:
        """Write the v2 twin of `event` to journeys.events.v2 as the executor does for a
        sealed run; returns its partition."""
        sealed = seal_event(event, data_key, key.decode())  # type: ignore[arg-type]
        v1_id = uuid.UUID(event_id(event.run_id, event.seq))
        envelope = CloudEvent(
            id=str(uuid.uuid5(v1_id, "sealed")), type=sealed.type, source="/journeys/executor",
            subject=str(event.run_id), time=event.occurred_at,
        )  # fmt: skip
        meta = await self._producer.send_and_wait(
            self.topics.sealed_events, sealed.to_json(), key=key, headers=envelope.headers()
        )
        return int(meta.partition)

    async def send_erased(self, erased: PatientErased, *, sealed: bool = False) -> None:
        envelope = CloudEvent(
            id=erasure_event_id(erased.erasure_id), type=type_of(PatientErased),
            source="/journeys/executor", subject=str(erased.erasure_id), time=erased.erased_at,
        )  # fmt: skip
        await self._producer.send_and_wait(
            self.topics.sealed_events if sealed else self.topics.events, erased.to_json(),
            key=erased.patient_key.encode(), headers=envelope.headers(),
        )  # fmt: skip

    async def send_raw(self, value: bytes, key: bytes) -> None:
        await self._producer.send_and_wait(self.topics.events, value, key=key)


@pytest.fixture
async def events(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[EventWriter]:
    writer = EventWriter(kafka_bootstrap, topics)
    await writer._producer.start()
    yield writer
    await writer._producer.stop()


@dataclass
class Received:
    command: FireTimer
    partition: int
    key: bytes
    headers: list[tuple[str, bytes]]
    arrived_at: datetime


class TopicReader:
    """Everything on one topic, read_committed, from the start, as it arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = consumer(bootstrap, None, [topic])
        self.records: list[Any] = []
        self.arrivals: list[datetime] = []

    async def _poll(self, seconds: float) -> None:
        batch = await self._consumer.getmany(timeout_ms=int(seconds * 1000))
        now = datetime.now(UTC)
        for records in batch.values():
            for record in records:
                self.records.append(record)
                self.arrivals.append(now)

    async def until(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.records) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {count} records, got {len(self.records)}")
            await self._poll(min(left, 0.05))

    async def during(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await self._poll(min(left, 0.05))

    def fires(self) -> list[Received]:
        out = []
        for record, arrived in zip(self.records, self.arrivals, strict=True):
            command = decode_command(record.value)
            assert isinstance(command, FireTimer)
            out.append(Received(command, record.partition, record.key,
                                list(record.headers), arrived))  # fmt: skip
        return out


@pytest.fixture
async def commands(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[TopicReader]:
    reader = TopicReader(kafka_bootstrap, topics.commands)
    await reader._consumer.start()
    yield reader
    await reader._consumer.stop()


@pytest.fixture
async def dlq(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[TopicReader]:
    reader = TopicReader(kafka_bootstrap, topics.dlq)
    await reader._consumer.start()
    yield reader
    await reader._consumer.stop()


def new_run() -> uuid.UUID:
    return uuid.uuid4()
