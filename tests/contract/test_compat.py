"""The compatibility checker itself, on handmade pairs of old and new schemas.

The rule under test: a reader still running the old version must read every record the new
version writes, and a new reader every record already written. Adding an optional field to
an open object is the one change inside a record that keeps both true, because readers ignore
unknown fields. Adding an enum value or a union alternative is not: an old reader refuses the
record (a node `type` it does not know), or would have to act on a value it cannot interpret.
Such a change needs readers upgraded first, so the check flags it, and it ships only as a
reviewed entry of `contracts/schemas/published/accepted-changes.json`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from journeys_contracts.schemas import SCHEMAS_DIR
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


def test_adding_an_enum_value_breaks() -> None:
    problems = changed(lambda s: s["$defs"]["Node"]["properties"]["kind"]["enum"].append("X"))
    assert problems == ["$.node.kind: values ['X'] added, old readers refuse them (readers first)"]


def test_adding_a_const_alternative_breaks() -> None:
    def kinds(*values: str) -> dict[str, Any]:
        schema = event()
        schema["$defs"]["Node"]["properties"]["kind"] = {
            "anyOf": [{"const": v, "type": "string"} for v in values]
        }
        return schema

    assert breaking_changes(kinds("MESSAGE", "DELAY"), kinds("MESSAGE", "DELAY", "X")) == [
        "$.node.kind: alternative string:X added, old readers refuse it (readers first)"
    ]


def test_changing_a_description_or_a_title_is_compatible() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["description"] = "now documented"
        s["$defs"]["Node"]["title"] = "A node"

    assert changed(edit) == []


def test_relaxing_a_lower_bound_breaks() -> None:
    problems = changed(lambda s: s["properties"]["seq"].update(minimum=0))
    assert problems == ["$.seq: minimum 1 -> 0 relaxed, old readers refuse what it now allows"]


def test_removing_a_bound_breaks() -> None:
    problems = changed(lambda s: s["properties"]["seq"].pop("minimum"))
    assert problems == ["$.seq: minimum 1 -> None relaxed, old readers refuse what it now allows"]


def test_raising_an_upper_bound_breaks() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["$defs"]["Node"]["properties"]["id"]["maxLength"] = 500

    old = event()
    old["$defs"]["Node"]["properties"]["id"]["maxLength"] = 200
    new = copy.deepcopy(old)
    edit(new)
    assert breaking_changes(old, new) == [
        "$.node.id: maxLength 200 -> 500 relaxed, old readers refuse what it now allows"
    ]


def test_tightening_a_bound_breaks_records_already_written() -> None:
    problems = changed(lambda s: s["properties"]["seq"].update(minimum=2))
    assert problems == ["$.seq: minimum 1 -> 2 tightened, records already written may fail it"]


def test_adding_a_bound_breaks_records_already_written() -> None:
    problems = changed(lambda s: s["properties"]["seq"].update(maximum=10))
    assert problems == ["$.seq: maximum None -> 10 tightened, records already written may fail it"]


def test_changing_a_pattern_breaks() -> None:
    old = event()
    old["properties"]["runId"]["pattern"] = "^[0-9a-f-]+$"
    new = copy.deepcopy(old)
    new["properties"]["runId"]["pattern"] = "^.+$"
    assert breaking_changes(old, new) == [
        "$.runId: pattern '^[0-9a-f-]+$' -> '^.+$' changed, old readers and records already "
        "written may disagree with it"
    ]


def test_removing_a_pattern_breaks() -> None:
    old = event()
    old["properties"]["runId"]["pattern"] = "^[0-9a-f-]+$"
    new = copy.deepcopy(old)
    del new["properties"]["runId"]["pattern"]
    assert breaking_changes(old, new) == [
        "$.runId: pattern '^[0-9a-f-]+$' -> None relaxed, old readers refuse what it now allows"
    ]


def test_lowering_min_items_breaks() -> None:
    old = union("MESSAGE")
    old["minItems"] = 1
    new = copy.deepcopy(old)
    new["minItems"] = 0
    assert breaking_changes(old, new) == [
        "$: minItems 1 -> 0 relaxed, old readers refuse what it now allows"
    ]


def test_widening_an_integer_to_a_number_breaks() -> None:
    problems = changed(lambda s: s["properties"]["seq"].update(type="number"))
    assert problems == ["$.seq: type changed from ['integer'] to ['number']"]


def test_making_a_required_field_optional_breaks() -> None:
    problems = changed(lambda s: s["required"].remove("seq"))
    assert problems == ["$.seq: property no longer required, old readers require it"]


def test_opening_a_closed_object_breaks() -> None:
    problems = changed(lambda s: s["$defs"]["Node"].pop("additionalProperties"))
    assert problems == [
        "$.node: object opened, old readers refuse the properties it now allows (readers first)"
    ]


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
    assert problems == [
        "$.type: values ['x.happened.v1'] no longer allowed",
        "$.type: values ['x.happened.v2'] added, old readers refuse them (readers first)",
    ]


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


def test_adding_a_union_alternative_breaks() -> None:
    problems = breaking_changes(union("MESSAGE", "DELAY"), union("MESSAGE", "DELAY", "BRANCH"))
    assert problems == [
        "$[]: alternative object:BRANCH added, old readers refuse it (readers first)"
    ]


def test_adding_an_optional_field_to_a_nested_open_object_is_compatible() -> None:
    old = event()
    del old["$defs"]["Node"]["additionalProperties"]
    new = copy.deepcopy(old)
    new["$defs"]["Node"]["properties"]["label"] = NULLABLE_STRING
    assert breaking_changes(old, new) == []


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


def test_adding_an_optional_flag_with_a_default_is_compatible() -> None:
    """pydantic writes `flag: bool = False` as a typed property with a default, not required."""
    flag = {"default": False, "type": "boolean"}
    assert changed(lambda s: s["properties"].update(sealedTwin=flag)) == []


def test_adding_a_required_flag_breaks() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["properties"]["sealedTwin"] = {"type": "boolean"}
        s["required"].append("sealedTwin")

    assert changed(edit) == ["$.sealedTwin: property newly required"]


def test_sealed_twin_on_every_published_v1_event_is_an_additive_change() -> None:
    """Old readers of `journeys.events.v1` ignore `sealedTwin` and read a sealed run's clear
    copy as any run; new readers take its absence in records already written as `false`."""
    accepted = {
        change
        for entry in json.loads((SCHEMAS_DIR / "published" / "accepted-changes.json").read_text())
        for change in entry["changes"]
    }  # earlier reviewed changes (the definitions inside records opened)
    checked = 0
    for path in sorted((SCHEMAS_DIR / "published" / "v1" / "events").glob("*.v1.json")):
        published = json.loads(path.read_text())
        current = json.loads((SCHEMAS_DIR / "events" / path.name).read_text())
        if "seq" not in published["properties"]:  # not a run event (the erasure notice)
            continue
        if "sealedTwin" in published["properties"]:  # a type first published with it
            continue
        assert "sealedTwin" not in published["properties"], path.name
        assert current["properties"]["sealedTwin"] == {"default": False, "type": "boolean"}
        assert "sealedTwin" not in current.get("required", [])
        assert set(breaking_changes(published, current)) <= accepted, path.name
        checked += 1
    assert checked == 11
