"""StartRun: the run begins, walks to its first wait, or is rejected if it already exists."""

from __future__ import annotations

from datetime import timedelta

import pytest

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.core import Rejection, decide
from journeys_executor.core.decide import MAX_STEPS_PER_COMMAND
from tests.unit.executor.helpers import (
    JOURNEY,
    MSG_DELAY_MSG,
    PATIENT,
    RUN,
    T0,
    Run,
    cancel,
    conditional,
    delay,
    given,
    journey,
    kinds,
    message,
    rejected,
    start,
)


def test_start_emits_run_started_node_entered_and_message_requested_then_awaits_delivery() -> None:
    run = Run()
    assert kinds(run.when(start(MSG_DELAY_MSG))) == [
        "run.started", "node.entered", "message.requested",
    ]  # fmt: skip
    assert run.s.status == "in_progress"
    assert run.s.current_node_id == "a"
    assert run.s.pending_message is not None
    assert run.s.pending_message.message == "first"
    assert run.s.pending_timer is None


def test_run_started_carries_the_run_the_patient_and_the_journey_snapshot() -> None:
    context = {"id": PATIENT, "age": 72, "address": {"zip": "94110"}}
    run = given(MSG_DELAY_MSG, context)
    started = run.last(ev.RunStarted)
    assert (started.run_id, started.journey_id, started.patient_id) == (RUN, JOURNEY, PATIENT)
    assert started.journey_name == "spec"
    assert started.start_node_id == "a"
    assert started.patient_context == context
    assert started.definition == MSG_DELAY_MSG
    assert run.s.definition == MSG_DELAY_MSG
    assert run.s.patient_context == context


def test_seq_starts_at_1_and_every_event_names_its_run_journey_and_patient() -> None:
    run = given(MSG_DELAY_MSG)
    assert [e.seq for e in run.events] == [1, 2, 3]
    assert {(e.run_id, e.journey_id, e.patient_id) for e in run.events} == {(RUN, JOURNEY, PATIENT)}
    assert run.s.seq == 3


def test_seq_is_gapless_across_commands_and_ignores_rejected_ones() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    rejected(run.when(start(MSG_DELAY_MSG)))
    run.fire()
    run.deliver()
    assert [e.seq for e in run.events] == list(range(1, 12))
    assert run.s.seq == 11


def test_message_requested_names_the_node_and_its_text() -> None:
    requested = given(MSG_DELAY_MSG).last(ev.MessageRequested)
    assert (requested.node_id, requested.message) == ("a", "first")


def test_node_entered_names_the_node_and_its_type() -> None:
    entered = given(MSG_DELAY_MSG).last(ev.NodeEntered)
    assert (entered.node_id, entered.node_type) == ("a", "MESSAGE")


def test_a_journey_starting_with_a_delay_waits_for_its_timer_at_once() -> None:
    run = given(journey(delay("w", 60, "m"), message("m")))
    assert kinds(run.events) == ["run.started", "node.entered", "delay.started"]
    assert run.s.status == "waiting_delay"


def test_a_journey_starting_with_a_conditional_walks_through_it_in_the_same_command() -> None:
    definition = journey(conditional("c", ("age", ">", 65), "old", "young"),
                         message("old"), message("young"))  # fmt: skip
    run = given(definition, {"id": PATIENT, "age": 80})
    assert kinds(run.events) == ["run.started", "node.entered", "condition.evaluated",
                                 "node.entered", "message.requested"]  # fmt: skip
    assert run.s.current_node_id == "old"


def test_chained_conditionals_are_all_evaluated_before_the_run_waits() -> None:
    definition = journey(
        conditional("c1", ("age", ">", 18), "c2", None),
        conditional("c2", ("language", "==", "fr"), "fr", "en"),
        message("fr"), message("en"),
    )  # fmt: skip
    run = given(definition, {"id": PATIENT, "age": 40, "language": "fr"})
    evaluated = [e for e in run.events if isinstance(e, ev.ConditionEvaluated)]
    assert [(e.node_id, e.result, e.next_node_id) for e in evaluated] == [
        ("c1", True, "c2"), ("c2", True, "fr"),
    ]  # fmt: skip
    assert run.s.pending_message is not None
    assert run.s.pending_message.node_id == "fr"


def test_a_null_next_node_completes_the_run() -> None:
    run = given(journey(message("only")))
    assert kinds(run.deliver()) == ["message.sent", "run.completed"]
    assert run.s.status == "completed"
    assert run.last(ev.RunCompleted).last_node_id == "only"
    assert run.s.pending_message is None


def test_a_conditional_leading_nowhere_completes_the_run_in_the_start_command() -> None:
    run = given(journey(conditional("c", ("age", ">", 65), None, None)), {"id": PATIENT})
    assert kinds(run.events)[-2:] == ["condition.evaluated", "run.completed"]
    assert run.last(ev.RunCompleted).last_node_id == "c"


def test_rejects_a_second_start_of_an_existing_run() -> None:
    run = given(MSG_DELAY_MSG)
    reason = rejected(run.when(start(MSG_DELAY_MSG)))
    assert reason.startswith(f"Expected no run with id {RUN}")
    assert len(run.events) == 3


@pytest.mark.parametrize("end", ["completed", "cancelled", "failed"])
def test_rejects_a_start_of_a_run_that_already_ended(end: str) -> None:
    run = given(journey(message("only")))
    if end == "cancelled":
        run.when(cancel())
    elif end == "failed":
        run.fail()
    else:
        run.deliver()
    assert run.s.status == end
    assert rejected(run.when(start(journey(message("only"))))).endswith(f"({end})")


@pytest.mark.parametrize(
    "command",
    [
        cmd.CancelRun(run_id=RUN, requested_at=T0),
        cmd.FireTimer(run_id=RUN, timer_id=RUN, due_at=T0, fired_at=T0),
        cmd.RecordDelivery(run_id=RUN, message_id=RUN, channel="sms", delivered=True, at=T0),
    ],
    ids=["cancel", "timer", "delivery"],
)
def test_rejects_any_other_command_for_a_run_that_has_not_started(command: cmd.Command) -> None:
    reason = rejected(decide(None, command, T0))
    assert reason == f"Expected run {RUN} to exist, but it has not started"


def test_a_graph_that_loops_without_waiting_fails_the_run_instead_of_spinning_forever() -> None:
    """graph_errors refuses such a graph; the core still must not hang on one."""
    definition = journey(conditional("x", ("age", "exists", None), "y", "y"),
                         conditional("y", ("age", "exists", None), "x", "x"))  # fmt: skip
    outcome = decide(None, start(definition), T0 + timedelta(seconds=1))
    assert not isinstance(outcome, Rejection)
    assert len(outcome) == 2 * MAX_STEPS_PER_COMMAND + 2
    assert isinstance(outcome[-1], ev.RunFailed)
    assert "without waiting" in outcome[-1].reason
