"""The compatibility checker itself, on handmade pairs of old and new schemas."""

from __future__ import annotations

import copy
from typing import Any

from tests.contract.compat import breaking_changes

NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def event(**extra: Any) -> dict[str, Any]:
    """A small event schema shaped like pydantic's output: a $ref, an enum, an optional field."""
    schema: dict[str, Any] = {
        "$defs": {
            "Node": {
                "type": "object",
                "title": "Node",
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"type": "string", "enum": ["MESSAGE", "DELAY"]},
                },
                "required": ["id", "kind"],
            }
        },
        "type": "object",
        "properties": {
            "type": {"const": "x.happened.v1", "type": "string"},
            "runId": {"type": "string", "format": "uuid"},
            "seq": {"type": "integer", "minimum": 1},
            "note": NULLABLE_STRING,
            "node": {"$ref": "#/$defs/Node"},
        },
        "required": ["type", "runId", "seq", "node"],
    }
    schema.update(extra)
    return schema


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(event())
    edit(new)
    return breaking_changes(event(), new)


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(event(), event()) == []


def test_adding_an_optional_field_is_compatible() -> None:
    assert changed(lambda s: s["properties"].update(channel=NULLABLE_STRING)) == []


def test_adding_an_enum_value_is_compatible() -> None:
    assert changed(lambda s: s["$defs"]["Node"]["properties"]["kind"]["enum"].append("X")) == []


def test_relaxing_a_constraint_or_a_description_is_compatible() -> None:
    def edit(s: dict[str, Any]) -> None:
        del s["properties"]["seq"]["minimum"]
        s["description"] = "now documented"

    assert changed(edit) == []


def test_removing_a_field_breaks() -> None:
    assert changed(lambda s: s["properties"].pop("note")) == ["$.note: property removed"]


def test_making_an_optional_field_required_breaks() -> None:
    assert changed(lambda s: s["required"].append("note")) == ["$.note: property newly required"]


def test_adding_a_required_field_breaks() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["properties"]["channel"] = {"type": "string"}
        s["required"].append("channel")

    assert changed(edit) == ["$.channel: property newly required"]


def test_changing_a_type_breaks() -> None:
    problems = changed(lambda s: s["properties"]["seq"].update(type="string"))
    assert problems == ["$.seq: type changed from ['integer'] to ['string']"]


def test_making_a_field_nullable_breaks() -> None:
    problems = changed(lambda s: s["properties"].update(seq=NULLABLE_STRING))
    assert problems == ["$.seq: type changed from ['integer'] to ['null', 'string']"]


def test_making_an_optional_field_non_nullable_breaks() -> None:
    problems = changed(lambda s: s["properties"].update(note={"type": "string"}))
    assert problems == ["$.note: type changed from ['null', 'string'] to ['string']"]


def test_changing_a_format_breaks() -> None:
    problems = changed(lambda s: s["properties"]["runId"].pop("format"))
    assert problems == ["$.runId: format changed from uuid to None"]


def test_changing_a_const_breaks() -> None:
    problems = changed(lambda s: s["properties"]["type"].update(const="x.happened.v2"))
    assert problems == ["$.type: values ['x.happened.v1'] no longer allowed"]


def test_removing_an_enum_value_breaks_inside_a_ref() -> None:
    problems = changed(lambda s: s["$defs"]["Node"]["properties"]["kind"]["enum"].remove("DELAY"))
    assert problems == ["$.node.kind: values ['DELAY'] no longer allowed"]


def test_adding_a_property_to_a_closed_object_breaks() -> None:
    problems = changed(lambda s: s["$defs"]["Node"]["properties"].update(label={"type": "string"}))
    assert problems == [
        "$.node.label: property added to a closed object (additionalProperties: false), "
        "old readers reject it"
    ]


def test_closing_an_open_object_breaks() -> None:
    problems = changed(lambda s: s.update(additionalProperties=False))
    assert problems == ["$: object closed (additionalProperties: false)"]


def test_narrowing_free_form_values_breaks() -> None:
    old = {"type": "object", "additionalProperties": True}
    new = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert breaking_changes(old, new) == ["$.*: type changed from ['any'] to ['integer']"]


def union(*tags: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "oneOf": [
                {"type": "object", "properties": {"type": {"const": tag, "type": "string"}}}
                for tag in tags
            ]
        },
    }


def test_adding_a_union_alternative_is_compatible() -> None:
    assert breaking_changes(union("MESSAGE", "DELAY"), union("MESSAGE", "DELAY", "BRANCH")) == []


def test_removing_a_union_alternative_breaks() -> None:
    problems = breaking_changes(union("MESSAGE", "DELAY"), union("MESSAGE"))
    assert problems == ["$[]: alternative object:DELAY removed"]


def test_recursive_schemas_terminate() -> None:
    tree = {
        "$defs": {
            "Tree": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
            }
        },
        "$ref": "#/$defs/Tree",
    }
    assert breaking_changes(tree, copy.deepcopy(tree)) == []
