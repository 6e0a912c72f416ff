"""Records as the api and executor write them, a projector run in-process, and row snapshots."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from aiokafka import TopicPartition
from psycopg.rows import dict_row

from journeys_contracts.commands import CommandBase, StartRun
from journeys_contracts.envelope import CloudEvent, Headers, event_id
from journeys_contracts.events import EventBase, PatientErased, erasure_event_id, type_of
from journeys_contracts.journeys import JourneyDefined
from journeys_contracts.keys import patient_key
from journeys_projector.app import Projector
from journeys_projector.settings import ProjectorSettings
from journeys_runtime.kafka import consumer, producer
from journeys_runtime.sealing import seal_event, seal_start_run
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, wrap
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS

T = TypeVar("T")
Record = tuple[str, bytes | None, bytes | None, Headers]  # topic, key, value, headers


def journey_record(topics: Topics, defined: JourneyDefined) -> Record:
    envelope = CloudEvent(str(uuid.uuid4()), defined.type, "/journeys/api",
                          str(defined.journey_id), defined.created_at)  # fmt: skip
    return (
        topics.definitions,
        str(defined.journey_id).encode(),
        defined.to_json(),
        envelope.headers(),
    )


def command_record(topics: Topics, command: CommandBase, patient_id: str) -> Record:
    kind = str(command.model_dump()["type"])
    envelope = CloudEvent(str(uuid.uuid4()), kind, "/journeys/api", str(command.run_id),
                          time_of(command))  # fmt: skip
    return topics.commands, _key(patient_id), command.to_json(), envelope.headers()


def event_record(topics: Topics, event: EventBase) -> Record:
    kind = str(event.model_dump()["type"])
    envelope = CloudEvent(event_id(event.run_id, event.seq), kind, "/journeys/executor",
                          str(event.run_id), event.occurred_at)  # fmt: skip
    return topics.events, _key(event.patient_id), event.to_json(), envelope.headers()


def erased_record(topics: Topics, erased: PatientErased, *, sealed: bool = False) -> Record:
    envelope = CloudEvent(
        erasure_event_id(erased.erasure_id), type_of(PatientErased), "/journeys/executor",
        str(erased.erasure_id), erased.erased_at,
    )  # fmt: skip
    topic = topics.sealed_events if sealed else topics.events
    return topic, erased.patient_key.encode(), erased.to_json(), envelope.headers()


def sealed_event_record(topics: Topics, event: EventBase, key: DataKey) -> Record:
    """The v2 twin of `event` as the executor writes it for a sealed run."""
    sealed = seal_event(event, key, key_of(event.patient_id))  # type: ignore[arg-type]
    v1_id = uuid.UUID(event_id(event.run_id, event.seq))
    envelope = CloudEvent(str(uuid.uuid5(v1_id, "sealed")), sealed.type, "/journeys/executor",
                          str(event.run_id), event.occurred_at)  # fmt: skip
    return topics.sealed_events, _key(event.patient_id), sealed.to_json(), envelope.headers()


def twin_record(topics: Topics, event: EventBase) -> Record:
    """The clear v1 copy of a sealed run's event (`sealedTwin` set)."""
    return event_record(topics, event.model_copy(update={"sealed_twin": True}))


def sealed_command_record(topics: Topics, command: StartRun, key: DataKey) -> Record:
    """`StartRunSealed` as the API writes it: the data key travels wrapped."""
    kek = KeyEncryptionKey("test-kek", bytes(32))
    patient = key_of(command.patient_id)
    sealed = seal_start_run(command, key, wrap(kek, patient, key), patient)
    return command_record(topics, sealed, command.patient_id)


def time_of(command: CommandBase) -> Any:
    data = command.model_dump()
    return data.get("requested_at") or data.get("fired_at") or data.get("at")


def key_of(patient_id: str) -> str:
    return patient_key(DEV_PATIENT_KEY_SECRET, patient_id)


def _key(patient_id: str) -> bytes:
    return patient_key(DEV_PATIENT_KEY_SECRET, patient_id).encode()


async def produce(bootstrap: str, records: list[Record]) -> None:
    p = producer(bootstrap)
    await p.start()
    try:
        sent = [await p.send(topic, value, key, headers=headers)
                for topic, key, value, headers in records]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await p.stop()


def projector_settings(
    bootstrap: str, database_url: str, topics: Topics, **overrides: Any
) -> ProjectorSettings:
    values: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database_url,
        "JOURNEYS_TOPIC_PREFIX": topics.prefix, "JOURNEYS_PARTITIONS": PARTITIONS,
        "ops_port": 0, "retry_max_seconds": 0.5, "poll_timeout_ms": 50,
    }  # fmt: skip
    return ProjectorSettings(**{**values, **overrides})


@asynccontextmanager
async def running(settings: ProjectorSettings) -> AsyncIterator[Projector]:
    projector = Projector(settings)
    await projector.start()
    try:
        yield projector
    finally:
        await projector.stop()


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    """Poll `check` until it returns something truthy; fail with the last answer at the deadline."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within}s; last answer {last!r}")


async def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return await cur.fetchall()


async def run_row(database_url: str, run_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await query(database_url, "SELECT * FROM runs WHERE run_id = %s", run_id)
    return rows[0] if rows else None


async def stored_offsets(database_url: str) -> dict[tuple[str, int], int]:
    rows = await query(database_url, "SELECT * FROM projector_offsets")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The next offset of every non-empty partition: what the projector must have stored."""
    c = consumer(bootstrap, None)
    await c.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await c.end_offsets(partitions)
        return {(tp.topic, tp.partition): n for tp, n in ends.items() if n > 0}
    finally:
        await c.stop()


async def caught_up(database_url: str, bootstrap: str, topics: Topics) -> None:
    """Wait until every record now on the projected topics has been projected."""
    wanted = await end_offsets(
        bootstrap, [topics.definitions, topics.commands, topics.events, topics.sealed_events]
    )

    async def done() -> bool:
        stored = await stored_offsets(database_url)
        return all(stored.get(tp, 0) >= n for tp, n in wanted.items())

    await eventually(done)


async def snapshot(database_url: str) -> dict[str, list[dict[str, Any]]]:
    return {
        table: await query(database_url, f"SELECT * FROM {table} ORDER BY {order}")
        for table, order in [
            ("journeys", "journey_id"), ("runs", "run_id"), ("run_events", "run_id, seq"),
            ("projector_offsets", "topic, partition"),
        ]
    }  # fmt: skip
