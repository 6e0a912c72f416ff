"""CONDITIONAL semantics: operators and their aliases, dotted paths, missing and odd values."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_contracts.definition import Condition
from journeys_executor.core.conditions import evaluate, resolve

CONTEXT = {"id": "p-1", "age": 72, "language": "fr", "tags": ["cardiac", 1],
           "address": {"zip": "94110", "geo": {"lat": 37.7}}, "flag": True, "score": 1.5,
           "note": "hip_replacement", "empty": None, "zero": 0}  # fmt: skip
ALIASES = [("==", "eq"), ("!=", "ne"), (">", "gt"), (">=", "gte"), ("<", "lt"), ("<=", "lte")]
NOTES = {None, "field missing", "values not comparable", "field is not a string, list or object"}


def evaluated(field: str, operator: str, value: Any = None,
              context: dict[str, Any] = CONTEXT) -> tuple[bool, str | None]:  # fmt: skip
    condition = {"field": field, "operator": operator, "value": value}
    return evaluate(Condition.model_validate(condition), context)


def check(field: str, operator: str, value: Any = None, context: dict[str, Any] = CONTEXT) -> bool:
    return evaluated(field, operator, value, context)[0]


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("==", 72, True), ("==", 71, False), ("==", 72.0, True), ("==", "72", False),
        ("!=", 72, False), ("!=", 71, True), ("!=", "72", True),
        (">", 65, True), (">", 72, False), (">=", 72, True), (">=", 73, False),
        ("<", 80, True), ("<", 72, False), ("<=", 72, True), ("<=", 71.9, False),
    ],
)  # fmt: skip
def test_comparison_operators_on_numbers(operator: str, value: Any, expected: bool) -> None:
    assert check("age", operator, value) is expected


@pytest.mark.parametrize(("symbol", "word"), ALIASES)
@pytest.mark.parametrize("value", [71, 72, 73, 71.5, "72"])
def test_every_alias_means_exactly_its_symbol(symbol: str, word: str, value: Any) -> None:
    assert check("age", symbol, value) is check("age", word, value)


def test_strings_order_lexicographically() -> None:
    assert check("language", ">", "en") is True
    assert check("language", "<", "en") is False


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("language", "in", ["en", "fr"], True), ("language", "in", ["en"], False),
        ("language", "in", [], False), ("language", "not_in", ["en", "fr"], False),
        ("language", "not_in", ["en"], True), ("language", "not_in", [], True),
        ("age", "in", [72.0], True), ("address", "in", [{"zip": "94110",
                                                         "geo": {"lat": 37.7}}], True),
    ],
)  # fmt: skip
def test_in_and_not_in_test_membership_of_the_list(
    field: str, operator: str, value: Any, expected: bool
) -> None:
    assert check(field, operator, value) is expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("age", None, True), ("age", True, True), ("age", False, False),
        ("missing", None, False), ("missing", True, False), ("missing", False, True),
        ("empty", None, False), ("empty", False, True), ("zero", None, True),
        ("flag", None, True), ("address.zip", None, True), ("address.city", False, True),
    ],
)  # fmt: skip
def test_exists_tests_presence_and_exists_false_tests_absence(
    field: str, value: Any, expected: bool
) -> None:
    assert check(field, "exists", value) is expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("note", "hip", True), ("note", "knee", False), ("note", "", True), ("note", 1, False),
        ("tags", "cardiac", True), ("tags", "renal", False), ("tags", 1, True),
        ("tags", True, False), ("address", "zip", True), ("address", "city", False),
        ("address", 1, False),
    ],
)  # fmt: skip
def test_contains_looks_inside_strings_lists_and_object_keys(
    field: str, value: Any, expected: bool
) -> None:
    assert check(field, "contains", value) is expected


def test_contains_on_a_number_is_false_with_a_note() -> None:
    assert evaluated("age", "contains", 7) == (
        False, "field is not a string, list or object",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "expected"),
    [("address.zip", "94110"), ("address.geo.lat", 37.7), ("patient.address.zip", "94110"),
     ("patient.age", 72), ("address", CONTEXT["address"])],
)  # fmt: skip
def test_dotted_paths_walk_nested_objects_and_the_patient_prefix_is_optional(
    field: str, expected: Any
) -> None:
    assert resolve(CONTEXT, field) == expected


def test_nested_paths_work_with_every_operator() -> None:
    assert check("address.zip", "==", "94110") is True
    assert check("patient.address.zip", "in", ["94110"]) is True
    assert check("address.geo.lat", ">", 37) is True


def test_a_real_patient_object_in_the_context_is_honoured() -> None:
    context = {"id": "p-1", "age": 10, "patient": {"age": 90}}
    assert resolve(context, "patient.age") == 90
    assert check("patient.age", ">", 65, context) is True
    assert check("patient", "contains", "age", context) is True


@pytest.mark.parametrize(
    "field", ["nope", "address.city", "address.zip.more", "age.years", "patient.nope", "tags.0"]
)
@pytest.mark.parametrize(
    ("operator", "value"),
    [("==", 1), ("!=", 1), (">", 1), ("<=", "a"), ("in", [1]), ("not_in", [1]), ("contains", 1)],
)
def test_a_missing_field_is_false_with_a_note_for_every_operator_but_exists(
    field: str, operator: str, value: Any
) -> None:
    assert evaluated(field, operator, value) == (False, "field missing")


@pytest.mark.parametrize(
    ("field", "value"),
    [("language", 3), ("age", "65"), ("tags", 1), ("address", 1), ("empty", 1), ("flag", 0),
     ("age", "a")],
)  # fmt: skip
@pytest.mark.parametrize("operator", [">", ">=", "<", "<=", "gt", "gte", "lt", "lte"])
def test_values_that_cannot_be_ordered_compare_false_without_raising(
    field: str, value: Any, operator: str
) -> None:
    assert evaluated(field, operator, value) == (False, "values not comparable")


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [("flag", "==", 1), ("flag", "eq", 1.0), ("zero", "==", False), ("flag", "in", [1]),
     ("zero", "in", [False]), ("tags", "contains", True)],
)  # fmt: skip
def test_a_boolean_never_equals_a_number(field: str, operator: str, value: Any) -> None:
    assert check(field, operator, value) is False


def test_a_boolean_is_never_unequal_to_itself_but_always_unequal_to_a_number() -> None:
    assert check("flag", "!=", True) is False
    assert check("flag", "!=", 1) is True
    assert check("zero", "not_in", [False]) is True


def test_notes_never_carry_patient_values() -> None:
    for field, operator, value in [("note", ">", 5), ("nope", "==", "x"), ("age", "contains", 1)]:
        _, note = evaluated(field, operator, value)
        assert note in NOTES
