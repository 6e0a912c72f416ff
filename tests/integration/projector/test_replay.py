"""Replays change nothing: a restart resumes from the stored offsets, and order across topics
(StartRun after its events) never changes the rows."""

from __future__ import annotations

from typing import Any

import psycopg
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from journeys_runtime.kafka import consumer
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.integration.projector.helpers import (
    caught_up,
    command_record,
    event_record,
    eventually,
    journey_record,
    produce,
    projector_settings,
    run_row,
    running,
    snapshot,
)  # fmt: skip
from tests.unit.projector.facts import Story, full_run, journey, start_run, waiting_run


def _records_seen() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "journeys_projector_records":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def test_a_restart_under_a_new_group_id_resumes_at_the_stored_offsets_and_changes_nothing(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    defined = journey()
    story = full_run(Story(journey_id=defined.journey_id))
    await produce(kafka_bootstrap, [
        journey_record(topics, defined),
        command_record(topics, start_run(story), story.patient_id),
        *[event_record(topics, e) for e in story.events],
    ])  # fmt: skip
    async with running(projector_settings(kafka_bootstrap, read_models, topics, group_id="a")):
        await caught_up(read_models, kafka_bootstrap, topics)
    before = await snapshot(read_models)
    seen = _records_seen()

    later = Story(patient_id=story.patient_id)
    async with running(projector_settings(kafka_bootstrap, read_models, topics, group_id="b")):
        await produce(kafka_bootstrap, [command_record(topics, start_run(later), later.patient_id)])
        await caught_up(read_models, kafka_bootstrap, topics)
    after = await snapshot(read_models)

    assert _records_seen() - seen == 1, "the new group replayed records it should have skipped"
    assert after["journeys"] == before["journeys"]
    assert after["run_events"] == before["run_events"]
    assert [r for r in after["runs"] if r["run_id"] != later.run_id] == before["runs"]


async def test_rebuilds_emptied_read_models_although_kafka_holds_the_group_offsets(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    story = full_run()
    await produce(kafka_bootstrap, [
        command_record(topics, start_run(story), story.patient_id),
        *[event_record(topics, e) for e in story.events],
    ])  # fmt: skip
    settings = projector_settings(kafka_bootstrap, read_models, topics, group_id="g")
    async with running(settings):
        await caught_up(read_models, kafka_bootstrap, topics)
    built = await snapshot(read_models)
    assert await _kafka_committed(kafka_bootstrap, "g", topics) == {
        (r["topic"], r["partition"]): r["next_offset"] for r in built["projector_offsets"]
    }, "offsets are committed to Kafka too, for lag tools"

    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        await conn.execute("TRUNCATE journeys, runs, run_events, projector_offsets")
    async with running(settings):
        await caught_up(read_models, kafka_bootstrap, topics)
    assert await snapshot(read_models) == built


async def _kafka_committed(bootstrap: str, group: str, topics: Topics) -> dict[Any, int]:
    c = consumer(bootstrap, group)
    await c.start()
    try:
        found = {}
        for t in (topics.commands, topics.events):
            for p in range(PARTITIONS):
                offset = await c.committed(TopicPartition(t, p))
                if offset is not None:
                    found[(t, p)] = offset
        return found
    finally:
        await c.stop()


async def test_events_projected_before_their_start_run_leave_the_same_row(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    in_order = waiting_run(Story())
    reversed_ = waiting_run(Story(journey_id=in_order.journey_id, patient_id="patient-456"))
    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await produce(kafka_bootstrap, [
            command_record(topics, start_run(in_order), in_order.patient_id),
            *[event_record(topics, e) for e in in_order.events],
            *[event_record(topics, e) for e in reversed_.events],
        ])  # fmt: skip
        await eventually(lambda: _status(read_models, reversed_, "waiting_delay"))
        await produce(kafka_bootstrap, [
            command_record(topics, start_run(reversed_), reversed_.patient_id),
        ])  # fmt: skip
        await caught_up(read_models, kafka_bootstrap, topics)

    expected, actual = (
        await run_row(read_models, in_order.run_id),
        await run_row(read_models, reversed_.run_id),
    )
    assert expected is not None
    assert actual is not None
    assert _without_ids(actual) == _without_ids(expected)
    assert actual["status"] == "waiting_delay"


async def _status(database_url: str, story: Story, status: str) -> bool:
    row = await run_row(database_url, story.run_id)
    return row is not None and row["status"] == status


def _without_ids(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("run_id", "patient_id", "patient_key")}
