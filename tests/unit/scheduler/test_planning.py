"""From event records to timer changes: net effect per batch, offsets, poison records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from journeys_contracts.envelope import CloudEvent
from journeys_contracts.events import EventBase, MessageDeferred, PatientErased
from journeys_runtime.sealing import seal_event
from journeys_runtime.shredding import DataKey
from journeys_scheduler.planning import Record, plan_batch
from tests.unit.scheduler.events import (
    KEY,
    delay_elapsed,
    delay_started,
    erased_headers,
    event_matched,
    event_timed_out,
    event_waiting,
    headers,
    message_retrying,
    node_entered,
    patient_erased,
    run_cancelled,
    run_completed,
)

DUE = datetime(2030, 1, 1, tzinfo=UTC)
EVENTS = "journeys.events.v1"


def records(
    *events: EventBase | PatientErased | bytes, partition: int = 2, key: bytes | None = KEY
) -> list[Record]:
    out: list[Record] = []
    for offset, e in enumerate(events, start=10):
        if isinstance(e, bytes):
            out.append(Record(EVENTS, partition, offset, key, e, ()))
        elif isinstance(e, PatientErased):
            out.append(
                Record(EVENTS, partition, offset, key, e.to_json(), tuple(erased_headers(e)))
            )
        else:
            out.append(Record(EVENTS, partition, offset, key, e.to_json(), tuple(headers(e))))
    return out


def test_delay_started_becomes_a_timer_keyed_like_its_record() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    plan = plan_batch(records(started))
    (timer,) = plan.timers
    assert (timer.timer_id, timer.run_id, timer.due_at) == (started.timer_id, started.run_id, DUE)
    assert (timer.patient_key, timer.partition) == (KEY.decode(), 2)
    assert plan.inserts[started.timer_id][1] == started.occurred_at


def test_offsets_point_past_the_last_record_of_each_partition() -> None:
    batch = records(node_entered(uuid.uuid4()), node_entered(uuid.uuid4()), partition=0)
    batch += records(node_entered(uuid.uuid4()), partition=3)
    assert plan_batch(batch).offsets == {(EVENTS, 0): 12, (EVENTS, 3): 11}


def test_cancel_with_a_timer_deletes_that_timer_and_the_runs_timers() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    plan = plan_batch(records(run_cancelled(started)))
    assert plan.delete_timer_ids == {started.timer_id}
    assert plan.delete_run_ids == {started.run_id}


def test_every_end_of_a_wait_deletes_by_run() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    for ending in (delay_elapsed(started), run_completed(started.run_id, 9),
                   run_cancelled(started, with_timer=False)):  # fmt: skip
        assert plan_batch(records(ending)).delete_run_ids == {started.run_id}


def test_a_timer_cancelled_in_the_same_batch_is_never_stored() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    plan = plan_batch(records(started, run_cancelled(started)))
    assert plan.inserts == {}


def test_a_second_delay_after_the_first_elapsed_in_the_same_batch_survives() -> None:
    run_id = uuid.uuid4()
    first = delay_started(run_id, DUE, seq=3)
    second = delay_started(run_id, DUE + timedelta(days=1), seq=5)
    plan = plan_batch(records(first, delay_elapsed(first), second))
    assert list(plan.inserts) == [second.timer_id]
    assert plan.delete_run_ids == {run_id}  # applied before the inserts


def test_patient_erased_deletes_the_timers_of_its_runs_stored_or_in_the_batch() -> None:
    stored, in_batch, kept = (delay_started(uuid.uuid4(), DUE) for _ in range(3))
    plan = plan_batch(records(in_batch, kept, patient_erased(stored.run_id, in_batch.run_id)))
    assert plan.delete_run_ids == {stored.run_id, in_batch.run_id}
    assert list(plan.inserts) == [kept.timer_id]
    assert (plan.ignored, plan.dead_letters) == (0, [])


def test_event_waiting_becomes_a_timer_like_delay_started() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    plan = plan_batch(records(waiting))
    (timer,) = plan.timers
    assert (timer.timer_id, timer.run_id, timer.due_at) == (waiting.timer_id, waiting.run_id, DUE)
    assert (timer.patient_key, timer.partition) == (KEY.decode(), 2)


def test_message_retrying_becomes_a_timer_like_delay_started_sealed_or_not() -> None:
    retrying = message_retrying(uuid.uuid4(), DUE)
    plan = plan_batch(records(retrying))
    (timer,) = plan.timers
    assert (timer.timer_id, timer.run_id, timer.due_at) == (retrying.timer_id, retrying.run_id, DUE)
    assert (timer.patient_key, timer.partition) == (KEY.decode(), 2)

    sealed = seal_event(retrying, DataKey.generate(), KEY.decode())
    envelope = CloudEvent(id="x", type=sealed.type, source="/t", subject=str(sealed.run_id),
                          time=DUE)  # fmt: skip
    record = Record("journeys.events.v2", 2, 10, KEY, sealed.to_json(),
                    tuple(envelope.headers()), sealed=True)  # fmt: skip
    (timer,) = plan_batch([record]).timers
    assert timer.timer_id == retrying.timer_id


def test_message_deferred_becomes_a_timer_too() -> None:
    retrying = message_retrying(uuid.uuid4(), DUE)
    deferred = MessageDeferred(
        **{k: v for k, v in retrying.model_dump().items()
           if k in ("run_id", "journey_id", "patient_id", "seq", "occurred_at", "node_id",
                    "message_id", "channel", "timer_id", "due_at")},
        message="Welcome!",
    )  # fmt: skip
    (timer,) = plan_batch(records(deferred)).timers
    assert (timer.timer_id, timer.due_at) == (deferred.timer_id, DUE)


def test_event_matched_deletes_only_the_timer_it_cancelled() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    plan = plan_batch(records(event_matched(waiting)))
    assert (plan.delete_timer_ids, plan.delete_run_ids) == ({waiting.timer_id}, set())


def test_a_wait_matched_in_the_same_batch_is_never_stored() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    other = event_waiting(uuid.uuid4(), DUE)
    plan = plan_batch(records(waiting, other, event_matched(waiting)))
    assert list(plan.inserts) == [other.timer_id]


def test_a_look_back_match_cancels_nothing() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    plan = plan_batch(records(event_matched(waiting, lookback=True)))
    assert (plan.delete_timer_ids, plan.delete_run_ids, plan.ignored) == (set(), set(), 1)


def test_a_second_wait_after_a_match_in_the_same_batch_survives() -> None:
    run_id = uuid.uuid4()
    first = event_waiting(run_id, DUE, seq=3)
    second = event_waiting(run_id, DUE + timedelta(days=1), seq=5)
    plan = plan_batch(records(first, event_matched(first), second))
    assert list(plan.inserts) == [second.timer_id]


def test_event_timed_out_deletes_by_run_like_delay_elapsed() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    assert plan_batch(records(event_timed_out(waiting))).delete_run_ids == {waiting.run_id}


def test_other_event_types_are_ignored() -> None:
    plan = plan_batch(records(node_entered(uuid.uuid4())))
    assert (plan.inserts, plan.delete_run_ids, plan.dead_letters) == ({}, set(), [])
    assert plan.ignored == 1


def test_undecodable_records_are_dead_lettered_with_a_reason_and_passed() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    invalid = b'{"type": "journeys.delay.started.v1", "patientId": "Jane Doe"}'
    plan = plan_batch(records(b"not json", invalid, started))
    assert [r.offset for r, _ in plan.dead_letters] == [10, 11]
    reasons = [reason for _, reason in plan.dead_letters]
    assert reasons[0].startswith("ValidationError")
    assert "timerId: missing" in reasons[1]
    assert "Jane Doe" not in "".join(reasons)  # reasons never echo values
    assert list(plan.inserts) == [started.timer_id]
    assert plan.offsets == {(EVENTS, 2): 13}


def test_a_delay_started_without_a_key_is_dead_lettered() -> None:
    plan = plan_batch(records(delay_started(uuid.uuid4(), DUE), key=None))
    assert plan.inserts == {}
    assert "no key" in plan.dead_letters[0][1]


def test_a_record_without_value_is_dead_lettered() -> None:
    plan = plan_batch([Record(EVENTS, 0, 5, KEY, None, ())])
    assert plan.dead_letters[0][1] == "record has no value"


SEALED = "journeys.events.v2"
DATA_KEY = DataKey.generate()


def sealed_records(*events: EventBase, partition: int = 2) -> list[Record]:
    """The v2 copies of `events`, as the executor writes them for a sealed run."""
    out = []
    for offset, e in enumerate(events, start=10):
        sealed = seal_event(e, DATA_KEY, KEY.decode())  # type: ignore[arg-type]
        envelope = CloudEvent(str(uuid.uuid4()), sealed.type, "/journeys/executor",
                              str(e.run_id), e.occurred_at)  # fmt: skip
        out.append(Record(SEALED, partition, offset, KEY, sealed.to_json(),
                          tuple(envelope.headers()), sealed=True))  # fmt: skip
    return out


def test_a_v2_delay_started_becomes_a_timer_like_its_v1_twin() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    assert plan_batch(sealed_records(started)).inserts == plan_batch(records(started)).inserts


def test_v1_twins_of_a_sealed_run_are_skipped() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    ended = run_cancelled(started)
    twins = [e.model_copy(update={"sealed_twin": True}) for e in (started, ended)]
    plan = plan_batch(records(*twins))
    assert (plan.inserts, plan.delete_run_ids, plan.skipped_twins) == ({}, set(), 2)
    assert plan.offsets == {(EVENTS, 2): 12}


def test_v2_ends_delete_the_timers_like_their_v1_twins() -> None:
    started = delay_started(uuid.uuid4(), DUE)
    for ending in (
        run_cancelled(started),
        delay_elapsed(started),
        run_completed(started.run_id, 4),
    ):
        plan = plan_batch(sealed_records(ending))
        assert plan.delete_run_ids == {started.run_id}
    assert plan_batch(sealed_records(run_cancelled(started))).delete_timer_ids == {started.timer_id}


def test_v2_waits_matches_and_time_outs_plan_like_their_v1_twins() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    for event in (waiting, event_matched(waiting), event_timed_out(waiting)):
        sealed, clear = plan_batch(sealed_records(event)), plan_batch(records(event))
        assert sealed.inserts == clear.inserts
        assert (sealed.delete_timer_ids, sealed.delete_run_ids) == (
            clear.delete_timer_ids, clear.delete_run_ids,
        )  # fmt: skip


def test_v1_twins_of_a_sealed_wait_are_skipped() -> None:
    waiting = event_waiting(uuid.uuid4(), DUE)
    twins = [e.model_copy(update={"sealed_twin": True}) for e in (waiting, event_matched(waiting))]
    plan = plan_batch(records(*twins))
    assert (plan.inserts, plan.delete_timer_ids, plan.skipped_twins) == ({}, set(), 2)


def test_patient_erased_on_v2_deletes_the_runs_timers() -> None:
    erased = patient_erased(uuid.uuid4())
    record = Record(SEALED, 1, 7, KEY, erased.to_json(), tuple(erased_headers(erased)), sealed=True)
    assert plan_batch([record]).delete_run_ids == set(erased.run_ids)


def test_a_v1_event_on_the_v2_topic_is_dead_lettered() -> None:
    (record,) = records(delay_started(uuid.uuid4(), DUE))
    misplaced = Record(SEALED, 2, 10, KEY, record.value, (), sealed=True)
    plan = plan_batch([misplaced])
    assert plan.inserts == {}
    assert [r.topic for r, _ in plan.dead_letters] == [SEALED]
