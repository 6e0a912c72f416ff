"""The SQL of a plan: replaying, splitting or reordering batches never changes the rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from journeys_projector import store
from journeys_projector.decode import Fact
from journeys_projector.plan import Plan, plan
from tests.integration.projector.helpers import query, run_row, snapshot
from tests.unit.projector.facts import SECRET, Story, full_run, journey, start_run, waiting_run

OFFSETS = {("events", 0): 1}


async def _write(database_url: str, facts: Sequence[Fact], offsets: Any = OFFSETS) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        conn.transaction(),
    ):
        await store.write(conn, plan(list(facts), SECRET), offsets)


def _story_row(row: dict[str, Any] | None) -> dict[str, Any]:
    assert row is not None
    return {k: v for k, v in row.items() if k != "run_id"}


async def test_a_replayed_batch_changes_nothing(read_models: str) -> None:
    defined = journey()
    story = full_run(Story(journey_id=defined.journey_id))
    facts = [defined, start_run(story), *story.events]
    await _write(read_models, facts)
    once = await snapshot(read_models)
    await _write(read_models, facts)
    assert await snapshot(read_models) == once


@pytest.mark.parametrize("overlap", [0, 3])
async def test_any_split_of_a_run_into_batches_leaves_the_row_of_one_event_at_a_time(
    read_models: str, overlap: int
) -> None:
    journey_id = uuid.uuid4()

    def told() -> Story:
        story = waiting_run(Story(journey_id=journey_id))
        return story.elapsed("wait").message("checkin").cancelled("checkin")

    reference = told()
    for event in [start_run(reference), *reference.events]:
        await _write(read_models, [event])
    expected = _story_row(await run_row(read_models, reference.run_id))

    for split in range(len(reference.events) + 1):
        story = told()
        # A batch replayed in part after a crash overlaps the one before it by `overlap`.
        await _write(read_models, [start_run(story), *story.events[: split + overlap]])
        await _write(read_models, story.events[split:])
        assert _story_row(await run_row(read_models, story.run_id)) == expected, split


async def test_a_stale_batch_committed_late_changes_nothing(read_models: str) -> None:
    """A replica that lost its partitions mid-batch may commit after the new owner."""
    story = full_run()
    await _write(read_models, [start_run(story), *story.events])
    latest = await snapshot(read_models)
    await _write(read_models, story.events[2:8], {("events", 0): 0})
    assert await snapshot(read_models) == latest


async def test_a_start_run_projected_last_neither_requeues_the_run_nor_moves_its_update(
    read_models: str,
) -> None:
    story = waiting_run(Story())
    await _write(read_models, story.events)
    before = await run_row(read_models, story.run_id)
    await _write(read_models, [start_run(story)])
    after = await run_row(read_models, story.run_id)
    assert before is not None
    assert after is not None
    assert (after["status"], after["updated_at"]) == ("waiting_delay", story.last_at)
    assert after["created_at"] == story.requested_at < before["created_at"]


async def test_stored_offsets_never_move_back(read_models: str) -> None:
    await _write(read_models, [], {("events", 0): 10, ("events", 1): 3})
    await _write(read_models, [], {("events", 0): 7, ("events", 1): 4})
    async with await psycopg.AsyncConnection.connect(read_models) as conn:
        stored = await store.stored_offsets(conn, [("events", 0), ("events", 1), ("events", 2)])
    assert stored == {("events", 0): 10, ("events", 1): 4}


async def test_an_empty_plan_still_records_its_offsets(read_models: str) -> None:
    async with (
        await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn,
        conn.transaction(),
    ):
        await store.write(conn, Plan(SECRET), {("commands", 2): 42})
    assert await query(read_models, "SELECT * FROM projector_offsets") == [
        {"topic": "commands", "partition": 2, "next_offset": 42}
    ]
