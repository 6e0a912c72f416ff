"""Request-body rules pydantic cannot express: the patient id, and values PostgreSQL can store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from fastapi.exceptions import RequestValidationError

from journeys_api.errors import Loc, invalid
from journeys_contracts.definition import (
    JourneyDefinition,
    WaitForEventNode,
    graph_errors,
    template_errors_of,
)

MAX_PATIENT_ID_LENGTH = 255
# What the OpenAPI document says of a patient context; `patient_id_of` enforces it.
CONTEXT_SCHEMA: dict[str, Any] = {
    "required": ["id"],
    "properties": {"id": {"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_PATIENT_ID_LENGTH, "pattern": r"\S"},
        {"type": "integer", "minimum": -(10**18), "maximum": 10**18},
    ]}},
}  # fmt: skip


def patient_id_of(context: dict[str, Any]) -> str:
    """`id` of the patient context, as a string: a non-empty string or an integer."""
    if "id" not in context:
        raise invalid(("body", "id"), "Field required: the patient context needs an id", "missing")
    value = context["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(("body", "id"), "id must be a non-empty string or an integer")
    patient_id = str(value)
    if not patient_id.strip() or len(patient_id) > MAX_PATIENT_ID_LENGTH:
        raise invalid(
            ("body", "id"), f"id must have 1 to {MAX_PATIENT_ID_LENGTH} non-blank characters"
        )
    return patient_id


def unstorable(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[Loc, str]]:
    """NUL characters and non-finite numbers: jsonb refuses the first, JSON has no second.

    Either would make the projector dead-letter a record the API had accepted, and the caller
    would then never find what it was told exists.
    """
    if isinstance(value, str):
        if "\x00" in value:
            yield loc, "must not contain the NUL character (U+0000)"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield loc, "must be a finite number"
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*loc, key), "key must not contain the NUL character (U+0000)"
            yield from unstorable(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable(item, (*loc, index))


def require_storable(value: Any, loc: tuple[str | int, ...]) -> None:
    errors = [{"type": "value_error", "loc": at, "msg": msg} for at, msg in unstorable(value, loc)]
    if errors:
        raise RequestValidationError(errors)


def require_sound_graph(definition: JourneyDefinition, max_lookback_seconds: float) -> None:
    """Every broken graph rule (repeated ids, dangling or unreachable nodes, delay-free cycles),
    every message template that does not parse, and every look-back over the deployment's
    limit, each located under the body."""
    errors = [
        {"type": "value_error", "loc": ("body", *error.loc), "msg": error.msg}
        for error in [*graph_errors(definition), *template_errors_of(definition)]
    ]
    errors.extend(
        {"type": "less_than_equal", "loc": ("body", "nodes", i, "lookback_seconds"),
         "msg": f"lookback_seconds must be at most {max_lookback_seconds:g}, this "
                "deployment's limit (JOURNEYS_MAX_LOOKBACK_SECONDS)"}
        for i, node in enumerate(definition.nodes)
        if isinstance(node, WaitForEventNode) and node.lookback_seconds > max_lookback_seconds
    )  # fmt: skip
    if errors:
        raise RequestValidationError(errors)
    require_storable(definition.model_dump(), ("body",))
