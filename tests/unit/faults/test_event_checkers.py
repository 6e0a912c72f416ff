"""The patient-event checkers can fail: each one on a handmade history that breaks its property,
and none on the histories a race may legitimately end in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.checkers import projection_divergence
from tests.faults.event_checkers import check_events, outcomes
from tests.faults.events_load import Sent
from tests.faults.observe import Observed

T = datetime(2026, 1, 1, tzinfo=UTC)
RUN = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
JOURNEY = "55555555-5555-4555-8555-555555555555"
TIMER = "66666666-6666-4666-8666-666666666666"
RECEIPT = "77777777-7777-4777-8777-777777777777"
EXIT_RECEIPT = "88888888-8888-4888-8888-888888888888"
EVENT, EXIT = "form-1", "cancel-1"
WAIT_NODE = {"id": "form", "type": "WAIT_FOR_EVENT", "event": "fault.form", "timeout_seconds": 60,
             "lookback_seconds": 0, "on_event_next_node_id": "thanks",
             "on_timeout_next_node_id": None}  # fmt: skip


def at(seconds: float) -> str:
    return (T + timedelta(seconds=seconds)).isoformat()


def event(kind: str, second: float, run: str = RUN, **data: Any) -> dict[str, Any]:
    return {"runId": run, "journeyId": JOURNEY, "type": f"journeys.{kind}.v1",
            "occurredAt": at(second), **data}  # fmt: skip


def numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for seq, e in enumerate(events, start=1):
        e["seq"] = seq
    return events


def started(run: str = RUN, lookback: float = 0, **data: Any) -> dict[str, Any]:
    definition = {"nodes": [{**WAIT_NODE, "lookback_seconds": lookback}]}
    return event("run.started", 0, run, startNodeId="form", definition=definition, **data)


def until_waiting(lookback: float = 0) -> list[dict[str, Any]]:
    return [
        started(lookback=lookback),
        event("node.entered", 5, nodeId="form", nodeType="WAIT_FOR_EVENT"),
        event("event.waiting", 5, nodeId="form", timerId=TIMER, dueAt=at(65)),
    ]


def matched(second: float = 10, **data: Any) -> dict[str, Any]:
    fields = {"nodeId": "form", "eventId": EVENT, "receiptId": RECEIPT,
              "cancelledTimerId": TIMER, **data}  # fmt: skip
    return event("event.matched", second, **fields)


def timed_out(fired: float = 65) -> dict[str, Any]:
    return event("event.timed_out", fired, nodeId="form", timerId=TIMER, dueAt=at(65),
                 firedAt=at(fired))  # fmt: skip


def waited_and_matched() -> list[dict[str, Any]]:
    return numbered([*until_waiting(), matched(),
                     event("node.entered", 10, nodeId="thanks", nodeType="MESSAGE"),
                     event("run.completed", 10)])  # fmt: skip


def command(offset: int, kind: str, **data: Any) -> dict[str, Any]:
    return {"partition": 0, "offset": offset, "type": f"journeys.command.{kind}", **data}


def record(offset: int, event_id: str = EVENT, received: float = 9,
           receipt: str = RECEIPT) -> dict[str, Any]:  # fmt: skip
    return command(offset, "record_patient_event.v2", eventId=event_id, receiptId=receipt,
                   eventType="fault.form", receivedAt=at(received))  # fmt: skip


def effects(events: list[dict[str, Any]]) -> set[tuple[str, int, str, str]]:
    kinds = {"journeys.event.matched.v1": "resumed", "journeys.run.exited.v1": "exited"}
    return {(e["runId"], e["seq"], e["receiptId"], kinds[e["type"]]) for e in events
            if e["type"] in kinds}  # fmt: skip


def observed(events: list[dict[str, Any]], commands: list[dict[str, Any]] | None = None,
             **changes: Any) -> Observed:  # fmt: skip
    seen = Observed(events={RUN: events}, effects=effects(events),
                    receipts={RECEIPT: {}, EXIT_RECEIPT: {}}, now=T + timedelta(minutes=2),
                    commands=commands if commands is not None else
                    [command(0, "start_run.v2", runId=RUN), record(5)])  # fmt: skip
    for key, value in changes.items():
        setattr(seen, key, value)
    return seen


SENT = {EVENT: Sent(EVENT, "p-1", "fault.form", "match", RUN, forms=["json"])}


def failing(seen: Observed, sent: dict[str, Sent] = SENT) -> dict[str, int]:
    return {k: len(v) for k, v in check_events(sent, seen).items() if v}


def test_a_wait_that_took_its_event_reads_zero_everywhere() -> None:
    assert failing(observed(waited_and_matched())) == {}


def test_a_wait_that_timed_out_with_its_event_before_the_timer_on_the_partition_lost_it() -> None:
    events = numbered([*until_waiting(), timed_out(), event("run.completed", 65)])
    fired_after = [command(0, "start_run.v2", runId=RUN), record(5),
                   command(7, "fire_timer.v1", runId=RUN, timerId=TIMER)]  # fmt: skip
    assert failing(observed(events, fired_after)) == {"lost_event": 1}


def test_a_timer_that_reached_the_partition_before_the_event_legitimately_won() -> None:
    events = numbered([*until_waiting(), timed_out(), event("run.completed", 65)])
    fired_first = [command(0, "start_run.v2", runId=RUN),
                   command(3, "fire_timer.v1", runId=RUN, timerId=TIMER), record(5)]  # fmt: skip
    assert failing(observed(events, fired_first)) == {}


def test_an_event_before_a_wait_without_look_back_is_not_expected_to_match() -> None:
    events = numbered([*until_waiting(), timed_out(), event("run.completed", 65)])
    early = [command(0, "start_run.v2", runId=RUN), record(1, received=1)]
    assert failing(observed(events, early)) == {}


def test_an_event_within_the_look_back_that_the_wait_missed_is_lost() -> None:
    events = numbered([*until_waiting(lookback=300), timed_out(), event("run.completed", 65)])
    early = [command(0, "start_run.v2", runId=RUN), record(1, received=1),
             command(7, "fire_timer.v1", runId=RUN, timerId=TIMER)]  # fmt: skip
    assert failing(observed(events, early)) == {"lost_event": 1}


def test_a_run_still_waiting_with_its_event_on_the_partition_lost_it() -> None:
    assert failing(observed(numbered(until_waiting()))) == {"lost_event": 1}


def test_one_receipt_matched_twice_is_applied_twice_and_ends_a_wait_twice() -> None:
    events = numbered([*until_waiting(), matched(), matched(11), event("run.completed", 11)])
    assert failing(observed(events)) == {"event_applied_twice": 1, "wait_ended_twice": 1}


def test_a_wait_matched_after_it_timed_out_ended_twice() -> None:
    events = numbered([*until_waiting(), timed_out(), matched(66), event("run.completed", 66)])
    assert failing(observed(events)) == {"wait_ended_twice": 1}


def test_a_wait_that_timed_out_before_its_due_time_is_early() -> None:
    events = numbered([*until_waiting(), timed_out(fired=64), event("run.completed", 64)])
    fired = [command(0, "start_run.v2", runId=RUN),
             command(3, "fire_timer.v1", runId=RUN, timerId=TIMER), record(5)]  # fmt: skip
    assert failing(observed(events, fired)) == {"early_wait": 1}


def test_one_event_that_started_two_runs_of_a_journey_started_a_run_twice() -> None:
    by_event: dict[str, Any] = {"triggerEventId": "booked-1", "triggerReceiptId": RECEIPT}
    one = numbered([started(**by_event), event("run.completed", 1)])
    two = numbered([started(OTHER, **by_event), event("run.completed", 1, OTHER)])
    seen = observed(one, effects={(RUN, 1, RECEIPT, "started"), (OTHER, 1, RECEIPT, "started")})
    seen.events[OTHER] = two
    sent = {"booked-1": Sent("booked-1", "p-1", "fault.booked", "start", JOURNEY, ["json"])}
    seen.commands = [record(1, event_id="booked-1")]
    assert failing(seen, sent) == {"run_started_twice": 1}


def test_a_run_with_two_starts_started_twice() -> None:
    events = numbered([*waited_and_matched()[:-1], started(), event("run.completed", 11)])
    assert failing(observed(events)) == {"run_started_twice": 1}


def test_an_accepted_event_missing_on_the_topic_or_in_the_read_model_is_a_receipt_missing() -> None:
    nowhere = [command(0, "start_run.v2", runId=RUN)]
    assert failing(observed(numbered(until_waiting()), nowhere)) == {"receipt_missing": 1}
    assert failing(observed(waited_and_matched(), receipts={})) == {"receipt_missing": 1}


def test_a_read_model_without_the_effect_of_an_event_diverges() -> None:
    assert failing(observed(waited_and_matched(), effects=set())) == {"effects_divergence": 1}


def test_a_timer_still_pending_for_a_run_that_ended_is_left() -> None:
    seen = observed(waited_and_matched(), timer_ids={TIMER: RUN})
    assert failing(seen) == {"timer_left": 1}


def exited(second: float) -> list[dict[str, Any]]:
    fields = {"eventId": EXIT, "receiptId": EXIT_RECEIPT}
    return [event("run.exited", second, nodeId="pause", **fields),
            event("run.cancelled", second, exitEventId=EXIT)]  # fmt: skip


def in_delay() -> list[dict[str, Any]]:
    return [started(), event("node.entered", 1, nodeId="pause", nodeType="DELAY"),
            event("delay.started", 1, nodeId="pause", timerId=TIMER, dueAt=at(4))]  # fmt: skip


EXITING = {EXIT: Sent(EXIT, "p-1", "fault.cancelled", "exit", RUN, forms=["json"])}


def test_a_delay_that_elapsed_after_the_run_exited_is_an_event_after_the_end() -> None:
    events = numbered([*in_delay(), *exited(2),
                       event("delay.elapsed", 4, nodeId="pause", timerId=TIMER, dueAt=at(4),
                             firedAt=at(4))])  # fmt: skip
    commands = [command(0, "start_run.v2", runId=RUN), record(2, EXIT, 2, EXIT_RECEIPT)]
    assert failing(observed(events, commands), EXITING) == {"event_after_end": 1}


def test_an_exit_that_reached_the_partition_before_the_timer_but_never_applied_is_lost() -> None:
    events = numbered([*in_delay(), event("delay.elapsed", 4, nodeId="pause", timerId=TIMER,
                                          dueAt=at(4), firedAt=at(4)),
                       event("run.completed", 4)])  # fmt: skip
    exit_first = [command(0, "start_run.v2", runId=RUN), record(2, EXIT, 2, EXIT_RECEIPT),
                  command(3, "fire_timer.v1", runId=RUN, timerId=TIMER)]  # fmt: skip
    assert failing(observed(events, exit_first), EXITING) == {"lost_event": 1}
    timer_first = [exit_first[0], exit_first[2], record(4, EXIT, 4, EXIT_RECEIPT)]
    assert failing(observed(events, timer_first), EXITING) == {}


def test_outcomes_count_how_waits_ended_and_look_backs_across_the_fault() -> None:
    early = [command(0, "start_run.v2", runId=RUN), record(1, received=1)]
    lookback = numbered([started(lookback=300),
                         event("node.entered", 30, nodeId="form", nodeType="WAIT_FOR_EVENT"),
                         matched(30, lookback=True, cancelledTimerId=None)])  # fmt: skip
    seen = observed(lookback, early)
    assert outcomes(seen, began=T + timedelta(seconds=2), ended=T + timedelta(seconds=20)) == {
        "matched_lookback": 1, "matched_lookback_across_fault": 1
    }  # fmt: skip


def test_a_run_still_waiting_for_an_event_projects_as_waiting_event() -> None:
    events = numbered(until_waiting())
    row = {"status": "waiting_event", "current_node_id": "form", "last_seq": 3}
    seen = observed(events, runs={RUN: row}, run_events={RUN: [1, 2, 3]})
    assert projection_divergence(seen) == []
    seen.runs[RUN] = {**row, "status": "in_progress"}
    assert projection_divergence(seen) == [RUN]
