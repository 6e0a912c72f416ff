"""RecordDelivery: a delivered message moves the run on, a failed one fails it, others are stale."""

from __future__ import annotations

import uuid
from datetime import timedelta

from journeys_contracts import events as ev
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    WEEKLY,
    cancel,
    delay,
    delivery,
    given,
    journey,
    kinds,
    message,
    rejected,
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


def test_failed_delivery_records_message_failed_and_fails_the_run() -> None:
    run = given(MSG_DELAY_MSG)
    assert kinds(run.deliver(ok=False, reason="channel down")) == ["message.failed", "run.failed"]
    failed = run.last(ev.MessageFailed)
    assert (failed.node_id, failed.channel, failed.reason) == ("a", "sms", "channel down")
    assert run.s.status == "failed"
    assert run.s.pending_message is None
    assert run.last(ev.RunFailed).node_id == "a"
    assert "channel down" in run.last(ev.RunFailed).reason


def test_failed_delivery_without_a_reason_still_explains_the_failure() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver(ok=False)
    assert run.last(ev.MessageFailed).reason == "delivery failed"
    assert run.last(ev.RunFailed).reason == "message delivery failed: delivery failed"


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
    run.when(report.model_copy(update={"delivered": False}))
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
