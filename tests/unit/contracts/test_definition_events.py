"""Journey definitions that react to patient events: `triggers`, `reentry`, `exit_on` and the
`WAIT_FOR_EVENT` node, as the API takes them (strict) and as Kafka readers read them (tolerant),
and the graph rules they change (a wait breaks a cycle, its two branches are edges)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from journeys_contracts import schemas
from journeys_contracts.definition import (
    MAX_WAIT_SECONDS,
    JourneyDefinition,
    StrictJourneyDefinition,
    WaitForEventNode,
    graph_errors,
    successors,
)

MESSAGE = {"id": "a", "type": "MESSAGE", "message": "hi", "next_node_id": None}
WAIT = {"id": "a", "type": "WAIT_FOR_EVENT", "event": "intake_form.submitted",
        "timeout_seconds": 172800, "on_event_next_node_id": None,
        "on_timeout_next_node_id": None}  # fmt: skip
WAIT_LOC = ("nodes", 0, "WAIT_FOR_EVENT")
BOOKED = {"event": "appointment.booked"}
CLINIC = {"field": "event.data.clinicId", "operator": "==", "value": "c-1"}
BODY_SCHEMA = Draft202012Validator(
    json.loads((schemas.SCHEMAS_DIR / "definition" / "journey-definition.v1.json").read_text())
)


def body(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "x", "start_node_id": "a", "nodes": list(nodes or [MESSAGE]), **top}


def wait(node_id: str = "a", on_event: str | None = None, on_timeout: str | None = None,
         **fields: Any) -> dict[str, Any]:  # fmt: skip
    return {**WAIT, "id": node_id, "on_event_next_node_id": on_event,
            "on_timeout_next_node_id": on_timeout, **fields}  # fmt: skip


def msg(node_id: str, nxt: str | None = None) -> dict[str, Any]:
    return {**MESSAGE, "id": node_id, "next_node_id": nxt}


def cond(node_id: str, yes: str | None, no: str | None) -> dict[str, Any]:
    return {"id": node_id, "type": "CONDITIONAL", "on_true_next_node_id": yes,
            "on_false_next_node_id": no,
            "condition": {"field": "age", "operator": ">", "value": 1}}  # fmt: skip


def delay(node_id: str, nxt: str | None, seconds: float = 5) -> dict[str, Any]:
    return {"id": node_id, "type": "DELAY", "duration_seconds": seconds, "next_node_id": nxt}


def strict(data: dict[str, Any]) -> StrictJourneyDefinition:
    """Parsed from JSON, as the API parses a request body."""
    return StrictJourneyDefinition.model_validate_json(json.dumps(data))


def error_locs(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as raised:
        strict(data)
    return [tuple(e["loc"]) for e in raised.value.errors()]


def graph(*nodes: dict[str, Any]) -> JourneyDefinition:
    return JourneyDefinition.model_validate(body(*nodes))


# --- WAIT_FOR_EVENT -------------------------------------------------------------------------


def test_a_wait_for_event_node_with_both_branches_null_is_a_whole_journey() -> None:
    definition = strict(body(WAIT))

    (node,) = definition.nodes
    assert isinstance(node, WaitForEventNode)
    assert (node.event, node.timeout_seconds, node.when) == ("intake_form.submitted", 172800, None)
    assert graph_errors(definition) == []


def test_lookback_seconds_defaults_to_zero() -> None:
    (node,) = strict(body(WAIT)).nodes
    assert isinstance(node, WaitForEventNode)
    assert node.lookback_seconds == 0


@pytest.mark.parametrize(
    "timeout",
    [0, -1, -0.5, None, True, "60", MAX_WAIT_SECONDS + 1],
    ids=["zero", "negative", "negative-fraction", "null", "boolean", "numeric-string", "above-max"],
)
def test_wait_for_event_needs_a_positive_numeric_timeout(timeout: Any) -> None:
    assert error_locs(body(wait(timeout_seconds=timeout))) == [(*WAIT_LOC, "timeout_seconds")]


def test_wait_for_event_without_a_timeout_is_refused_at_the_timeout() -> None:
    node = {k: v for k, v in WAIT.items() if k != "timeout_seconds"}
    assert error_locs(body(node)) == [(*WAIT_LOC, "timeout_seconds")]


@pytest.mark.parametrize("timeout", [0.001, 1, 172800.5, MAX_WAIT_SECONDS])
def test_wait_for_event_accepts_any_positive_timeout_up_to_the_maximum(timeout: float) -> None:
    (node,) = strict(body(wait(timeout_seconds=timeout))).nodes
    assert isinstance(node, WaitForEventNode)
    assert node.timeout_seconds == timeout


@pytest.mark.parametrize("branch", ["on_event_next_node_id", "on_timeout_next_node_id"])
def test_wait_for_event_without_a_branch_key_is_refused_at_that_branch(branch: str) -> None:
    """A missing branch is a client's mistake; only an explicit null ends the run there."""
    node = {k: v for k, v in WAIT.items() if k != branch}
    assert error_locs(body(node)) == [(*WAIT_LOC, branch)]


def test_the_tolerant_model_requires_both_branch_keys_too() -> None:
    node = {k: v for k, v in WAIT.items() if k != "on_timeout_next_node_id"}
    with pytest.raises(ValidationError):
        JourneyDefinition.model_validate(body(node))


@pytest.mark.parametrize(
    "lookback",
    [-1, -0.001, None, True, "0", MAX_WAIT_SECONDS + 1],
    ids=["negative", "negative-fraction", "null", "boolean", "numeric-string", "above-max"],
)
def test_lookback_seconds_must_be_a_number_not_below_zero(lookback: Any) -> None:
    assert error_locs(body(wait(lookback_seconds=lookback))) == [(*WAIT_LOC, "lookback_seconds")]


@pytest.mark.parametrize("lookback", [0, 0.5, 604800, MAX_WAIT_SECONDS])
def test_lookback_seconds_accepts_zero_and_more(lookback: float) -> None:
    (node,) = strict(body(wait(lookback_seconds=lookback))).nodes
    assert isinstance(node, WaitForEventNode)
    assert node.lookback_seconds == lookback


def test_a_wait_may_match_on_a_condition_over_the_event() -> None:
    (node,) = strict(body(wait(when=CLINIC))).nodes
    assert isinstance(node, WaitForEventNode)
    assert node.when is not None
    assert (node.when.field, node.when.operator, node.when.value) == ("event.data.clinicId",
                                                                      "==", "c-1")  # fmt: skip


# --- event types ----------------------------------------------------------------------------

GOOD_TYPES = ["appointment.booked", "intake_form.submitted", "lab-result.v2", "a", "0"]
BAD_TYPES = ["Appointment.Booked", "appointment booked", "", "appt/booked", "café.opened",
             "a" * 201, 7, None]  # fmt: skip


def placed(event_type: Any) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
    """The three places an event type is named, and where an error there is located."""
    return [
        (body(triggers=[{"event": event_type}]), ("triggers", 0, "event")),
        (body(exit_on=[BOOKED, {"event": event_type}]), ("exit_on", 1, "event")),
        (body(wait(event=event_type)), (*WAIT_LOC, "event")),
    ]


@pytest.mark.parametrize("event_type", GOOD_TYPES)
def test_an_event_type_of_lowercase_letters_digits_dots_dashes_and_underscores_is_accepted(
    event_type: str,
) -> None:
    for data, _ in placed(event_type):
        assert graph_errors(strict(data)) == []
        assert BODY_SCHEMA.is_valid(data)


@pytest.mark.parametrize("event_type", BAD_TYPES, ids=repr)
def test_any_other_event_type_is_refused_where_it_is_named(event_type: Any) -> None:
    for data, loc in placed(event_type):
        assert error_locs(data) == [loc]
        assert not BODY_SCHEMA.is_valid(data), loc


def test_an_event_type_with_a_trailing_newline_is_refused() -> None:
    """The pattern's `$` ends the text, as in JSON Schema's ECMA-262 dialect. (Python's `re`,
    which the `jsonschema` package uses, lets `$` match before a final newline, so that package
    alone accepts this one against the published schema.)"""
    for data, loc in placed("appointment.booked\n"):
        assert error_locs(data) == [loc]


def test_kafka_readers_refuse_a_bad_event_type_too() -> None:
    """Tolerance is for unknown fields; a known field's value is checked everywhere."""
    with pytest.raises(ValidationError):
        JourneyDefinition.model_validate(body(triggers=[{"event": "Appointment.Booked"}]))


# --- triggers, reentry, exit_on -------------------------------------------------------------


def test_a_definition_without_triggers_or_exits_keeps_its_meaning() -> None:
    definition = strict(body())
    assert (definition.triggers, definition.reentry, definition.exit_on) == ([], "if_not_active",
                                                                           [])  # fmt: skip


def test_triggers_and_exits_match_an_event_type_and_an_optional_condition() -> None:
    definition = strict(body(triggers=[{**BOOKED, "when": CLINIC}],
                             exit_on=[{"event": "appointment.cancelled"}]))  # fmt: skip

    (trigger,) = definition.triggers
    (exit_on,) = definition.exit_on
    assert (trigger.event, trigger.when and trigger.when.value) == ("appointment.booked", "c-1")
    assert (exit_on.event, exit_on.when) == ("appointment.cancelled", None)


@pytest.mark.parametrize("reentry", ["always", "if_not_active", "once"])
def test_reentry_takes_the_three_documented_values(reentry: str) -> None:
    assert strict(body(triggers=[BOOKED], reentry=reentry)).reentry == reentry


@pytest.mark.parametrize("reentry", ["never", "ALWAYS", "if-not-active", "", None, True, 1])
def test_any_other_reentry_is_refused_at_reentry(reentry: Any) -> None:
    assert error_locs(body(reentry=reentry)) == [("reentry",)]


CONDITION_PLACES = {
    "trigger": (lambda when: body(triggers=[{**BOOKED, "when": when}]),
                ("triggers", 0, "when")),
    "exit": (lambda when: body(exit_on=[{**BOOKED, "when": when}]), ("exit_on", 0, "when")),
    "wait": (lambda when: body(wait(when=when)), (*WAIT_LOC, "when")),
}  # fmt: skip


@pytest.mark.parametrize("operator", ["~", "=", "===", "like", "EQ", "between", ""])
@pytest.mark.parametrize("place", CONDITION_PLACES)
def test_an_unknown_operator_in_an_event_condition_is_refused_at_the_operator(
    operator: str, place: str
) -> None:
    build, loc = CONDITION_PLACES[place]
    assert error_locs(build({**CLINIC, "operator": operator})) == [(*loc, "operator")]


def test_an_event_condition_keeps_the_operator_value_rules() -> None:
    with pytest.raises(ValidationError) as raised:
        strict(body(triggers=[{**BOOKED, "when": {**CLINIC, "operator": "in", "value": "c-1"}}]))
    (error,) = raised.value.errors()
    assert error["loc"] == ("triggers", 0, "when")
    assert "'in' needs a list value" in error["msg"]


@pytest.mark.parametrize("field", ["triggers", "exit_on"])
def test_at_most_fifty_triggers_and_exits(field: str) -> None:
    assert strict(body(**{field: [BOOKED] * 50}))
    assert error_locs(body(**{field: [BOOKED] * 51})) == [(field,)]


# --- unknown fields: strict at the edge, tolerant inside ------------------------------------

UNKNOWN_FIELDS = [
    (body(triggers=[{**BOOKED, "source": "ehr"}]), ("triggers", 0, "source")),
    (body(triggers=[{**BOOKED, "when": {**CLINIC, "tz": "UTC"}}]), ("triggers", 0, "when", "tz")),
    (body(exit_on=[{**BOOKED, "priority": 1}]), ("exit_on", 0, "priority")),
    (body(wait(retries=3)), (*WAIT_LOC, "retries")),
    (body(wait(when={**CLINIC, "tz": "UTC"})), (*WAIT_LOC, "when", "tz")),
]  # fmt: skip


@pytest.mark.parametrize(("data", "loc"), UNKNOWN_FIELDS)
def test_the_api_refuses_an_unknown_field_of_an_event_match_or_wait(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    assert error_locs(data) == [loc]
    assert not BODY_SCHEMA.is_valid(data)


@pytest.mark.parametrize(("data", "loc"), UNKNOWN_FIELDS)
def test_kafka_readers_ignore_an_unknown_field_of_an_event_match_or_wait(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    tolerant = JourneyDefinition.model_validate(data)

    assert f'"{loc[-1]}"' not in tolerant.model_dump_json()
    assert graph_errors(tolerant) == []


def test_a_strict_definition_with_events_reads_back_as_the_tolerant_one() -> None:
    data = body(wait(when=CLINIC, lookback_seconds=3600), triggers=[{**BOOKED, "when": CLINIC}],
                reentry="once", exit_on=[{"event": "appointment.cancelled"}])  # fmt: skip
    definition = strict(data)

    assert isinstance(definition, JourneyDefinition)
    assert JourneyDefinition.model_validate(definition.model_dump()) == (
        JourneyDefinition.model_validate(data)
    )


# --- the graph ------------------------------------------------------------------------------


def test_a_wait_has_an_edge_per_branch_that_names_a_node() -> None:
    both = WaitForEventNode.model_validate(wait("w", on_event="thanks", on_timeout="remind"))
    event_only = WaitForEventNode.model_validate(wait("w", on_event="thanks"))
    timeout_only = WaitForEventNode.model_validate(wait("w", on_timeout="remind"))
    neither = WaitForEventNode.model_validate(wait("w"))

    assert list(successors(both)) == [("on_event_next_node_id", "thanks"),
                                      ("on_timeout_next_node_id", "remind")]  # fmt: skip
    assert list(successors(event_only)) == [("on_event_next_node_id", "thanks")]
    assert list(successors(timeout_only)) == [("on_timeout_next_node_id", "remind")]
    assert list(successors(neither)) == []


@pytest.mark.parametrize("branch", ["on_event_next_node_id", "on_timeout_next_node_id"])
def test_a_wait_branch_pointing_nowhere_is_located_at_that_branch(branch: str) -> None:
    (error,) = graph_errors(graph({**WAIT, branch: "ghost"}))
    assert error.loc == ("nodes", 0, branch)
    assert "'ghost'" in error.msg


def test_a_node_reachable_only_through_the_timeout_branch_is_reachable() -> None:
    assert graph_errors(graph(wait("a", on_timeout="remind"), msg("remind"))) == []


def test_a_cycle_through_a_wait_for_event_is_accepted() -> None:
    """Remind, wait up to 48 h for the form, remind again if it does not come."""
    nodes = (msg("a", "w"), wait("w", on_event="thanks", on_timeout="a"), msg("thanks"))
    assert graph_errors(graph(*nodes)) == []


def test_a_wait_for_event_may_loop_on_itself() -> None:
    assert graph_errors(graph(msg("a", "w"), wait("w", on_event="w", on_timeout="w"))) == []


def test_a_cycle_through_the_event_branch_of_a_wait_is_accepted() -> None:
    nodes = (wait("a", on_event="b"), cond("b", "a", None))
    assert graph_errors(graph(*nodes)) == []


def test_a_cycle_with_neither_a_delay_nor_a_wait_is_refused_naming_both() -> None:
    (error,) = graph_errors(graph(msg("a", "b"), cond("b", "a", None)))

    assert error.loc == ("nodes", 0, "id")
    assert error.msg == (
        "cycle a -> b -> a can loop without passing a DELAY with duration_seconds > 0 "
        "or a WAIT_FOR_EVENT"
    )


def test_a_cycle_through_a_zero_second_delay_beside_a_wait_is_still_refused() -> None:
    nodes = (wait("a", on_event="b", on_timeout=None), msg("b", "z"), delay("z", "b", seconds=0))
    (error,) = graph_errors(graph(*nodes))
    assert "b -> z -> b" in error.msg
    assert error.loc == ("nodes", 1, "id")


def test_the_documented_patient_event_journey_is_valid_as_pasted() -> None:
    readme = (schemas.SCHEMAS_DIR.parent / "README.md").read_text()
    block = readme.split("**In a journey.**", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    data = json.loads(block)

    definition = strict(data)

    assert graph_errors(definition) == []
    assert BODY_SCHEMA.is_valid(data)
    assert [t.event for t in definition.triggers] == ["appointment.booked"]
    assert [e.event for e in definition.exit_on] == ["appointment.cancelled"]
    assert {n.type for n in definition.nodes} == {"MESSAGE", "WAIT_FOR_EVENT"}
