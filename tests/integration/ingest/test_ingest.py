"""The ingest on a real Kafka and PostgreSQL: other teams' records (CloudEvents binary and
structured, plain JSON with a mapping) become the commands POST /events makes, with source
`topic:<topic>`; a poison record goes to the dead-letter topic with its reason and the rest go
on; a restart before the offsets are committed sends the same receipts again, never new ones."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from journeys_api import migrations
from journeys_api.ingest.app import Ingest
from journeys_api.ingest.settings import IngestSettings
from journeys_contracts.commands import RecordPatientEventSealed, decode_command, receipt_id
from journeys_contracts.keys import patient_key
from journeys_runtime.sealing import open_value
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.contract.test_example_producer import load_example
from tests.integration.api.helpers import data_key, read_topic

pytestmark = pytest.mark.integration

PATIENT = "patient-ingest-5521"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
MARKER = "marker-ingest-data-wombat"
Records = list[ConsumerRecord[bytes, bytes]]
Sent = tuple[bytes, list[tuple[str, bytes]]]


@pytest.fixture
def database(fresh_database: str) -> str:
    migrations.apply(fresh_database)  # the API's tables: the patients' data keys
    return fresh_database


@pytest.fixture
async def source_topics(kafka_bootstrap: str, topics: Topics) -> dict[str, str]:
    """Two topics of another team's, under this test's prefix."""
    names = {"ce": f"{topics.prefix}clinic.events", "json": f"{topics.prefix}crm.plain"}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names.values()])
    finally:
        await admin.close()
    return names


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, database: str, topics: Topics, source_topics: dict[str, str]
) -> Callable[..., IngestSettings]:
    group = f"{topics.prefix}ingest-{uuid.uuid4().hex[:6]}"

    def make(**overrides: Any) -> IngestSettings:
        values: dict[str, Any] = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": database,
            "JOURNEYS_TOPIC_PREFIX": topics.prefix, "JOURNEYS_PARTITIONS": PARTITIONS,
            "JOURNEYS_ENV": "development", "JOURNEYS_CREATE_TOPICS": False, "ops_port": 0,
            "group_id": group, "poll_timeout_ms": 50,
            "sources": [
                {"topic": source_topics["ce"], "format": "cloudevents", "patientId": "/patient/id"},
                {"topic": source_topics["json"], "format": "json", "eventId": "/ref",
                 "patientId": "/who", "type": "/kind", "occurredAt": "/at", "data": "/payload"},
            ],
        }  # fmt: skip
        return IngestSettings(**{**values, **overrides})

    return make


@asynccontextmanager
async def running(ingest: Ingest) -> AsyncIterator[Ingest]:
    await ingest.start()
    try:
        yield ingest
    finally:
        await ingest.stop()


async def produce(bootstrap: str, topic: str, *records: Sent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, headers=headers)
    finally:
        await producer.stop()


async def until(bootstrap: str, topic: str, count: int, within: float = 20.0) -> Records:
    """The records on `topic` once there are `count` of them (at least)."""
    async with asyncio.timeout(within):
        # Polling: the records come from another task's producer, with no event to wait on.
        while len(found := await read_topic(bootstrap, topic)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return found


def binary(event_id: str, data: dict[str, Any], **headers: bytes) -> Sent:
    attributes = {"ce_specversion": b"1.0", "ce_id": event_id.encode(),
                  "ce_type": b"appointment.booked", "ce_source": b"/clinic",
                  "content-type": b"application/json", **headers}  # fmt: skip
    return orjson.dumps(data), list(attributes.items())


def structured(event_id: str, *, content_type: bool) -> Sent:
    value = orjson.dumps({"specversion": "1.0", "id": event_id, "source": "/clinic",
                          "type": "intake_form.submitted", "time": "2026-12-03T09:00:00+01:00",
                          "data": {"patient": {"id": PATIENT}, "pain": 2}})  # fmt: skip
    return value, [("content-type", b"application/cloudevents+json")] if content_type else []


def commands(found: Records) -> Iterator[RecordPatientEventSealed]:
    for r in found:
        command = decode_command(r.value)
        assert isinstance(command, RecordPatientEventSealed)
        yield command


async def test_each_format_becomes_the_command_post_events_makes_and_poison_is_dead_lettered(
    kafka_bootstrap: str, topics: Topics, database: str, source_topics: dict[str, str],
    make_settings: Callable[..., IngestSettings],
) -> None:  # fmt: skip
    ce, plain = source_topics["ce"], source_topics["json"]
    example = load_example().patient_event_record(
        "ehr-7781", "appointment.booked", PATIENT, {"note": MARKER},
        occurred_at=datetime(2026, 12, 3, 10, tzinfo=UTC),
        source="/scheduling", patient_pointer="/patient/id",
    )  # fmt: skip
    await produce(
        kafka_bootstrap, ce,
        (example[2], example[1]),  # what the example producer other teams copy sends
        (b"not json {", [("ce_specversion", b"1.0"), ("ce_subject", PATIENT.encode())]),
        binary("ehr-no-patient", {"patient": {"name": MARKER}}),
        structured("form-1", content_type=True),
        structured("form-2", content_type=False),
    )  # fmt: skip
    await produce(kafka_bootstrap, plain, (orjson.dumps({
        "ref": 991, "who": PATIENT, "kind": "appointment.cancelled",
        "at": "2026-12-04T08:00:00Z", "payload": {"reason": MARKER},
    }), []))  # fmt: skip

    async with running(Ingest(make_settings())):
        found = await until(kafka_bootstrap, topics.commands, 4)
        dead = await until(kafka_bootstrap, topics.dlq, 2)

    by_id = {c.event_id: c for c in commands(found)}
    assert sorted(by_id) == ["991", "ehr-7781", "form-1", "form-2"]
    assert {c.source for c in by_id.values()} == {f"topic:{ce}", f"topic:{plain}"}
    assert by_id["991"].source == f"topic:{plain}"
    for record, command in zip(found, commands(found), strict=True):
        assert record.key == KEY.encode()
        assert PATIENT.encode() not in record.value
        assert MARKER.encode() not in record.value
        assert command.receipt_id == receipt_id(KEY, command.event_id)  # as POST /events
    key = data_key(database, KEY)
    booked, cancelled = by_id["ehr-7781"], by_id["991"]
    assert open_value(key, KEY, "patientId", booked.patient_id) == PATIENT
    assert open_value(key, KEY, "eventData", booked.event_data) == {
        "note": MARKER,
        "patient": {"id": PATIENT},
    }
    assert booked.occurred_at.isoformat() == "2026-12-03T10:00:00+00:00"
    assert cancelled.event_type == "appointment.cancelled"
    assert open_value(key, KEY, "eventData", cancelled.event_data) == {"reason": MARKER}
    assert by_id["form-1"].occurred_at.isoformat() == "2026-12-03T08:00:00+00:00"

    reasons = {}
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq_source_topic"] == ce.encode()
        assert "ce_subject" not in headers  # a header that may name the patient stays behind
        assert all(PATIENT.encode() not in v and MARKER.encode() not in v for v in headers.values())
        assert record.key is None
        reasons[headers["dlq_stage"].decode()] = headers["dlq_error"].decode()
    assert reasons == {
        "ingest.decode": "the value is not JSON",
        "ingest.invalid": "patientId at value /patient/id: missing",
    }


class CrashesBeforeCommit(Ingest):
    """Sends every command, then dies before committing the offsets (as a SIGKILL would)."""

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None


async def test_a_restart_before_the_commit_sends_the_same_receipts_again_and_nothing_else(
    kafka_bootstrap: str, topics: Topics, source_topics: dict[str, str],
    make_settings: Callable[..., IngestSettings],
) -> None:  # fmt: skip
    ce = source_topics["ce"]
    patient = {"patient": {"id": PATIENT}}
    await produce(kafka_bootstrap, ce, *(binary(f"e-{i}", patient) for i in range(4)))
    async with running(CrashesBeforeCommit(make_settings())):
        first = await until(kafka_bootstrap, topics.commands, 4)
    async with running(Ingest(make_settings())):  # reads the four again, then commits
        again = await until(kafka_bootstrap, topics.commands, 8)
        await produce(kafka_bootstrap, ce, binary("e-4", patient))
        await until(kafka_bootstrap, topics.commands, 9)
    async with running(Ingest(make_settings())):  # from the committed offsets: only e-5
        await produce(kafka_bootstrap, ce, binary("e-5", patient))
        final = await until(kafka_bootstrap, topics.commands, 10)
        await asyncio.sleep(0.5)
        final = await read_topic(kafka_bootstrap, topics.commands)

    receipts = [c.receipt_id for c in commands(final)]
    expected = [receipt_id(KEY, f"e-{i}") for i in range(6)]
    assert len(first) == 4
    assert sorted(c.receipt_id for c in commands(again)) == sorted(expected[:4] * 2)
    # Every receipt the executor takes once; none new for an event sent again.
    assert sorted(receipts) == sorted(expected[:4] * 2 + expected[4:])


async def test_a_source_topic_that_does_not_exist_yet_neither_blocks_the_start_nor_readiness(
    make_settings: Callable[..., IngestSettings], topics: Topics
) -> None:
    missing = [{"topic": f"{topics.prefix}not.yet.created", "patientId": "/patientId"}]
    ingest = Ingest(make_settings(sources=missing))
    async with asyncio.timeout(15):
        await ingest.start()
    try:
        async with asyncio.timeout(15):
            while not (await ingest.ready())["kafka"]:  # noqa: ASYNC110 - the group's join
                await asyncio.sleep(0.1)
        assert ingest.looping
    finally:
        await ingest.stop()
