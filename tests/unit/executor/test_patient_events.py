"""Patient events in the pure core: waits, look-back, triggers, re-entry, exits, repeats."""

from __future__ import annotations

import uuid

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.core import EventPolicy, Rejection, triggered_run_id
from tests.unit.executor.helpers import PATIENT, conditional, delay, message
from tests.unit.executor.patients import (
    PATIENT_KEY,
    Partition,
    events_journey,
    wait_for,
)

DAY = 86400.0
# Remind, wait two days for the intake form (with a day of look-back), thank or remind again.
INTAKE = events_journey(
    message("remind", "form"),
    wait_for("form", "intake_form.submitted", 2 * DAY, "score", "again", lookback=DAY),
    conditional("score", ("events.form.score", ">", 5), "thanks", None),
    message("thanks"),
    message("again"),
)


def test_an_event_during_the_wait_resumes_the_run_on_its_branch_with_its_data() -> None:
    p = Partition()
    run = p.start(INTAKE)
    assert p.kinds(run)[-1] == "event.waiting"
    waiting = p.log[run][-1]
    assert isinstance(waiting, ev.EventWaiting)
    assert p.runs[run].status == "waiting_event"
    p.later(3600)
    assert p.event("ehr-1", "intake_form.submitted", {"score": 7})
    assert p.kinds(run)[-7:] == [
        "event.matched", "node.entered", "condition.evaluated", "node.entered",
        "message.requested", "message.sent", "run.completed",
    ]  # fmt: skip
    matched = next(e for e in p.log[run] if isinstance(e, ev.EventMatched))
    assert matched.cancelled_timer_id == waiting.timer_id
    assert matched.lookback is False
    assert matched.event_id == "ehr-1"
    assert matched.event_data == {"score": 7}
    assert p.runs[run].patient_context["events"] == {"form": {"score": 7}}
    assert p.runs[run].status == "completed"
    # Its timer is stale now: firing it changes nothing.
    stale = cmd.FireTimer(run_id=run, timer_id=waiting.timer_id, due_at=waiting.due_at,
                          fired_at=waiting.due_at)  # fmt: skip
    assert isinstance(p.apply(stale), Rejection)


def test_no_event_before_the_timeout_takes_its_branch_and_a_late_event_does_nothing() -> None:
    p = Partition()
    run = p.start(INTAKE)
    p.fire(run)
    timed_out = p.log[run][p.kinds(run).index("event.timed_out")]
    assert isinstance(timed_out, ev.EventTimedOut)
    assert timed_out.fired_at >= timed_out.due_at
    assert p.runs[run].status == "completed"
    before = len(p.log[run])
    assert p.event("ehr-2", "intake_form.submitted", {"score": 9})
    assert len(p.log[run]) == before


def test_an_event_that_came_before_the_wait_within_its_look_back_meets_it_at_once() -> None:
    p = Partition()
    assert p.event("ehr-3", "intake_form.submitted", {"score": 8})
    p.later(DAY - 1)
    run = p.start(INTAKE)
    matched = next(e for e in p.log[run] if isinstance(e, ev.EventMatched))
    assert matched.lookback is True
    assert matched.cancelled_timer_id is None
    assert "event.waiting" not in p.kinds(run)
    assert p.runs[run].status == "completed"


def test_an_event_older_than_the_look_back_does_not_count() -> None:
    p = Partition()
    assert p.event("ehr-4", "intake_form.submitted", {"score": 8})
    p.later(DAY + 1)
    run = p.start(INTAKE)
    assert p.runs[run].status == "waiting_event"


def test_one_event_never_meets_two_waits_of_a_run() -> None:
    looping = events_journey(
        wait_for("w", "reply", DAY, "ack", None, lookback=DAY), message("ack", "w")
    )
    p = Partition()
    run = p.start(looping)
    assert p.event("r-1", "reply")
    assert p.kinds(run).count("event.matched") == 1
    assert p.runs[run].status == "waiting_event"
    assert p.event("r-2", "reply")
    assert p.kinds(run).count("event.matched") == 2


def test_a_wait_with_a_condition_ignores_events_it_does_not_hold_for() -> None:
    picky = events_journey(
        wait_for("w", "lab.result", DAY, "done", None, when=("event.data.kind", "==", "hba1c")),
        message("done"),
    )
    p = Partition()
    run = p.start(picky)
    assert p.event("lab-1", "lab.result", {"kind": "ldl"})
    assert p.runs[run].status == "waiting_event"
    assert p.event("lab-2", "lab.result", {"kind": "hba1c"})
    assert p.runs[run].status == "completed"


def test_the_same_event_id_twice_has_effect_once() -> None:
    looping = events_journey(wait_for("w", "reply", DAY, "ack", None), message("ack", "w"))
    p = Partition()
    run = p.start(looping)
    assert p.event("r-1", "reply")
    assert not p.event("r-1", "reply")
    assert p.kinds(run).count("event.matched") == 1


def test_an_event_id_is_forgotten_after_the_window_and_beyond_the_count() -> None:
    p = Partition(policy=EventPolicy(dedup_seconds=60, dedup_max=2, keep_max=1))
    assert p.event("a", "x")
    assert not p.event("a", "x")
    p.later(61)
    assert p.event("a", "x")  # the window passed
    assert p.event("b", "x")
    assert p.event("c", "x")
    assert p.event("a", "x")  # pushed out by b and c
    assert p.patient is not None
    assert len(p.patient.seen) == 2
    assert len(p.patient.recent) == 1


TRIGGERED = events_journey(
    message("hello", "wait"), wait_for("wait", "appointment.attended", 7 * DAY, None, None),
    triggers=[{"event": "appointment.booked", "when": {"field": "event.data.clinic",
                                                        "operator": "==", "value": "c-1"}}],
    exit_on=[{"event": "appointment.cancelled"}],
)  # fmt: skip
JOURNEY = uuid.UUID("33333333-3333-4333-8333-333333333333")


def test_a_trigger_starts_one_run_per_event_with_the_event_in_its_context() -> None:
    p = Partition({JOURNEY: TRIGGERED})
    assert p.event("b-1", "appointment.booked", {"clinic": "c-1", "slot": "9:00"})
    run = triggered_run_id(JOURNEY, PATIENT_KEY, "b-1")
    assert p.kinds(run)[:2] == ["run.started", "node.entered"]
    started = p.log[run][0]
    assert isinstance(started, ev.RunStarted)
    assert started.trigger_event_id == "b-1"
    assert started.trigger_event_type == "appointment.booked"
    context = p.runs[run].patient_context
    assert context["id"] == PATIENT
    assert context["slot"] == "9:00"
    assert context["event"]["type"] == "appointment.booked"
    assert context["event"]["data"] == {"clinic": "c-1", "slot": "9:00"}
    assert not p.event("b-1", "appointment.booked", {"clinic": "c-1"})  # a redelivery
    assert len(p.runs) == 1


def test_a_trigger_whose_condition_does_not_hold_starts_nothing() -> None:
    p = Partition({JOURNEY: TRIGGERED})
    assert p.event("b-2", "appointment.booked", {"clinic": "c-2"})
    assert p.runs == {}


def test_reentry_if_not_active_is_the_default_and_always_and_once_do_as_named() -> None:
    p = Partition({JOURNEY: TRIGGERED})
    p.event("b-1", "appointment.booked", {"clinic": "c-1"})
    p.event("b-2", "appointment.booked", {"clinic": "c-1"})
    assert len(p.runs) == 1  # the first is still active

    always = TRIGGERED.model_copy(update={"reentry": "always"})
    p = Partition({JOURNEY: always})
    p.event("b-1", "appointment.booked", {"clinic": "c-1"})
    p.event("b-2", "appointment.booked", {"clinic": "c-1"})
    assert len(p.runs) == 2

    once = TRIGGERED.model_copy(update={"reentry": "once"})
    p = Partition({JOURNEY: once})
    p.event("b-1", "appointment.booked", {"clinic": "c-1"})
    p.event("x-1", "appointment.cancelled")
    assert all(run.ended for run in p.runs.values())
    p.event("b-2", "appointment.booked", {"clinic": "c-1"})
    assert len(p.runs) == 1
    p.runs.clear()  # even once the partition forgot the ended run
    p.event("b-3", "appointment.booked", {"clinic": "c-1"})
    assert p.runs == {}


def test_an_exit_event_cancels_the_active_run_naming_the_event_and_its_pending_timer() -> None:
    p = Partition({JOURNEY: TRIGGERED})
    p.event("b-1", "appointment.booked", {"clinic": "c-1"})
    run = triggered_run_id(JOURNEY, PATIENT_KEY, "b-1")
    timer = p.runs[run].pending_timer
    assert timer is not None
    p.later(60)
    p.event("x-1", "appointment.cancelled")
    assert p.kinds(run)[-2:] == ["run.exited", "run.cancelled"]
    exited, cancelled = p.log[run][-2:]
    assert isinstance(exited, ev.RunExited)
    assert isinstance(cancelled, ev.RunCancelled)
    assert exited.event_id == "x-1"
    assert exited.event_type == "appointment.cancelled"
    assert cancelled.exit_event_id == "x-1"
    assert cancelled.exit_event_type == "appointment.cancelled"
    assert cancelled.cancelled_timer_id == timer.timer_id
    assert p.runs[run].status == "cancelled"


def test_an_exit_during_a_pending_delay_cancels_its_timer() -> None:
    delayed = events_journey(delay("d", DAY, "m"), message("m"),
                             exit_on=[{"event": "stop"}])  # fmt: skip
    p = Partition()
    run = p.start(delayed)
    timer = p.runs[run].pending_timer
    assert timer is not None
    p.event("s-1", "stop")
    cancelled = p.log[run][-1]
    assert isinstance(cancelled, ev.RunCancelled)
    assert cancelled.cancelled_timer_id == timer.timer_id
    assert p.runs[run].pending_timer is None
    late = cmd.FireTimer(run_id=run, timer_id=timer.timer_id, due_at=timer.due_at,
                         fired_at=timer.due_at)  # fmt: skip
    assert isinstance(p.apply(late), Rejection)


def test_one_event_exits_a_run_and_starts_the_next_of_the_same_journey() -> None:
    rebook = TRIGGERED.model_copy(
        update={"exit_on": TRIGGERED.triggers, "triggers": TRIGGERED.triggers}
    )
    p = Partition({JOURNEY: rebook})
    p.event("b-1", "appointment.booked", {"clinic": "c-1"})
    p.event("b-2", "appointment.booked", {"clinic": "c-1"})
    first = triggered_run_id(JOURNEY, PATIENT_KEY, "b-1")
    second = triggered_run_id(JOURNEY, PATIENT_KEY, "b-2")
    assert p.runs[first].status == "cancelled"
    assert not p.runs[second].ended


def test_an_exit_and_a_wait_on_one_event_end_the_run_once() -> None:
    both = events_journey(wait_for("w", "stop", DAY, "m", None), message("m"),
                          exit_on=[{"event": "stop"}])  # fmt: skip
    p = Partition()
    run = p.start(both)
    p.event("s-1", "stop")
    assert p.kinds(run)[-2:] == ["run.exited", "run.cancelled"]
    assert "event.matched" not in p.kinds(run)


def test_an_event_that_came_before_the_trigger_meets_the_triggered_runs_wait() -> None:
    """The form overtakes the booking: the booking's run finds it by look-back, and the
    booking itself never meets a wait of the run it started."""
    previsit = events_journey(
        message("remind", "form"),
        wait_for("form", "intake_form.submitted", DAY, "thanks", None, lookback=DAY),
        message("thanks"),
        triggers=[{"event": "appointment.booked"}],
    )
    p = Partition({JOURNEY: previsit})
    assert p.event("form-1", "intake_form.submitted", {"pain": 3})
    p.later(60)
    assert p.event("b-1", "appointment.booked")
    run = triggered_run_id(JOURNEY, PATIENT_KEY, "b-1")
    matched = next(e for e in p.log[run] if isinstance(e, ev.EventMatched))
    assert matched.event_id == "form-1"
    assert matched.lookback is True
    assert p.runs[run].status == "completed"

    own = events_journey(
        wait_for("again", "appointment.booked", DAY, None, None, lookback=DAY),
        triggers=[{"event": "appointment.booked"}],
    )
    p = Partition({JOURNEY: own})
    p.event("b-2", "appointment.booked")
    run = triggered_run_id(JOURNEY, PATIENT_KEY, "b-2")
    assert p.runs[run].status == "waiting_event"
