"""DELAY and FireTimer: due at entry plus duration; early, stale or repeated timers rejected."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from journeys_contracts import events as ev
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    T0,
    WEEKLY,
    cancel,
    delay,
    delivery,
    given,
    journey,
    kinds,
    message,
    rejected,
    timer_fired,
)


def test_delay_fires_timer_due_at_entry_plus_duration() -> None:
    run = given(MSG_DELAY_MSG)
    entered_at = T0 + timedelta(seconds=5)
    run.when(delivery(run.s), entered_at)
    started = run.last(ev.DelayStarted)
    assert (started.node_id, started.duration_seconds) == ("wait", 90)
    assert started.due_at == entered_at + timedelta(seconds=90)
    assert run.s.status == "waiting_delay"
    assert run.s.pending_timer is not None
    assert run.s.pending_timer.timer_id == started.timer_id
    assert run.s.pending_timer.due_at == started.due_at


def test_a_fractional_delay_is_due_to_the_microsecond() -> None:
    run = given(journey(delay("w", 0.25)))
    assert run.last(ev.DelayStarted).due_at == T0 + timedelta(milliseconds=250)


def test_a_delay_of_months_is_due_months_later() -> None:
    run = given(journey(delay("w", 90 * 86400)))
    assert run.last(ev.DelayStarted).due_at == T0 + timedelta(days=90)


def test_a_zero_second_delay_still_waits_for_its_timer() -> None:
    run = given(journey(delay("w", 0, "m"), message("m")))
    assert run.s.status == "waiting_delay"
    assert run.last(ev.DelayStarted).due_at == T0
    assert kinds(run.fire()) == ["delay.elapsed", "node.entered", "message.requested"]


def test_timer_fired_exactly_at_its_due_time_elapses_the_delay_and_continues() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    assert kinds(run.fire()) == ["delay.elapsed", "node.entered", "message.requested"]
    assert run.s.status == "in_progress"
    assert run.s.pending_timer is None
    assert run.s.current_node_id == "b"


def test_timer_fired_late_elapses_the_delay_recording_when_it_was_due_and_when_it_fired() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    timer = run.s.pending_timer
    assert timer is not None
    run.fire(late=timedelta(hours=3))
    elapsed = run.last(ev.DelayElapsed)
    assert (elapsed.node_id, elapsed.timer_id) == ("wait", timer.timer_id)
    assert elapsed.due_at == timer.due_at
    assert elapsed.fired_at == timer.due_at + timedelta(hours=3)


def test_a_delay_leading_nowhere_completes_the_run_once_it_elapses() -> None:
    run = given(journey(delay("w", 60)))
    assert kinds(run.fire()) == ["delay.elapsed", "run.completed"]
    assert run.last(ev.RunCompleted).last_node_id == "w"


def test_rejects_a_timer_fired_before_its_due_time() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    reason = rejected(run.fire(late=-timedelta(microseconds=1)))
    assert reason.startswith("Expected timer to fire at or after")
    assert run.s.status == "waiting_delay"


def test_an_early_timer_is_rejected_even_when_decided_after_its_due_time() -> None:
    """Whether a delay fired early is a fact about the timer, not about when we look."""
    run = given(MSG_DELAY_MSG)
    run.deliver()
    early = timer_fired(run.s, late=-timedelta(seconds=1))
    rejected(run.when(early, early.due_at + timedelta(hours=1)))


@pytest.mark.parametrize("timer_id", [uuid.uuid4(), uuid.UUID(int=0)], ids=["random", "nil"])
def test_rejects_a_timer_the_run_does_not_wait_on(timer_id: uuid.UUID) -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    waited = run.s.pending_timer
    assert waited is not None
    unknown = timer_fired(run.s).model_copy(update={"timer_id": timer_id})
    reason = rejected(run.when(unknown))
    assert reason == (
        f"Expected run to wait on timer {timer_id}, but it waits on timer {waited.timer_id}"
    )


def test_rejects_a_timer_while_the_run_awaits_a_message() -> None:
    run = given(journey(message("a", "w"), delay("w", 60)))
    stray = timer_fired(given(journey(delay("w", 60))).s)
    assert rejected(run.when(stray)).endswith("but it waits on no timer (in_progress)")


def test_rejects_a_timer_fired_twice() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    once = timer_fired(run.s)
    run.when(once)
    assert rejected(run.when(once)).endswith("but it waits on no timer (in_progress)")


def test_rejects_a_stale_timer_from_an_earlier_pass_through_a_delay_loop() -> None:
    run = given(WEEKLY, {"id": "p-1", "opted_in": True})
    run.deliver()
    first = timer_fired(run.s)
    run.fire()
    run.deliver()
    assert run.s.pending_timer is not None
    assert run.s.pending_timer.timer_id != first.timer_id
    rejected(run.when(first))
    assert run.s.status == "waiting_delay"


def test_rejects_timer_fired_after_run_cancelled() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    timer = timer_fired(run.s)
    run.when(cancel())
    assert rejected(run.when(timer)).endswith("but it waits on no timer (cancelled)")


def test_rejects_timer_fired_after_run_completed() -> None:
    run = given(journey(delay("w", 60)))
    timer = timer_fired(run.s)
    run.when(timer)
    assert rejected(run.when(timer)).endswith("but it waits on no timer (completed)")
