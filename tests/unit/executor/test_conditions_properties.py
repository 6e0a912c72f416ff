"""CONDITIONAL semantics as properties: never raises, negations and aliases agree everywhere."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from journeys_contracts.definition import Condition
from journeys_executor.core.conditions import evaluate
from tests.unit.contracts.strategies import conditions, contexts
from tests.unit.executor.test_conditions import ALIASES, NOTES


@settings(max_examples=150, deadline=None)
@given(condition=conditions(), context=contexts)
def test_evaluate_never_raises_and_answers_a_bool_with_a_known_note(
    condition: dict[str, Any], context: dict[str, Any]
) -> None:
    result, note = evaluate(Condition.model_validate(condition), context)
    assert isinstance(result, bool)
    assert note in NOTES


@settings(max_examples=100, deadline=None)
@given(condition=conditions(), context=contexts)
def test_negated_operators_answer_the_opposite_whenever_the_field_is_present(
    condition: dict[str, Any], context: dict[str, Any]
) -> None:
    opposite = {"==": "!=", "eq": "ne", "in": "not_in", "!=": "==", "ne": "eq", "not_in": "in"}
    operator = condition["operator"]
    if operator == "exists":
        negated = {**condition, "value": condition["value"] is False}
    elif operator in opposite:
        negated = {**condition, "operator": opposite[operator]}
    else:
        return
    result, note = evaluate(Condition.model_validate(condition), context)
    flipped, _ = evaluate(Condition.model_validate(negated), context)
    if note != "field missing":
        assert flipped is not result


@settings(max_examples=100, deadline=None)
@given(condition=conditions(), context=contexts)
def test_every_alias_answers_like_its_symbol_on_any_context(
    condition: dict[str, Any], context: dict[str, Any]
) -> None:
    spelled = dict(ALIASES) | {word: symbol for symbol, word in ALIASES}
    if condition["operator"] not in spelled:
        return
    other = {**condition, "operator": spelled[condition["operator"]]}
    assert evaluate(Condition.model_validate(condition), context) == evaluate(
        Condition.model_validate(other), context
    )
