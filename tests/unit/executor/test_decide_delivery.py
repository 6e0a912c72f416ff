"""RecordDelivery: a delivered message moves the run on; a failure worth another attempt waits
on a retry timer, then asks again; a final failure moves the run on too, to the node's
`on_failure_next_node_id` when it has one; stale reports are rejected."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from journeys_contracts import events as ev
from journeys_contracts.definition import JourneyDefinition
from journeys_executor.core import Rejection, decide
from journeys_executor.core.decide import Policy
from journeys_executor.core.quiet import QuietHours
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    WEEKLY,
    Run,
    cancel,
    delay,
    delivery,
    given,
    journey,
    kinds,
    message,
    rejected,
    start,
)


def test_delivered_message_is_recorded_sent_and_the_run_continues_to_the_next_node() -> None:
    run = given(MSG_DELAY_MSG)
    assert kinds(run.deliver()) == ["message.sent", "node.entered", "delay.started"]
    assert run.s.pending_message is None
    assert run.s.current_node_id == "wait"


def test_message_sent_names_the_message_its_node_and_the_channel() -> None:
    run = given(MSG_DELAY_MSG)
    requested = run.last(ev.MessageRequested)
    run.deliver()
    sent = run.last(ev.MessageSent)
    assert (sent.message_id, sent.node_id, sent.channel) == (requested.message_id, "a", "sms")


def test_consecutive_messages_are_requested_one_delivery_at_a_time() -> None:
    run = given(journey(message("a", "b"), message("b", "c"), message("c")))
    assert kinds(run.deliver()) == ["message.sent", "node.entered", "message.requested"]
    assert kinds(run.deliver()) == ["message.sent", "node.entered", "message.requested"]
    assert kinds(run.deliver()) == ["message.sent", "run.completed"]
    requested = [e.message_id for e in run.events if isinstance(e, ev.MessageRequested)]
    assert len(set(requested)) == 3


def test_a_final_failure_is_recorded_and_the_run_goes_on_to_the_next_node() -> None:
    run = given(MSG_DELAY_MSG)
    assert kinds(run.deliver(ok=False, reason="gateway answered 400")) == [
        "message.failed", "node.entered", "delay.started"
    ]  # fmt: skip
    failed = run.last(ev.MessageFailed)
    assert (failed.node_id, failed.channel, failed.reason) == ("a", "sms", "gateway answered 400")
    assert failed.attempt is None
    assert run.s.status == "waiting_delay"
    assert run.s.pending_message is None


def test_a_final_failure_goes_to_the_nodes_failure_branch_when_it_has_one() -> None:
    run = given(journey(message("a", "b", on_failure="sorry"), message("b"), message("sorry")))
    assert kinds(run.deliver(ok=False)) == ["message.failed", "node.entered", "message.requested"]
    assert run.s.current_node_id == "sorry"
    assert run.last(ev.MessageFailed).reason == "delivery failed"


def test_a_failure_worth_retrying_waits_on_a_timer_then_asks_for_the_same_message_again() -> None:
    run = given(MSG_DELAY_MSG)
    first = run.last(ev.MessageRequested)
    assert kinds(run.deliver(ok=False, reason="gateway answered 503", retry_after=30)) == [
        "message.retrying"
    ]
    retrying = run.last(ev.MessageRetrying)
    assert (retrying.attempt, retrying.reason) == (1, "gateway answered 503")
    assert retrying.due_at == run.now + timedelta(seconds=30)
    assert run.s.pending_timer is not None
    assert run.s.pending_timer.timer_id == retrying.timer_id
    assert run.s.status == "in_progress"

    # The report of attempt 1 again, while the timer waits: stale.
    assert "awaits a retry timer" in rejected(run.when(delivery(run.s, ok=False)))

    assert kinds(run.fire()) == ["message.requested"]
    again = run.last(ev.MessageRequested)
    assert (again.message_id, again.message, again.attempt) == (first.message_id, first.message, 2)
    assert run.s.pending_timer is None
    assert run.s.pending_message is not None
    assert run.s.pending_message.attempt == 2

    assert kinds(run.deliver()) == ["message.sent", "node.entered", "delay.started"]
    assert run.last(ev.MessageSent).attempt == 2


def test_a_report_of_an_earlier_attempt_is_stale() -> None:
    run = given(MSG_DELAY_MSG)
    first = delivery(run.s, ok=False, retry_after=1)
    run.when(first)
    run.fire()
    reason = rejected(run.when(first.model_copy(update={"delivered": True})))
    assert reason.startswith("Expected the report of attempt 2")


def test_cancelling_a_message_that_waits_to_be_retried_cancels_its_timer() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver(ok=False, retry_after=60)
    timer = run.s.pending_timer
    assert timer is not None
    run.when(cancel())
    assert run.last(ev.RunCancelled).cancelled_timer_id == timer.timer_id


def test_the_last_attempts_failure_names_it() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver(ok=False, retry_after=1)
    run.fire()
    run.deliver(ok=False, reason="gateway timed out")
    failed = run.last(ev.MessageFailed)
    assert (failed.attempt, failed.reason) == (2, "gateway timed out")


def test_rejects_delivery_of_a_message_the_run_does_not_await() -> None:
    run = given(MSG_DELAY_MSG)
    other = uuid.uuid4()
    reason = rejected(run.when(delivery(run.s, message_id=other)))
    assert str(other) in reason
    assert str(run.s.pending_message.message_id) in reason  # type: ignore[union-attr]


def test_rejects_a_second_report_on_a_message_already_delivered() -> None:
    run = given(MSG_DELAY_MSG)
    report = delivery(run.s)
    run.when(report)
    assert rejected(run.when(report)).endswith("but it is waiting_delay and awaits none")


def test_rejects_a_late_failure_report_on_a_message_already_delivered() -> None:
    run = given(MSG_DELAY_MSG)
    report = delivery(run.s)
    run.when(report)
    rejected(run.when(report.model_copy(update={"delivered": False})))
    assert run.s.status == "waiting_delay"


def test_rejects_delivery_after_the_run_was_cancelled() -> None:
    run = given(MSG_DELAY_MSG)
    report = delivery(run.s)
    run.when(cancel())
    assert "but it is cancelled" in rejected(run.when(report))


def test_rejects_delivery_after_the_run_failed() -> None:
    run = given(MSG_DELAY_MSG)
    report = delivery(run.s)
    run.fail()
    assert "but it is failed" in rejected(run.when(report))


def test_a_message_revisited_through_a_delay_loop_gets_a_fresh_message_id() -> None:
    run = given(WEEKLY, {"id": "p-1", "opted_in": True})
    first = run.s.pending_message
    run.deliver()
    run.fire()
    second = run.s.pending_message
    assert first is not None
    assert second is not None
    assert second.node_id == first.node_id == "ask"
    assert second.message_id != first.message_id
    rejected(run.when(delivery(run.s, message_id=first.message_id)))


def test_a_delivery_decided_later_dates_its_events_and_the_next_due_time_then() -> None:
    run = given(journey(message("a", "w"), delay("w", 10)))
    later = run.now + timedelta(minutes=3)
    run.when(delivery(run.s), later)
    assert run.last(ev.MessageSent).occurred_at == later
    assert run.last(ev.DelayStarted).due_at == later + timedelta(seconds=10)


BILINGUAL = journey(
    {"id": "hello", "type": "MESSAGE", "message": "Hello {{ first_name }}",
     "templates": {"es": "Hola {{ first_name }}"}, "next_node_id": "bye"},
    {"id": "bye", "type": "MESSAGE", "message": "Bye {{ last_visit }}"},
)  # fmt: skip


def test_the_patients_language_chooses_the_template_rendered_over_the_context() -> None:
    run = given(BILINGUAL, {"id": "p-1", "first_name": "Ana", "language": "es-MX"})
    requested = run.last(ev.MessageRequested)
    assert (requested.message, requested.language) == ("Hola Ana", "es")
    assert run.s.pending_message is not None
    assert run.s.pending_message.message == "Hola Ana"


def test_without_a_template_in_the_language_the_message_is_rendered() -> None:
    run = given(BILINGUAL, {"id": "p-1", "first_name": "Ana", "language": "fr"})
    requested = run.last(ev.MessageRequested)
    assert (requested.message, requested.language) == ("Hello Ana", None)


def test_a_template_the_context_cannot_fill_fails_the_message_and_the_run_goes_on() -> None:
    run = given(BILINGUAL, {"id": "p-1", "first_name": "Ana"})
    outcome = run.deliver()
    assert kinds(outcome) == ["message.sent", "node.entered", "message.failed", "run.completed"]
    failed = run.last(ev.MessageFailed)
    assert (failed.node_id, failed.reason, failed.channel) == ("bye", "template", "console")
    assert "Ana" not in failed.to_json().decode()


def test_a_message_due_in_quiet_hours_is_deferred_then_requested_when_they_end() -> None:
    paris = ZoneInfo("Europe/Paris")
    policy = Policy(quiet=QuietHours.parse("21:00-08:00"), zone_of=lambda _: paris)
    run = Run()
    late = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    outcome = decide(None, start(MSG_DELAY_MSG, {"id": "p-1", "timezone": "Europe/Paris"}), late,
                     policy=policy)  # fmt: skip
    assert not isinstance(outcome, Rejection)
    assert kinds(outcome) == ["run.started", "node.entered", "message.deferred"]
    deferred = outcome[-1]
    assert isinstance(deferred, ev.MessageDeferred)
    assert deferred.due_at == datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    state = outcome.state
    assert state is not None
    assert state.pending_timer is not None
    assert state.pending_timer.timer_id == deferred.timer_id
    run.state, run.now = state, late
    fired = run.fire()
    assert kinds(fired) == ["message.requested"]
    requested = run.last(ev.MessageRequested)
    assert (requested.message_id, requested.attempt) == (deferred.message_id, None)
    assert run.s.pending_message is not None
    assert run.s.pending_message.attempt == 1
    assert kinds(run.deliver()) == ["message.sent", "node.entered", "delay.started"]


def test_a_journeys_own_quiet_hours_override_the_deployments() -> None:
    night = Policy(quiet=QuietHours.parse("21:00-08:00"))
    never = JourneyDefinition.model_validate(
        {**MSG_DELAY_MSG.model_dump(), "quiet_hours": "00:00-00:00"}
    )
    outcome = decide(None, start(never), datetime(2026, 12, 3, 23, 0, tzinfo=UTC), policy=night)
    assert not isinstance(outcome, Rejection)
    assert kinds(outcome)[-1] == "message.requested"


def test_a_retry_due_in_quiet_hours_waits_for_them_to_end() -> None:
    paris = ZoneInfo("Europe/Paris")
    policy = Policy(quiet=QuietHours.parse("21:00-08:00"), zone_of=lambda _: paris)
    evening = datetime(2026, 12, 3, 19, 58, tzinfo=UTC)  # 20:58 in Paris
    started = decide(None, start(MSG_DELAY_MSG), evening, policy=policy)
    assert not isinstance(started, Rejection)
    assert started.state is not None
    report = delivery(started.state, ok=False, retry_after=120)
    retried = decide(started.state, report, evening, policy=policy)
    assert not isinstance(retried, Rejection)
    (retrying,) = retried
    assert isinstance(retrying, ev.MessageRetrying)
    assert retrying.due_at == datetime(2026, 12, 4, 7, 0, tzinfo=UTC)  # 08:00 in Paris
