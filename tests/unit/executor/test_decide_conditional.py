"""CONDITIONAL nodes inside a run: the branch taken, and the evaluation recorded with its note."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_contracts import events as ev
from tests.unit.executor.helpers import (
    PATIENT,
    conditional,
    delay,
    given,
    journey,
    kinds,
    message,
)

AGE_CHECK = journey(
    conditional("age_check", ("patient.age", "gt", 65), "senior", "adult"),
    message("senior", None, "senior"),
    message("adult", None, "adult"),
)


@pytest.mark.parametrize(("age", "branch"), [(72, "senior"), (65, "adult"), (40, "adult")])
def test_conditional_continues_to_the_branch_its_condition_picks(age: int, branch: str) -> None:
    run = given(AGE_CHECK, {"id": PATIENT, "age": age})
    evaluated = run.last(ev.ConditionEvaluated)
    assert (evaluated.result, evaluated.next_node_id) == (branch == "senior", branch)
    assert run.s.current_node_id == branch
    assert run.s.pending_message is not None
    assert run.s.pending_message.message == branch


def test_condition_evaluated_records_the_field_and_operator_as_written() -> None:
    evaluated = given(AGE_CHECK, {"id": PATIENT, "age": 72}).last(ev.ConditionEvaluated)
    assert (evaluated.node_id, evaluated.field, evaluated.operator) == (
        "age_check", "patient.age", "gt",
    )  # fmt: skip
    assert evaluated.note is None


@pytest.mark.parametrize(
    ("context", "note"),
    [({"id": PATIENT}, "field missing"), ({"id": PATIENT, "age": "old"}, "values not comparable")],
)
def test_a_surprising_false_branch_is_explained_by_a_note(
    context: dict[str, Any], note: str
) -> None:
    run = given(AGE_CHECK, context)
    evaluated = run.last(ev.ConditionEvaluated)
    assert (evaluated.result, evaluated.note, evaluated.next_node_id) == (False, note, "adult")


def test_a_conditional_after_a_delay_reads_the_context_the_run_started_with() -> None:
    definition = journey(delay("w", 60, "c"), conditional("c", ("age", ">", 65), "old", None),
                         message("old"))  # fmt: skip
    run = given(definition, {"id": PATIENT, "age": 80})
    assert kinds(run.fire()) == [
        "delay.elapsed", "node.entered", "condition.evaluated", "node.entered",
        "message.requested",
    ]  # fmt: skip
