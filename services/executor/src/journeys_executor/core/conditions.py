"""CONDITIONAL nodes: resolve a dotted field in the patient context and apply the operator.

A missing field makes every operator false except `exists` (false) and `exists` with value
false (true); values of kinds that cannot be ordered compare false. Both cases are noted, so
the `condition.evaluated` event explains a surprising branch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journeys_contracts.definition import Condition

if TYPE_CHECKING:
    from journeys_executor.core.inputs import PatientEvent

_MISSING = object()

_ALIASES = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def resolve(context: dict[str, Any], path: str) -> Any:
    """`a.b.c` walks nested objects; a leading `patient.` is optional."""
    value = _walk(context, path)
    if value is _MISSING and path.startswith("patient."):
        value = _walk(context, path.removeprefix("patient."))
    return value


def _walk(context: dict[str, Any], path: str) -> Any:
    current: Any = context
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def evaluate(condition: Condition, context: dict[str, Any]) -> tuple[bool, str | None]:
    """Return (result, note); the note never contains patient values."""
    actual = resolve(context, condition.field)
    op = _ALIASES.get(condition.operator, condition.operator)
    expected = condition.value
    if op == "exists":
        present = actual is not _MISSING and actual is not None
        return (present if expected is not False else not present), None
    if actual is _MISSING:
        return False, "field missing"
    if op in ("==", "!="):
        equal = _same_kind(actual, expected) and actual == expected
        return (equal if op == "==" else not equal), None
    if op in (">", ">=", "<", "<="):
        if not _orderable(actual, expected):
            return False, "values not comparable"
        return _ORDER[op](actual, expected), None
    if op in ("in", "not_in"):
        found = any(_same_kind(actual, v) and actual == v for v in expected)
        return (found if op == "in" else not found), None
    if op == "contains":
        return _contains(actual, expected)
    return False, "unknown operator"


def _same_kind(a: Any, b: Any) -> bool:
    """True == 1 in Python; in a care pathway a boolean is never a number."""
    return isinstance(a, bool) == isinstance(b, bool)


def _orderable(a: Any, b: Any) -> bool:
    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    return (number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))


def _contains(actual: Any, expected: Any) -> tuple[bool, str | None]:
    if isinstance(actual, str):
        return (isinstance(expected, str) and expected in actual), None
    if isinstance(actual, list):
        return any(_same_kind(v, expected) and v == expected for v in actual), None
    if isinstance(actual, dict):
        return (isinstance(expected, str) and expected in actual), None
    return False, "field is not a string, list or object"


_ORDER = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def matches(
    event_type: str, when: Condition | None, event: PatientEvent, context: dict[str, Any]
) -> bool:
    """Whether `event` is of `event_type` and `when` (if any) holds over `context` with the
    event beside it as `event` (`event.type`, `event.data.x`, `event.occurredAt`)."""
    if event.type != event_type:
        return False
    if when is None:
        return True
    result, _ = evaluate(when, {**context, "event": event.as_context()})
    return result
