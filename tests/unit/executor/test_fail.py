"""`fail`: a command the executor could not carry out ends its run failed, seq gapless."""

from __future__ import annotations

from journeys_contracts import events as ev
from journeys_executor.core import Decision, fail, fold
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    T0,
    cancel,
    given,
    kinds,
    rejected,
    start,
    timer_fired,
)


def decided(outcome: Decision | object) -> Decision:
    assert isinstance(outcome, Decision), outcome
    return outcome


def test_fail_of_an_active_run_emits_run_failed_with_the_next_seq_at_its_node() -> None:
    run = given(MSG_DELAY_MSG)
    run.deliver()
    outcome = decided(fail(run.s, timer_fired(run.s), T0, "executor error: KeyError"))
    assert kinds(outcome) == ["run.failed"]
    failed = outcome[0]
    assert isinstance(failed, ev.RunFailed)
    assert failed.seq == run.s.seq + 1
    assert failed.node_id == "wait"
    assert failed.reason == "executor error: KeyError"
    assert outcome.state == fold(run.s, outcome)
    assert outcome.state is not None
    assert outcome.state.status == "failed"
    assert outcome.state.pending_timer is None


def test_fail_of_a_run_not_yet_started_records_its_start_then_its_failure() -> None:
    outcome = decided(fail(None, start(MSG_DELAY_MSG), T0, "executor error: KeyError"))
    assert kinds(outcome) == ["run.started", "run.failed"]
    assert [e.seq for e in outcome] == [1, 2]
    assert outcome.state == fold(None, outcome)
    assert outcome.state is not None
    assert outcome.state.status == "failed"


def test_fail_of_a_start_that_cannot_be_recorded_is_a_lone_run_failed_and_no_state() -> None:
    command = start(MSG_DELAY_MSG)
    outcome = decided(fail(None, command, T0, "record too large", record_start=False))
    assert kinds(outcome) == ["run.failed"]
    failed = outcome[0]
    assert (failed.seq, failed.run_id, failed.journey_id, failed.patient_id) == (
        1, command.run_id, command.journey_id, command.patient_id,
    )  # fmt: skip
    assert outcome.state is None


def test_rejects_failing_a_run_that_has_ended() -> None:
    run = given(MSG_DELAY_MSG)
    run.when(cancel())
    assert "is cancelled" in rejected(fail(run.s, cancel(), T0, "executor error: KeyError"))


def test_rejects_failing_a_run_that_never_started() -> None:
    assert "has not started" in rejected(fail(None, cancel(), T0, "executor error: KeyError"))
