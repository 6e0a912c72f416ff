"""Property tests of the graph rules against an independent, deliberately naive oracle."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from journeys_contracts.definition import (
    ConditionalNode,
    DelayNode,
    JourneyDefinition,
    MessageNode,
    graph_errors,
)
from tests.unit.contracts.strategies import arbitrary_graphs, journeys, json_values

Node = MessageNode | DelayNode | ConditionalNode


def targets(node: Node) -> list[str]:
    if isinstance(node, ConditionalNode):
        found = [node.on_true_next_node_id, node.on_false_next_node_id]
    else:
        found = [node.next_node_id]
    return [t for t in found if t is not None]


def closure(edges: dict[str, list[str]], sources: list[str]) -> set[str]:
    """Every node reachable in one or more steps from `sources`."""
    reached: set[str] = set()
    frontier = [t for s in sources for t in edges[s]]
    while frontier:
        node = frontier.pop()
        if node not in reached:
            reached.add(node)
            frontier.extend(edges[node])
    return reached


def oracle_accepts(definition: JourneyDefinition) -> bool:
    """The graph rules, read literally: unique ids, no dangling reference, all reachable,
    and no node that can come back to itself without leaving a positive DELAY."""
    ids = [n.id for n in definition.nodes]
    if len(set(ids)) != len(ids) or definition.start_node_id not in ids:
        return False
    edges = {n.id: targets(n) for n in definition.nodes}
    if any(t not in edges for ts in edges.values() for t in ts):
        return False
    if closure(edges, [definition.start_node_id]) | {definition.start_node_id} != set(ids):
        return False
    waiting = {n.id for n in definition.nodes if isinstance(n, DelayNode) and n.duration_seconds}
    cut = {node: [] if node in waiting else out for node, out in edges.items()}
    return all(node not in closure(cut, [node]) for node in ids)


@settings(max_examples=150, deadline=None)
@given(journeys())
def test_every_generated_valid_journey_is_accepted(definition: JourneyDefinition) -> None:
    assert oracle_accepts(definition)
    assert graph_errors(definition) == []


@settings(max_examples=250, deadline=None)
@given(arbitrary_graphs())
def test_graph_errors_never_raises_and_accepts_exactly_the_sound_graphs(
    definition: JourneyDefinition,
) -> None:
    errors = graph_errors(definition)
    assert (errors == []) == oracle_accepts(definition)


@settings(max_examples=150, deadline=None)
@given(arbitrary_graphs())
def test_every_graph_error_points_at_a_real_field_and_names_an_id(
    definition: JourneyDefinition,
) -> None:
    for error in graph_errors(definition):
        if error.loc == ("start_node_id",):
            assert f"'{definition.start_node_id}'" in error.msg
            continue
        nodes, index, field = error.loc
        assert nodes == "nodes"
        assert isinstance(index, int)
        node = definition.nodes[index]
        assert field in type(node).model_fields
        named = getattr(node, field)
        assert f"'{named}'" in error.msg or f"cycle {named} -> " in error.msg


nodes_of_any_shape = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "type", "message", "next_node_id", "duration_seconds",
                         "condition", "on_true_next_node_id", "on_false_next_node_id"]),
        st.one_of(json_values, st.sampled_from(["MESSAGE", "DELAY", "CONDITIONAL", "a"]),
                  st.fixed_dictionaries({"field": st.just("age"),
                                         "operator": st.sampled_from(["==", "in", "~"]),
                                         "value": json_values})),
    ),
    max_size=4,
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(nodes=nodes_of_any_shape, start=json_values)
def test_any_json_body_is_either_a_definition_or_a_validation_error(
    nodes: list[dict[str, Any]], start: Any
) -> None:
    try:
        definition = JourneyDefinition.model_validate(
            {"name": "x", "start_node_id": start, "nodes": nodes}
        )
    except ValidationError:
        return
    graph_errors(definition)
