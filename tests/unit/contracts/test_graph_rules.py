"""Journey definitions: every graph rule (unique ids, resolving references, reachability, a
DELAY on every cycle), located and named."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_contracts.definition import JourneyDefinition, graph_errors


def definition(*nodes: dict[str, Any], start: str = "a") -> JourneyDefinition:
    return JourneyDefinition.model_validate({"name": "x", "start_node_id": start,
                                             "nodes": list(nodes)})  # fmt: skip


def msg(node_id: str, nxt: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "MESSAGE", "message": "hi", "next_node_id": nxt}


def delay(node_id: str, nxt: str | None, seconds: float = 5) -> dict[str, Any]:
    return {"id": node_id, "type": "DELAY", "duration_seconds": seconds, "next_node_id": nxt}


def cond(node_id: str, yes: str | None, no: str | None) -> dict[str, Any]:
    return {"id": node_id, "type": "CONDITIONAL", "on_true_next_node_id": yes,
            "on_false_next_node_id": no,
            "condition": {"field": "age", "operator": ">", "value": 1}}  # fmt: skip


def test_a_sound_graph_has_no_errors() -> None:
    assert graph_errors(definition(msg("a", "c"), cond("c", "d", None), delay("d", None))) == []


def test_a_single_message_is_a_whole_journey() -> None:
    assert graph_errors(definition(msg("a"))) == []


def test_the_start_node_need_not_come_first() -> None:
    assert graph_errors(definition(msg("b"), msg("a", "b"), start="a")) == []


def test_branches_may_merge_again() -> None:
    nodes = (cond("a", "b", "c"), msg("b", "d"), delay("c", "d", seconds=0), msg("d"))
    assert graph_errors(definition(*nodes)) == []


def test_repeated_node_ids_are_named_at_the_second_occurrence() -> None:
    (error,) = graph_errors(definition(msg("a", "a2"), msg("a2"), msg("a2")))
    assert error.loc == ("nodes", 2, "id")
    assert "'a2'" in error.msg
    assert "nodes[1]" in error.msg


def test_every_repetition_of_an_id_is_reported() -> None:
    errors = graph_errors(definition(msg("a"), msg("a"), delay("a", None)))
    assert [e.loc for e in errors] == [("nodes", 1, "id"), ("nodes", 2, "id")]
    assert all("'a'" in e.msg and "nodes[0]" in e.msg for e in errors)


def test_start_node_id_pointing_nowhere_is_located_at_start_node_id() -> None:
    (error,) = graph_errors(definition(msg("a"), start="nope"))
    assert error.loc == ("start_node_id",)
    assert "'nope'" in error.msg


@pytest.mark.parametrize(
    ("nodes", "loc"),
    [
        ([msg("a", "ghost")], ("nodes", 0, "next_node_id")),
        ([msg("a", "w"), delay("w", "ghost")], ("nodes", 1, "next_node_id")),
        ([cond("a", "ghost", None)], ("nodes", 0, "on_true_next_node_id")),
        ([cond("a", None, "ghost")], ("nodes", 0, "on_false_next_node_id")),
    ],
)
def test_next_node_ids_pointing_nowhere_are_located_at_their_field(
    nodes: list[dict[str, Any]], loc: tuple[Any, ...]
) -> None:
    (error,) = graph_errors(definition(*nodes))
    assert error.loc == loc
    assert "'ghost'" in error.msg


def test_every_dangling_reference_is_reported_together() -> None:
    errors = graph_errors(definition(cond("a", "x", "y"), start="z"))
    assert {e.loc for e in errors} == {
        ("start_node_id",),
        ("nodes", 0, "on_true_next_node_id"),
        ("nodes", 0, "on_false_next_node_id"),
    }


def test_an_unreachable_node_is_named() -> None:
    (error,) = graph_errors(definition(msg("a"), msg("island")))
    assert error.loc == ("nodes", 1, "id")
    assert "'island' is unreachable" in error.msg
    assert "'a'" in error.msg


def test_every_unreachable_node_is_named_even_when_they_point_at_each_other() -> None:
    errors = graph_errors(definition(msg("a"), msg("x", "y"), delay("y", "a")))
    assert [e.loc for e in errors] == [("nodes", 1, "id"), ("nodes", 2, "id")]
    assert "'x'" in errors[0].msg
    assert "'y'" in errors[1].msg


def test_a_node_reachable_only_through_a_false_branch_is_reachable() -> None:
    assert graph_errors(definition(cond("a", None, "b"), msg("b"))) == []


def test_a_cycle_without_a_delay_is_rejected_and_shown() -> None:
    (error,) = graph_errors(definition(msg("a", "b"), cond("b", "a", None)))
    assert error.loc == ("nodes", 0, "id")
    assert "a -> b -> a" in error.msg
    assert "DELAY" in error.msg


def test_a_message_pointing_at_itself_is_a_cycle_without_a_delay() -> None:
    (error,) = graph_errors(definition(msg("a", "a")))
    assert "a -> a" in error.msg


def test_a_conditional_pointing_at_itself_is_a_cycle_without_a_delay() -> None:
    (error,) = graph_errors(definition(cond("a", None, "a")))
    assert "a -> a" in error.msg


def test_a_cycle_through_a_zero_second_delay_is_still_rejected() -> None:
    (error,) = graph_errors(definition(msg("a", "w"), delay("w", "a", seconds=0)))
    assert "a -> w -> a" in error.msg


def test_a_cycle_through_a_positive_delay_is_accepted() -> None:
    assert graph_errors(definition(msg("a", "w"), delay("w", "c"), cond("c", "a", None))) == []


def test_a_positive_delay_may_loop_on_itself() -> None:
    assert graph_errors(definition(msg("a", "w"), delay("w", "w"))) == []


def test_a_fractional_positive_delay_breaks_a_cycle() -> None:
    assert graph_errors(definition(msg("a", "w"), delay("w", "a", seconds=0.001))) == []


def test_a_delay_free_cycle_beside_a_delayed_one_is_still_found() -> None:
    nodes = (cond("a", "w", "b"), delay("w", "a"), msg("b", "c"), cond("c", "b", None))
    (error,) = graph_errors(definition(*nodes))
    assert "b -> c -> b" in error.msg
    assert error.loc == ("nodes", 2, "id")


def test_a_delay_free_cycle_closed_by_both_branches_is_reported_once() -> None:
    """One broken rule, one error: a 422 listing the same cycle twice is not precise."""
    (error,) = graph_errors(definition(msg("a", "b"), cond("b", "a", "a")))
    assert "a -> b -> a" in error.msg


def test_a_dangling_reference_is_reported_even_beside_other_broken_rules() -> None:
    errors = graph_errors(definition(msg("a", "a"), msg("island", "ghost")))
    assert ("nodes", 1, "next_node_id") in [e.loc for e in errors]
