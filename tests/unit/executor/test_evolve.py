"""evolve and fold: one event at a time rebuilds a run's state; an impossible log is refused."""

from __future__ import annotations

import pytest

from journeys_contracts import events as ev
from journeys_executor.core import evolve, fold
from journeys_executor.core.evolve import EvolveError
from tests.unit.executor.helpers import MSG_DELAY_MSG, WEEKLY, cancel, given


def full_run() -> list[ev.Event]:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    run.fire()
    run.deliver()
    return run.events


def test_replaying_the_events_rebuilds_the_state() -> None:
    run = given(WEEKLY, {"id": "p-1", "opted_in": True})
    run.deliver()
    run.fire()
    run.when(cancel())
    assert fold(None, run.events) == run.state


def test_replaying_the_events_as_decoded_from_the_wire_rebuilds_the_state() -> None:
    run = given(MSG_DELAY_MSG, {"id": "p-1", "age": 70.5, "tags": ["a"], "nested": {"x": None}})
    run.deliver()
    decoded = [ev.decode_event(e.to_json()) for e in run.events]
    assert decoded == run.events
    assert fold(None, decoded) == run.state


def test_every_prefix_of_the_log_folds_to_the_state_at_that_point() -> None:
    events = full_run()
    state = None
    for i, event in enumerate(events):
        state = evolve(state, event)
        assert state == fold(None, events[: i + 1])
        assert state.seq == event.seq
        assert state.updated_at == event.occurred_at


def test_fold_of_no_events_is_no_run() -> None:
    assert fold(None, []) is None


def test_run_started_opens_the_run_in_progress_at_no_node() -> None:
    state = evolve(None, full_run()[0])
    assert (state.status, state.current_node_id, state.seq) == ("in_progress", None, 1)
    assert state.pending_message is None
    assert state.pending_timer is None


def test_status_follows_the_log_through_a_whole_run() -> None:
    statuses = []
    state = None
    for event in full_run():
        state = evolve(state, event)
        statuses.append((event.type.split(".")[-2], state.status))
    assert statuses == [
        ("started", "in_progress"), ("entered", "in_progress"), ("requested", "in_progress"),
        ("sent", "in_progress"), ("entered", "in_progress"), ("started", "waiting_delay"),
        ("elapsed", "in_progress"), ("entered", "in_progress"), ("requested", "in_progress"),
        ("sent", "in_progress"), ("completed", "completed"),
    ]  # fmt: skip


def test_refuses_an_event_before_run_started() -> None:
    with pytest.raises(EvolveError, match=r"^Expected run.started first"):
        evolve(None, full_run()[1])


def test_refuses_a_second_run_started() -> None:
    events = full_run()
    with pytest.raises(EvolveError, match=r"^Expected no state before run.started"):
        evolve(fold(None, events[:2]), events[0])


@pytest.mark.parametrize("skip", [0, 2], ids=["repeated", "gap"])
def test_refuses_a_seq_that_does_not_follow_on(skip: int) -> None:
    events = full_run()
    state = fold(None, events[:3])
    with pytest.raises(EvolveError, match=r"^Expected seq 4, but got"):
        evolve(state, events[2 + skip] if skip else events[2])


def test_evolve_never_changes_the_state_it_is_given() -> None:
    events = full_run()
    state = fold(None, events[:5])
    assert state is not None
    before = state.model_dump()
    evolve(state, events[5])
    assert state.model_dump() == before
