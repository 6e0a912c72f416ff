"""Records written by the next version (a rolling upgrade): today's projector takes them all.

Added fields are ignored. An event of an added type that carries the fields every event
carries enters its run's timeline as received, so the run's seq stays gapless; other records
of an added type are skipped. Both are counted, their offsets are stored like any other, nothing
of it is dead-lettered, and nothing around it is lost.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import REGISTRY

from journeys_contracts import events as ev
from journeys_contracts.envelope import CloudEvent
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    Record,
    command_record,
    end_offsets,
    event_record,
    eventually,
    journey_record,
    produce,
    projector_settings,
    query,
    run_row,
    running,
    stored_offsets,
)  # fmt: skip
from tests.unit.projector.facts import T0, Story, journey, start_run, waiting_run

UNKNOWN = "journeys_projector_records_unknown_total"


def with_new_fields(record: Record) -> Record:
    """The record as the next version writes it: a new field on the record, on its definition
    and on every node of it."""
    topic, key, value, headers = record
    data: dict[str, Any] = {**json.loads(value or b""), "tenantId": "t-1"}
    if "definition" in data:
        definition = data["definition"]
        nodes = [{**node, "label": "shown in the console"} for node in definition["nodes"]]
        data["definition"] = {**definition, "owner": "care team 7", "nodes": nodes}
    return topic, key, json.dumps(data).encode(), headers


def of_new_type(record: Record, record_type: str, **fields: Any) -> Record:
    """A record of a type the next version added, on the same topic, key and envelope."""
    topic, key, value, _ = record
    data = {**json.loads(value or b""), "type": record_type, **fields}
    envelope = CloudEvent(f"{record_type}:1", record_type, "/journeys/next", "subject", T0)
    return topic, key, json.dumps(data).encode(), envelope.headers()


def unknown_count(source: str) -> float:
    """Records of unknown types counted so far on one topic, whatever their type."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == UNKNOWN and sample.labels.get("topic") == source
    )


def without(record: Record, *names: str) -> Record:
    """The record with some of its fields removed."""
    topic, key, value, headers = record
    data = {k: v for k, v in json.loads(value or b"").items() if k not in names}
    return topic, key, json.dumps(data).encode(), headers


def renumbered(event: ev.Event, seq: int) -> ev.Event:
    return event.model_copy(update={"seq": seq})


async def test_records_of_the_next_version_are_projected_or_skipped_and_never_lost(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    defined = journey()
    story = waiting_run(Story(journey_id=defined.journey_id, patient_id="patient-next"))
    story.elapsed("wait")
    # The next version emits an event of a new type between the delay's start and its end,
    # and another after the end: seqs 1..n are today's waiting run, n+1 is new, n+2 is the
    # delay's end, n+3 is new again.
    *waiting, ended = story.events
    n = len(waiting)
    first, *middle, last = [event_record(topics, e) for e in waiting]
    escalated = of_new_type(last, "journeys.run.escalated.v1", seq=n + 1, escalatedTo="nurse")
    elapsed = event_record(topics, renumbered(ended, n + 2))
    paused = of_new_type(last, "journeys.run.paused.v1", seq=n + 3, pausedBy="care team 7")
    headless = without(
        of_new_type(last, "journeys.patient.merged.v1"), "runId", "seq", "occurredAt"
    )
    command = command_record(topics, start_run(story), story.patient_id)
    records = [
        with_new_fields(journey_record(topics, defined)),
        of_new_type(journey_record(topics, journey()), "journeys.journey.retired.v1"),
        with_new_fields(command),
        of_new_type(command, "journeys.command.pause_run.v1"),
        with_new_fields(first),
        *(with_new_fields(r) for r in middle),
        with_new_fields(last),
        escalated,
        with_new_fields(elapsed),
        paused,
        headless,
    ]
    before = {s: unknown_count(s) for s in ("definitions", "commands", "events")}
    await produce(kafka_bootstrap, records)

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        wanted = await end_offsets(
            kafka_bootstrap, [topics.definitions, topics.commands, topics.events]
        )

        async def all_stored() -> bool:
            stored = await stored_offsets(read_models)
            return all(stored.get(tp, 0) >= n for tp, n in wanted.items())

        await eventually(all_stored)

    assert await end_offsets(kafka_bootstrap, [topics.dlq]) == {}, "nothing dead-lettered"
    journeys = await query(read_models, "SELECT journey_id, definition FROM journeys")
    assert [j["journey_id"] for j in journeys] == [defined.journey_id]
    assert [n["id"] for n in journeys[0]["definition"]["nodes"]] == [
        n.id for n in defined.definition.nodes
    ]
    timeline = await query(
        read_models,
        "SELECT seq, type, data FROM run_events WHERE run_id = %s ORDER BY seq",
        story.run_id,
    )
    assert [e["seq"] for e in timeline] == list(range(1, n + 4)), "no seq gap"
    new = {e["seq"]: (e["type"], e["data"]) for e in timeline if e["seq"] in (n + 1, n + 3)}
    assert new == {
        n + 1: ("journeys.run.escalated.v1", json.loads(escalated[2] or b"")),
        n + 3: ("journeys.run.paused.v1", json.loads(paused[2] or b"")),
    }, "events of a new type are kept as received"
    run = await run_row(read_models, story.run_id)
    assert run is not None
    assert run["last_seq"] == n + 3
    # What a new type means is for the version that knows it: the run stays as the known
    # events left it.
    assert (run["status"], run["current_node_id"], run["wake_at"]) == ("in_progress", "wait", None)
    after = {s: unknown_count(s) for s in before}
    assert {s: after[s] - before[s] for s in before} == {
        "definitions": 1,
        "commands": 1,
        "events": 3,
    }
