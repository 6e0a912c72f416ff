"""Commands injected straight onto the commands topic, and the events watched coming back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from journeys_bench.harness import PATIENT_KEY_SECRET
from journeys_contracts.commands import StartRun, StartRunSealed
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, Headers, header
from journeys_contracts.events import TERMINAL_EVENT_TYPES
from journeys_contracts.events_sealed import TERMINAL_SEALED_EVENT_TYPES, RunCompletedSealed
from journeys_contracts.keys import patient_key
from journeys_runtime import kafka
from journeys_runtime.keyring import Keyring
from journeys_runtime.sealing import seal_start_run
from journeys_runtime.shredding import DataKey

# The engine benchmarks' journey: message, condition, message, message, end.
FIVE_STEP: dict[str, Any] = {
    "name": "bench: five steps",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age"},
        {"id": "age", "type": "CONDITIONAL",
         "condition": {"field": "age", "operator": ">=", "value": 50},
         "on_true_next_node_id": "senior", "on_false_next_node_id": "general"},
        {"id": "senior", "type": "MESSAGE", "message": "Senior care", "next_node_id": "checkin"},
        {"id": "general", "type": "MESSAGE", "message": "General care",
         "next_node_id": "checkin"},
        {"id": "checkin", "type": "MESSAGE", "message": "How are you?", "next_node_id": None},
    ],
}  # fmt: skip
COMPLETED = "journeys.run.completed.v1"
ENDED = TERMINAL_EVENT_TYPES
# A sealed run's ending, on the sealed events topic.
COMPLETED_SEALED = RunCompletedSealed.model_fields["type"].default
ENDED_SEALED = TERMINAL_SEALED_EVENT_TYPES


@dataclass(frozen=True)
class Record:
    id: str  # what the benchmark follows it by: the run id, or the timer id
    key: bytes
    value: bytes
    headers: Headers


def start_runs(
    count: int,
    definition: dict[str, Any] = FIVE_STEP,
    first: int = 0,
    journey_id: uuid.UUID | None = None,
    keyring: Keyring | None = None,
    context: Callable[[int], dict[str, Any]] | None = None,
) -> list[Record]:
    """`count` StartRun commands for distinct patients (numbered from `first`), serialised
    ahead of the clock; one journey (`journey_id`, or a new one). `context`: patient n's
    context (default: an age).

    With a `keyring`, each is the `StartRunSealed` the API writes when it seals patient data:
    its patient's own new data key, wrapped under the keyring's active key-encryption key."""
    journey = JourneyDefinition.model_validate(definition)
    journey_id = journey_id or uuid.uuid4()
    now = datetime.now(UTC)
    records = []
    for i in range(first, first + count):
        run_id = uuid.uuid4()
        patient = f"bench-patient-{i}"
        command = StartRun(
            run_id=run_id, journey_id=journey_id, patient_id=patient,
            patient_context=context(i) if context else {"age": 30 + i % 50},
            definition=journey, requested_at=now,
        )  # fmt: skip
        key = patient_key(PATIENT_KEY_SECRET, patient)
        wire: StartRun | StartRunSealed = command
        if keyring is not None:
            data_key = DataKey.generate()
            wire = seal_start_run(command, data_key, keyring.wrap(key, data_key), key)
        ce = CloudEvent(str(uuid.uuid4()), wire.type, "/bench", str(run_id), now)
        records.append(Record(str(run_id), key.encode(), wire.to_json(), ce.headers()))
    return records


@contextlib.asynccontextmanager
async def producer(bootstrap: str, linger_ms: int = 5) -> AsyncIterator[AIOKafkaProducer]:
    p = kafka.producer(bootstrap, linger_ms=linger_ms)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def send(p: AIOKafkaProducer, topic: str, record: Record) -> asyncio.Future[Any]:
    """Queue one record; the returned future resolves when the broker has it."""
    fut: asyncio.Future[Any] = await p.send(topic, record.value, record.key,
                                            headers=record.headers)  # fmt: skip
    return fut


Seen = Callable[[TopicPartition, Any, float], None]


class Watch:
    """Reads a topic (read_committed, every partition, from the start) and hands each record
    and the monotonic time it arrived to `on_record`, until stopped."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, on_record: Seen) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed",
            enable_auto_commit=False, fetch_max_wait_ms=20, max_poll_records=5000,
        )  # fmt: skip
        self._topic, self._partitions, self._on_record = topic, partitions, on_record
        self._task: asyncio.Task[None] | None = None
        self.records = 0

    async def __aenter__(self) -> Watch:
        await self._consumer.start()
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for tp, records in batches.items():
                for r in records:
                    self.records += 1
                    self._on_record(tp, r, now)


async def count_records(bootstrap: str, topic: str, partitions: int, idle: float = 2.0) -> int:
    """How many committed records `topic` holds: read from the start to its end offsets (or
    until nothing has come for `idle` seconds: a transaction marker holds the last offset)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed",
        enable_auto_commit=False, max_poll_records=10_000,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count, quiet_since = 0, time.monotonic()
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batches = await consumer.getmany(timeout_ms=200)
            got = sum(len(records) for records in batches.values())
            count += got
            if got:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > idle:
                break
        return count
    finally:
        await consumer.stop()


def ce_type(record: Any) -> str | None:
    return header(record.headers, "ce_type")


def ce_subject(record: Any) -> str | None:
    return header(record.headers, "ce_subject")


async def wait_until(check: Callable[[], bool], patience: float, poll: float = 0.05) -> bool:
    """Whether `check()` came true within `patience` seconds."""
    deadline = time.monotonic() + patience
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll)
    return True
