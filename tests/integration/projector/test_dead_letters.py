"""Poison records go to the DLQ with the reason, count as projected, and never block the next."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg

from journeys_contracts.envelope import header
from journeys_runtime.kafka import consumer
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    Record,
    caught_up,
    command_record,
    end_offsets,
    event_record,
    journey_record,
    produce,
    projector_settings,
    query,
    run_row,
    running,
    stored_offsets,
)  # fmt: skip
from tests.unit.projector.facts import Story, journey, start_run


async def _dead_letters(bootstrap: str, topics: Topics, count: int) -> list[Any]:
    c = consumer(bootstrap, None, [topics.dlq])
    await c.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(15):
            while len(found) < count:
                for records in (await c.getmany(timeout_ms=200)).values():
                    found.extend(records)
        return found
    finally:
        await c.stop()


def _poisoned(record: Record, value: bytes) -> Record:
    topic, key, _, headers = record
    return topic, key, value, headers


async def test_a_poison_record_on_each_topic_is_dead_lettered_and_the_next_is_projected(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    defined, story = journey(), Story().started()
    good_journey = journey_record(topics, defined)
    good_command = command_record(topics, start_run(story), story.patient_id)
    good_event = event_record(topics, story.events[0])
    # A known type with a field of the wrong type; an unknown type would be skipped instead.
    malformed = json.loads(good_command[2] or b"")
    malformed["requestedAt"] = "yesterday"
    no_seq = json.loads(good_event[2] or b"")
    del no_seq["seq"]
    poison = [
        _poisoned(good_journey, b"\x00\xffnot json"),
        _poisoned(good_command, json.dumps(malformed).encode()),
        _poisoned(good_event, json.dumps(no_seq).encode()),
    ]
    await produce(kafka_bootstrap, [*poison, good_journey, good_command, good_event])

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)
        letters = await _dead_letters(kafka_bootstrap, topics, 3)

    by_source = {header(r.headers, "dlq_source_topic"): r for r in letters}
    assert set(by_source) == {topics.definitions, topics.commands, topics.events}
    for topic, key, value, headers in poison:
        letter = by_source[topic]
        assert (letter.key, letter.value) == (key, value)
        assert header(letter.headers, "dlq_stage") == "projector.decode"
        assert header(letter.headers, "dlq_source_offset") == "0"
        assert header(letter.headers, "ce_id") == header(headers, "ce_id")
    assert "requestedAt: datetime_from_date_parsing" in (
        header(by_source[topics.commands].headers, "dlq_error") or ""
    )
    assert "seq: missing" in (header(by_source[topics.events].headers, "dlq_error") or "")

    assert await query(read_models, "SELECT journey_id FROM journeys") == [
        {"journey_id": defined.journey_id}
    ]
    row = await run_row(read_models, story.run_id)
    assert row is not None
    assert (row["status"], row["last_seq"]) == ("in_progress", 1)
    assert await stored_offsets(read_models) == await end_offsets(
        kafka_bootstrap, [topics.definitions, topics.commands, topics.events]
    )


async def test_a_record_postgresql_refuses_is_dead_lettered_and_its_batch_still_projected(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        # Stands in for any data error PostgreSQL might raise on one record of a batch.
        await conn.execute("""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.type = 'journeys.message.requested.v1' THEN
                RAISE EXCEPTION 'refused' USING ERRCODE = '22023';
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON run_events
                FOR EACH ROW EXECUTE FUNCTION refuse();
        """)  # fmt: skip
    story = Story().started().message("welcome")
    other = Story(patient_id=story.patient_id, run_id=uuid.uuid4()).started()
    await produce(kafka_bootstrap, [
        *[event_record(topics, e) for e in story.events],
        *[event_record(topics, e) for e in other.events],
    ])  # fmt: skip

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)
        [letter] = await _dead_letters(kafka_bootstrap, topics, 1)

    assert header(letter.headers, "dlq_stage") == "projector.store"
    assert header(letter.headers, "dlq_error") == "InvalidParameterValue (SQLSTATE 22023)"
    assert header(letter.headers, "dlq_source_offset") == "2"
    timeline = await query(read_models, "SELECT seq FROM run_events WHERE run_id = %s ORDER BY seq",
                           story.run_id)  # fmt: skip
    assert [e["seq"] for e in timeline] == [1, 2, 4]
    row = await run_row(read_models, other.run_id)
    assert row is not None
    assert row["status"] == "in_progress"
