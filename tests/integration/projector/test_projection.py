"""Projecting: journeys, accepted runs and their events become the API's rows, exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import psycopg

from journeys_contracts.commands import CancelRun, FireTimer
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    caught_up,
    command_record,
    event_record,
    eventually,
    journey_record,
    produce,
    projector_settings,
    query,
    run_row,
    running,
    snapshot,
)  # fmt: skip
from tests.unit.projector.facts import (
    CONTEXT,
    DEFINITION,
    T0,
    Story,
    full_run,
    journey,
    start_run,
    waiting_run,
)


async def test_projects_a_journey_its_runs_and_their_events_into_rows(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    defined = journey()
    done = full_run(Story(journey_id=defined.journey_id, patient_id="patient-1"))
    waiting = waiting_run(Story(journey_id=defined.journey_id, patient_id="patient-2"))
    failed = Story(journey_id=defined.journey_id, patient_id="patient-3").started().failed("boom")
    cancelled = waiting_run(Story(journey_id=defined.journey_id, patient_id="patient-4"))
    cancelled.cancelled("wait")
    queued = Story(journey_id=defined.journey_id, patient_id="patient-5")
    stories = [done, waiting, failed, cancelled, queued]
    records = [journey_record(topics, defined)]
    for s in stories:
        records.append(command_record(topics, start_run(s), s.patient_id))
        records += [event_record(topics, e) for e in s.events]
    fire = FireTimer(run_id=waiting.run_id, timer_id=uuid.uuid4(), due_at=T0, fired_at=T0)
    records.append(command_record(topics, fire, waiting.patient_id))
    await produce(kafka_bootstrap, records)

    settings = projector_settings(kafka_bootstrap, read_models, topics)
    async with running(settings):
        await caught_up(read_models, kafka_bootstrap, topics)

    [journey_row] = await query(read_models, "SELECT * FROM journeys")
    assert journey_row == {
        "journey_id": defined.journey_id, "name": DEFINITION.name,
        "definition": DEFINITION.model_dump(), "created_at": T0,
    }  # fmt: skip
    expected = {
        done.run_id: ("completed", "checkin", None, None, len(done.events)),
        waiting.run_id: ("waiting_delay", "wait", waiting.events[-1].due_at, None, 8),  # type: ignore[union-attr]
        failed.run_id: ("failed", "welcome", None, "boom", 2),
        cancelled.run_id: ("cancelled", "wait", None, None, 9),
        queued.run_id: ("queued", None, None, None, 0),
    }
    for s in stories:
        row = await run_row(read_models, s.run_id)
        assert row is not None
        assert (row["status"], row["current_node_id"], row["wake_at"], row["error"],
                row["last_seq"]) == expected[s.run_id]  # fmt: skip
        assert (row["journey_id"], row["patient_id"], row["patient_context"]) == (
            defined.journey_id, s.patient_id, CONTEXT,
        )  # fmt: skip
        assert row["created_at"] == T0
        assert row["updated_at"] == (s.last_at if s.events else T0)
    events = await query(read_models, "SELECT * FROM run_events WHERE run_id = %s ORDER BY seq",
                         done.run_id)  # fmt: skip
    assert [e["seq"] for e in events] == list(range(1, len(done.events) + 1))
    assert [e["type"] for e in events] == [e.type for e in done.events]
    assert [e["data"] for e in events] == [json.loads(e.to_json()) for e in done.events]
    assert events[0]["occurred_at"] == done.events[0].occurred_at


async def test_each_committed_batch_notifies_journeys_projected(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    story = Story()
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as listener:
        await listener.execute("LISTEN journeys_projected")
        async with running(projector_settings(kafka_bootstrap, read_models, topics)):
            await produce(kafka_bootstrap, [command_record(topics, start_run(story), "p")])
            async with asyncio.timeout(15):
                async for _ in listener.notifies():
                    if await run_row(read_models, story.run_id) is not None:
                        break


async def test_cancel_and_other_commands_change_no_row(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    story = Story()
    cancel = CancelRun(run_id=story.run_id, requested_at=T0 + timedelta(seconds=5))
    await produce(kafka_bootstrap, [
        command_record(topics, start_run(story), story.patient_id),
        command_record(topics, cancel, story.patient_id),
    ])  # fmt: skip
    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)
    row = await run_row(read_models, story.run_id)
    assert row is not None
    assert (row["status"], row["updated_at"]) == ("queued", T0)
    rows = await snapshot(read_models)
    assert rows["run_events"] == []


async def test_reports_ready_once_assigned_and_postgres_answers(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    async with running(projector_settings(kafka_bootstrap, read_models, topics)) as projector:
        checks = await eventually(lambda: _all_ready(projector))
        assert checks == {"postgres": True, "kafka": True, "projecting": True}


async def _all_ready(projector: object) -> dict[str, bool] | None:
    checks: dict[str, bool] = await projector.ready()  # type: ignore[attr-defined]
    return checks if all(checks.values()) else None
