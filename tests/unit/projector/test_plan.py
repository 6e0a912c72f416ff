"""Planning: facts become idempotent row changes, coalesced per run in seq order."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from journeys_contracts import events as ev
from journeys_contracts.keys import patient_key
from journeys_projector.plan import ErasureRow, RunChange, RunRow, plan, run_fields
from tests.unit.projector.facts import (
    CONTEXT,
    DEFINITION,
    SECRET,
    T0,
    Story,
    full_run,
    journey,
    start_run,
)


def test_a_journey_becomes_a_row_with_its_definition_as_submitted() -> None:
    defined = journey()
    row = plan([defined], SECRET).journeys[defined.journey_id]
    assert (row.name, row.created_at) == (DEFINITION.name, T0)
    assert json.loads(row.definition) == DEFINITION.model_dump()


def test_the_first_definition_of_a_journey_wins() -> None:
    first = journey()
    again = first.model_copy(update={"created_at": T0 + timedelta(days=1)})
    assert plan([first, again], SECRET).journeys[first.journey_id].created_at == T0


def test_start_run_becomes_a_run_row_created_when_requested() -> None:
    story = Story()
    rows = plan([start_run(story)], SECRET)
    assert rows.runs == {
        story.run_id: RunRow(story.run_id, story.journey_id, story.patient_id, None,
                             json.dumps(CONTEXT, separators=(",", ":")),
                             patient_key(SECRET, story.patient_id), T0)
    }  # fmt: skip
    assert rows.events == {}
    assert rows.changes == {}


def test_run_started_makes_the_run_known_even_before_its_start_run() -> None:
    story = Story().started()
    row = plan(story.events, SECRET).runs[story.run_id]
    assert (row.journey_id, row.patient_id, row.created_at) == (
        story.journey_id, story.patient_id, story.events[0].occurred_at,
    )  # fmt: skip


@pytest.mark.parametrize("order", ["command first", "event first"])
def test_the_run_is_created_at_the_earlier_of_request_and_start(order: str) -> None:
    story = Story().started()
    facts: list[Any] = [start_run(story), story.events[0]]
    if order == "event first":
        facts.reverse()
    assert plan(facts, SECRET).runs[story.run_id].created_at == T0


def test_every_event_enters_the_timeline_as_camel_case_json() -> None:
    story = full_run()
    rows = plan(story.events, SECRET)
    assert sorted(seq for _, seq in rows.events) == list(range(1, len(story.events) + 1))
    first = rows.events[(story.run_id, 1)]
    assert first.type == "journeys.run.started.v1"
    data = json.loads(first.data)
    assert data["runId"] == str(story.run_id)
    assert data["startNodeId"] == "welcome"
    assert data["patientContext"] == CONTEXT


def test_a_duplicate_event_in_a_batch_is_planned_once() -> None:
    story = Story().started()
    assert len(plan([story.events[0], story.events[0]], SECRET).events) == 1


ENDED = {"wake_at": None, "waiting_event_type": None, "waiting_until": None}


def _event(story: Story, kind: type[ev.EventBase], **fields: Any) -> ev.Event:
    return story.emit(kind, **fields)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda s: s.started().events[-1], {"status": "in_progress", "current_node_id": "welcome"}),
        (lambda s: _event(s, ev.NodeEntered, node_id="n", node_type="MESSAGE"),
         {"status": "in_progress", "current_node_id": "n"}),
        (lambda s: s.delay("wait", 60).events[-1],
         {"status": "waiting_delay", "wake_at": T0 + timedelta(seconds=62)}),
        (lambda s: s.delay("wait").elapsed("wait").events[-1],
         {"status": "in_progress", "wake_at": None}),
        (lambda s: s.completed("n").events[-1], {"status": "completed", **ENDED}),
        (lambda s: s.failed("node x missing").events[-1],
         {"status": "failed", "error": "node x missing", **ENDED}),
        (lambda s: s.cancelled("n").events[-1], {"status": "cancelled", **ENDED}),
        (lambda s: s.message("n").events[-1], {}),
        (lambda s: s.condition("c", None).events[-1], {}),
    ],
)  # fmt: skip
def test_each_event_sets_its_run_fields(build: Any, expected: dict[str, Any]) -> None:
    assert run_fields(build(Story())) == expected


def test_a_full_run_coalesces_to_its_final_fields_each_with_the_seq_that_set_it() -> None:
    story = full_run()
    change = plan(story.events, SECRET).changes[story.run_id]
    last = len(story.events)
    assert (change.last_seq, change.updated_at) == (last, story.last_at)
    assert change.values == {"status": "completed", "current_node_id": "checkin", **ENDED}
    assert change.seqs == {"status": last, "current_node_id": last - 3, "wake_at": last,
                           "waiting_event_type": last, "waiting_until": last}  # fmt: skip


def test_events_coalesce_by_seq_whatever_their_order_in_the_batch() -> None:
    story = full_run()
    assert plan(list(reversed(story.events)), SECRET).changes == plan(story.events, SECRET).changes


def test_a_timeline_only_event_moves_last_seq_and_updated_at_only() -> None:
    story = Story().started().message("welcome")
    change = RunChange(story.run_id)
    change.apply(story.events[-1])
    assert (change.last_seq, change.updated_at, change.values) == (4, story.last_at, {})


def test_an_event_of_a_newer_type_enters_the_timeline_and_moves_last_seq_only() -> None:
    story = Story().started().delay("wait")
    data = {**json.loads(story.events[-1].to_json()), "type": "journeys.run.paused.v1",
            "seq": 4, "pausedBy": "care team 7"}  # fmt: skip
    paused = ev.UnknownEvent.model_validate(data)

    rows = plan([*story.events, paused], SECRET)

    row = rows.events[(story.run_id, 4)]
    assert (row.type, json.loads(row.data)) == ("journeys.run.paused.v1", data)
    change = rows.changes[story.run_id]
    assert (change.last_seq, change.updated_at) == (4, paused.occurred_at)
    assert change.values["status"] == "waiting_delay"
    assert change.seqs["status"] == 3


def test_runs_of_a_batch_are_planned_apart() -> None:
    a, b = full_run(), Story().started().failed("boom")
    changes = plan([*a.events, *b.events], SECRET).changes
    assert changes[a.run_id].values["status"] == "completed"
    assert changes[b.run_id].values["status"] == "failed"
    assert changes[b.run_id].values["error"] == "boom"


def test_an_empty_batch_plans_nothing() -> None:
    rows = plan([], SECRET)
    assert (rows.journeys, rows.runs, rows.events, rows.changes) == ({}, {}, {}, {})


def test_run_ids_stay_uuids() -> None:
    story = Story().started()
    assert isinstance(next(iter(plan(story.events, SECRET).changes)), uuid.UUID)


def test_patient_erased_becomes_an_erasure_of_its_runs_and_enters_no_timeline() -> None:
    story = full_run()
    erased = ev.PatientErased(erasure_id=uuid.uuid4(), patient_key="ab" * 32,
                              erased_at=story.last_at, run_ids=[story.run_id])  # fmt: skip
    rows = plan([*story.events, erased, erased], SECRET)
    assert list(rows.erasures.values()) == [
        ErasureRow(erased.erasure_id, "ab" * 32, story.last_at, (story.run_id,))
    ]
    assert len(rows.events) == len(story.events)
