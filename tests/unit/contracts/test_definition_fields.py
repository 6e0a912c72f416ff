"""Journey definitions as the API takes them (`StrictJourneyDefinition`), field by field: wrong
types, unknown fields and bad conditions name their location. Kafka readers use the tolerant
`JourneyDefinition`, which ignores unknown fields (tested last)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from journeys_contracts.definition import JourneyDefinition, StrictJourneyDefinition, graph_errors

# The documented example journey, verbatim: upstream systems already send exactly this.
HIP_REPLACEMENT_JOURNEY = """
{
  "name": "Hip replacement recovery",
  "start_node_id": "welcome",
  "nodes": [
    {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age_check"},
    {"id": "age_check", "type": "CONDITIONAL",
     "condition": {"field": "age", "operator": ">", "value": 65},
     "on_true_next_node_id": "wait", "on_false_next_node_id": null},
    {"id": "wait", "type": "DELAY", "duration_seconds": 86400, "next_node_id": "checkin"},
    {"id": "checkin", "type": "MESSAGE", "message": "How is your recovery going?", "next_node_id": null}
  ]
}
"""  # noqa: E501

MESSAGE = {"id": "a", "type": "MESSAGE", "message": "hi", "next_node_id": None}
DELAY = {"id": "a", "type": "DELAY", "duration_seconds": 5, "next_node_id": None}
CONDITIONAL = {"id": "a", "type": "CONDITIONAL", "on_true_next_node_id": None,
               "condition": {"field": "age", "operator": ">", "value": 1}}  # fmt: skip


def body(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "x", "start_node_id": "a", "nodes": list(nodes), **top}


def condition(operator: str, value: Any = None) -> dict[str, Any]:
    return {**CONDITIONAL, "condition": {"field": "age", "operator": operator, "value": value}}


def error_locs(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as raised:
        StrictJourneyDefinition.model_validate_json(json.dumps(data))
    return [tuple(e["loc"]) for e in raised.value.errors()]


def test_the_documented_example_journey_is_valid() -> None:
    definition = StrictJourneyDefinition.model_validate_json(HIP_REPLACEMENT_JOURNEY)
    assert graph_errors(definition) == []
    assert [n.type for n in definition.nodes] == ["MESSAGE", "CONDITIONAL", "DELAY", "MESSAGE"]


def test_the_example_published_in_the_json_schema_is_the_documented_one() -> None:
    (example,) = StrictJourneyDefinition.model_json_schema()["examples"]
    assert example == json.loads(HIP_REPLACEMENT_JOURNEY)


def test_next_node_ids_may_be_omitted_and_then_end_the_run() -> None:
    definition = StrictJourneyDefinition.model_validate(body({"id": "a", "type": "MESSAGE",
                                                        "message": "hi"}))  # fmt: skip
    assert definition.nodes[0].next_node_id is None


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (body(MESSAGE, name=7), ("name",)),
        (body(MESSAGE, name=""), ("name",)),
        (body(MESSAGE, start_node_id=None), ("start_node_id",)),
        (body(MESSAGE, start_node_id=1), ("start_node_id",)),
        (body(MESSAGE, nodes={"a": MESSAGE}), ("nodes",)),
        (body(), ("nodes",)),
        ({"name": "x", "nodes": [MESSAGE]}, ("start_node_id",)),
        (body(MESSAGE, owner="me"), ("owner",)),
        (body({**MESSAGE, "type": "EMAIL"}), ("nodes", 0)),
        (body({**MESSAGE, "id": ""}), ("nodes", 0, "MESSAGE", "id")),
        (body({**MESSAGE, "id": 3}), ("nodes", 0, "MESSAGE", "id")),
        (body({**MESSAGE, "message": 42}), ("nodes", 0, "MESSAGE", "message")),
        (body({**MESSAGE, "message": ""}), ("nodes", 0, "MESSAGE", "message")),
        (body({**MESSAGE, "next_node_id": 5}), ("nodes", 0, "MESSAGE", "next_node_id")),
        (body({**MESSAGE, "colour": "red"}), ("nodes", 0, "MESSAGE", "colour")),
        (body(MESSAGE, {**DELAY, "duration_seconds": "soon"}),
         ("nodes", 1, "DELAY", "duration_seconds")),
        (body({**DELAY, "duration_seconds": -1}), ("nodes", 0, "DELAY", "duration_seconds")),
        (body({**DELAY, "duration_seconds": None}), ("nodes", 0, "DELAY", "duration_seconds")),
        (body({k: v for k, v in DELAY.items() if k != "duration_seconds"}),
         ("nodes", 0, "DELAY", "duration_seconds")),
        (body({**DELAY, "message": "hi"}), ("nodes", 0, "DELAY", "message")),
        (body({**CONDITIONAL, "condition": None}), ("nodes", 0, "CONDITIONAL", "condition")),
        (body({**CONDITIONAL, "condition": {"field": "", "operator": "=="}}),
         ("nodes", 0, "CONDITIONAL", "condition", "field")),
        (body({**CONDITIONAL, "condition": {"operator": "=="}}),
         ("nodes", 0, "CONDITIONAL", "condition", "field")),
        (body({**CONDITIONAL, "next_node_id": "a"}), ("nodes", 0, "CONDITIONAL", "next_node_id")),
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_type_is_rejected_at_its_location(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    assert loc in error_locs(data)


@pytest.mark.parametrize(
    "duration",
    [pytest.param(True, id="boolean"), pytest.param("5", id="numeric-string")],
)
def test_duration_seconds_must_be_a_json_number(duration: Any) -> None:
    """A field of the wrong type is rejected, not coerced."""
    assert error_locs(body({**DELAY, "duration_seconds": duration})) == [
        ("nodes", 0, "DELAY", "duration_seconds")
    ]


def test_duration_seconds_accepts_integers_and_fractions() -> None:
    for seconds in (0, 1, 0.25, 86400):
        (node,) = StrictJourneyDefinition.model_validate(
            body({**DELAY, "duration_seconds": seconds})
        ).nodes
        assert node.type == "DELAY"
        assert node.duration_seconds == seconds


@pytest.mark.parametrize("operator", ["~", "=", "===", "like", "EQ", "between", ""])
def test_an_unknown_operator_is_rejected_at_the_operator(operator: str) -> None:
    assert error_locs(body(condition(operator, 1))) == [
        ("nodes", 0, "CONDITIONAL", "condition", "operator")
    ]


@pytest.mark.parametrize("operator", ["in", "not_in"])
@pytest.mark.parametrize("value", [None, "en", 1, {"en": 1}])
def test_in_and_not_in_need_a_list_value(operator: str, value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        StrictJourneyDefinition.model_validate(body(condition(operator, value)))
    (error,) = raised.value.errors()
    assert error["loc"] == ("nodes", 0, "CONDITIONAL", "condition")
    assert f"'{operator}' needs a list value" in error["msg"]


@pytest.mark.parametrize("value", ["yes", 2, [True], 0, 1, 0.0, 1.0])
def test_exists_takes_only_no_value_or_a_boolean(value: Any) -> None:
    assert error_locs(body(condition("exists", value))) == [
        ("nodes", 0, "CONDITIONAL", "condition")
    ]


@pytest.mark.parametrize("operator", [">", ">=", "<", "<=", "gt", "gte", "lt", "lte"])
@pytest.mark.parametrize("value", [None, True, [1], {"a": 1}])
def test_ordering_operators_need_a_number_or_string_value(operator: str, value: Any) -> None:
    assert error_locs(body(condition(operator, value))) == [
        ("nodes", 0, "CONDITIONAL", "condition")
    ]


@pytest.mark.parametrize(
    ("operator", "value"),
    [("==", None), ("eq", [1]), ("!=", {"a": 1}), ("ne", True), ("in", []), ("not_in", [1, "x"]),
     ("exists", None), ("exists", True), ("exists", False), ("contains", "hip"), ("gt", "m"),
     ("lte", 1.5)],
)  # fmt: skip
def test_every_operator_accepts_a_value_that_fits_it(operator: str, value: Any) -> None:
    definition = StrictJourneyDefinition.model_validate(body(condition(operator, value)))
    assert graph_errors(definition) == []


UNKNOWN_FIELDS = [
    (body(MESSAGE, owner="me"), ("owner",)),
    (body({**MESSAGE, "colour": "red"}), ("nodes", 0, "MESSAGE", "colour")),
    (body({**DELAY, "jitter": 1}), ("nodes", 0, "DELAY", "jitter")),
    (body({**CONDITIONAL, "label": "x"}), ("nodes", 0, "CONDITIONAL", "label")),
    (body({**CONDITIONAL, "condition": {**CONDITIONAL["condition"], "tz": "UTC"}}),
     ("nodes", 0, "CONDITIONAL", "condition", "tz")),
]  # fmt: skip


@pytest.mark.parametrize(("data", "loc"), UNKNOWN_FIELDS)
def test_the_api_refuses_an_unknown_field_at_every_level(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    assert error_locs(data) == [loc]


@pytest.mark.parametrize(("data", "loc"), UNKNOWN_FIELDS)
def test_kafka_readers_ignore_an_unknown_field_at_every_level(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    tolerant = JourneyDefinition.model_validate(data)

    assert f'"{loc[-1]}"' not in tolerant.model_dump_json()
    assert graph_errors(tolerant) == []


def test_a_strict_definition_is_a_definition() -> None:
    strict = StrictJourneyDefinition.model_validate(json.loads(HIP_REPLACEMENT_JOURNEY))

    assert isinstance(strict, JourneyDefinition)
    tolerant = JourneyDefinition.model_validate_json(HIP_REPLACEMENT_JOURNEY)
    assert JourneyDefinition.model_validate(strict.model_dump()) == tolerant
