"""ErasePatient: the patient's runs that have not ended are cancelled, all of them are listed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.core import ERASED_REASON, erase, fold
from tests.unit.executor.helpers import MSG_DELAY_MSG, T0, Run, given, journey, message, start

ERASURE = uuid.UUID("33333333-3333-4333-8333-333333333333")
KEY = "ab" * 32
LATER = T0 + timedelta(minutes=5)


def erase_patient() -> cmd.ErasePatient:
    return cmd.ErasePatient(erasure_id=ERASURE, patient_key=KEY, requested_at=T0)


def waiting_on_a_delay(run_id: uuid.UUID) -> Run:
    run = Run()
    run.when(start(MSG_DELAY_MSG, run_id=run_id))
    run.deliver()
    assert run.s.pending_timer is not None
    return run


def ended(run_id: uuid.UUID) -> Run:
    run = Run()
    run.when(start(journey(message("bye")), run_id=run_id))
    run.deliver()
    assert run.s.ended
    return run


def test_erasure_cancels_a_waiting_run_with_its_timer_and_lists_an_ended_one() -> None:
    waiting, done = waiting_on_a_delay(uuid.uuid4()), ended(uuid.uuid4())
    timer = waiting.s.pending_timer
    assert timer is not None

    erasure = erase([done.s, waiting.s], erase_patient(), LATER)

    [cancellation] = erasure.cancellations
    [cancelled] = cancellation
    assert isinstance(cancelled, ev.RunCancelled)
    assert cancelled.run_id == waiting.s.run_id
    assert cancelled.seq == waiting.s.seq + 1
    assert cancelled.reason == ERASED_REASON
    assert cancelled.cancelled_timer_id == timer.timer_id
    assert cancelled.occurred_at == LATER
    assert cancellation.state == fold(waiting.s, cancellation)
    assert cancellation.state is not None
    assert cancellation.state.status == "cancelled"
    assert erasure.erased.run_ids == sorted([waiting.s.run_id, done.s.run_id], key=str)


def test_erasure_says_which_request_it_answers_and_when_without_patient_data() -> None:
    run = given(MSG_DELAY_MSG)
    erased = erase([run.s], erase_patient(), LATER).erased
    assert (erased.erasure_id, erased.patient_key, erased.erased_at) == (ERASURE, KEY, LATER)
    assert run.s.patient_id not in erased.to_json().decode()


def test_erasing_a_patient_with_no_runs_lists_none() -> None:
    erasure = erase([], erase_patient(), LATER)
    assert erasure.cancellations == []
    assert erasure.erased.run_ids == []


def test_erasure_lists_runs_in_the_same_order_whatever_order_they_come_in() -> None:
    runs = [ended(uuid.uuid4()).s for _ in range(5)]
    forward = erase(runs, erase_patient(), LATER).erased
    backward = erase(list(reversed(runs)), erase_patient(), LATER).erased
    assert forward == backward


def test_erasure_also_lists_the_runs_the_requester_names_which_the_partition_forgot() -> None:
    held = ended(uuid.uuid4())
    forgotten = uuid.uuid4()  # ended longer ago than the grace window: no state here any more
    command = erase_patient().model_copy(update={"run_ids": [forgotten, held.s.run_id]})

    erasure = erase([held.s], command, LATER)

    assert erasure.cancellations == []
    assert erasure.erased.run_ids == sorted([held.s.run_id, forgotten], key=str)
