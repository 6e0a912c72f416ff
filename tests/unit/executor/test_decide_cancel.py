"""CancelRun: an active run stops, taking its pending timer with it; an ended run refuses."""

from __future__ import annotations

import pytest

from journeys_contracts import events as ev
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    cancel,
    delay,
    given,
    journey,
    kinds,
    message,
    rejected,
)


def test_cancel_while_awaiting_delivery_cancels_the_run_at_its_node() -> None:
    run = given(MSG_DELAY_MSG)
    assert kinds(run.when(cancel())) == ["run.cancelled"]
    cancelled = run.last(ev.RunCancelled)
    assert cancelled.node_id == "a"
    assert cancelled.cancelled_timer_id is None
    assert run.s.status == "cancelled"
    assert run.s.pending_message is None


def test_cancel_during_a_delay_carries_the_cancelled_timer_id() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    timer = run.s.pending_timer
    assert timer is not None
    run.when(cancel("opted out"))
    cancelled = run.last(ev.RunCancelled)
    assert cancelled.cancelled_timer_id == timer.timer_id
    assert cancelled.node_id == "wait"
    assert cancelled.reason == "opted out"
    assert run.s.pending_timer is None
    assert run.s.status == "cancelled"


def test_cancel_without_a_reason_records_none() -> None:
    run = given(MSG_DELAY_MSG)
    run.when(cancel())
    assert run.last(ev.RunCancelled).reason is None


def test_cancel_continues_the_runs_seq() -> None:
    run = given(MSG_DELAY_MSG)
    run.when(cancel())
    assert [e.seq for e in run.events] == [1, 2, 3, 4]


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
def test_rejects_cancel_after_the_run_ended(end: str) -> None:
    run = given(journey(message("a")))
    if end == "cancelled":
        run.when(cancel())
    elif end == "failed":
        run.fail()
    else:
        run.deliver()
    assert run.s.status == end
    reason = rejected(run.when(cancel()))
    assert reason == f"Expected run to be active to cancel it, but it is {end}"
    assert sum(isinstance(e, ev.RunCancelled) for e in run.events) == (end == "cancelled")


def test_rejects_cancel_after_completion_through_a_delay() -> None:
    run = given(journey(delay("w", 5)))
    run.fire()
    assert run.s.status == "completed"
    rejected(run.when(cancel()))
