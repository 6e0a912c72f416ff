"""The fault checkers can fail: each one on a handmade history that breaks its property."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.checkers import check, redelivered
from tests.faults.load import Accepted
from tests.faults.observe import Observed

T = datetime(2026, 1, 1, tzinfo=UTC)
RUN = "11111111-1111-4111-8111-111111111111"
MSG = "33333333-3333-4333-8333-333333333333"


def event(seq: int, kind: str, **data: Any) -> dict[str, Any]:
    return {"runId": RUN, "seq": seq, "type": f"journeys.{kind}.v1",
            "occurredAt": (T + timedelta(seconds=seq)).isoformat(), **data}  # fmt: skip


def history() -> list[dict[str, Any]]:
    due = (T + timedelta(seconds=4)).isoformat()
    return [
        event(1, "run.started", startNodeId="m"),
        event(2, "node.entered", nodeId="m"),
        event(3, "message.requested", nodeId="m", messageId=MSG),
        event(4, "message.sent", nodeId="m", messageId=MSG),
        event(5, "node.entered", nodeId="w"),
        event(6, "delay.started", nodeId="w", dueAt=due),
        event(7, "delay.elapsed", nodeId="w", dueAt=due, firedAt=due),
        event(8, "run.completed"),
    ]


def observed(events: list[dict[str, Any]], **changes: Any) -> Observed:
    row = {"status": "completed", "current_node_id": "w", "last_seq": len(events)}
    seen = Observed(events={RUN: events}, runs={RUN: row},
                    run_events={RUN: [e["seq"] for e in events]}, channel=Counter({MSG: 1}),
                    now=T + timedelta(minutes=1))  # fmt: skip
    for key, value in changes.items():
        setattr(seen, key, value)
    return seen


ACCEPTED = {RUN: Accepted(RUN, "delays", 0.0)}


def failing(seen: Observed) -> dict[str, int]:
    return {k: len(v) for k, v in check(ACCEPTED, seen).items() if v}


def test_a_sound_history_reads_zero_everywhere() -> None:
    assert failing(observed(history())) == {}


def test_an_accepted_run_that_never_ended_is_a_lost_ack_and_stuck() -> None:
    events = history()[:5]
    seen = observed(events, runs={RUN: {"status": "in_progress", "current_node_id": "w",
                                        "last_seq": 5}})  # fmt: skip
    assert failing(seen) == {"lost_ack": 1, "stuck_run": 1}


def test_a_run_waiting_on_a_future_timer_is_not_stuck() -> None:
    events = history()[:6]
    seen = observed(events, timers={RUN: T + timedelta(hours=1)},
                    runs={RUN: {"status": "waiting_delay", "current_node_id": "w",
                                "last_seq": 6}})  # fmt: skip
    assert "stuck_run" not in failing(seen)


def test_a_node_entered_twice_is_a_dup_transition() -> None:
    events = history()
    events.insert(2, event(3, "node.entered", nodeId="m"))
    for i, e in enumerate(events, start=1):
        e["seq"] = i
    assert "dup_transition" in failing(observed(events))


def test_a_repeated_seq_is_a_gap() -> None:
    events = history()
    events[4]["seq"] = 4
    assert "seq_gap" in failing(observed(events))


def test_a_delivery_no_committed_event_asked_for_is_a_dup_delivery() -> None:
    seen = observed(history(), channel=Counter({MSG: 1, "44444444-4444-4444-8444-444444444444": 1}))
    assert failing(seen) == {"dup_delivery": 1}


def test_the_same_key_handed_over_twice_is_a_harmless_redelivery() -> None:
    seen = observed(history(), channel=Counter({MSG: 2}))
    assert failing(seen) == {}
    assert redelivered(seen) == [MSG]


def test_a_timer_fired_before_due_is_early() -> None:
    events = history()
    events[6]["firedAt"] = (T + timedelta(seconds=3)).isoformat()
    assert failing(observed(events)) == {"early_timer": 1}


def test_a_read_model_behind_its_events_diverges() -> None:
    seen = observed(history(), runs={RUN: {"status": "waiting_delay", "current_node_id": "w",
                                           "last_seq": 6}})  # fmt: skip
    assert failing(seen) == {"projection_divergence": 1}


def test_a_message_the_gateway_never_took_is_lost_and_one_given_up_is_failed() -> None:
    from tests.faults.delivery import failed_delivery, lost_delivery

    assert lost_delivery(observed(history(), delivered={MSG})) == []
    assert lost_delivery(observed(history(), delivered=set())) == [MSG]
    # Asked for, then no outcome: lost, unless the run was cancelled while it waited.
    waiting = [*history()[:3], event(4, "message.retrying", nodeId="m", messageId=MSG)]
    assert lost_delivery(observed(waiting, delivered=set())) == [MSG]
    cancelled = [*waiting, event(5, "run.cancelled", nodeId="m")]
    assert lost_delivery(observed(cancelled, delivered=set())) == []
    assert failed_delivery(observed(history())) == []
    given_up = [*history()[:3], event(4, "message.failed", nodeId="m", messageId=MSG,
                                      reason="gateway answered 503")]  # fmt: skip
    assert failed_delivery(observed(given_up)) == [MSG]
