"""Hypothesis strategies: patient contexts, conditions, valid journeys and arbitrary graphs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from journeys_contracts.definition import JourneyDefinition

KEYS = ["age", "language", "tags", "address", "zip", "flag", "score", "note", "empty", "patient"]
FIELDS = [
    "age", "patient.age", "language", "patient.language", "address.zip", "patient.address.zip",
    "tags", "flag", "score", "note", "empty", "address", "patient", "missing", "patient.missing",
    "address.missing", "age.zip",
]  # fmt: skip
OPERATORS = ["==", "!=", ">", ">=", "<", "<=", "eq", "ne", "gt", "gte", "lt", "lte",
             "in", "not_in", "exists", "contains"]  # fmt: skip
DURATIONS = st.sampled_from([0, 0.5, 1, 60, 3600, 86400, 30 * 86400])
ORDERING = ["<", "<=", ">", ">=", "lt", "lte", "gt", "gte"]

numbers = st.one_of(
    st.integers(-5, 130), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.sampled_from(["en", "fr", "94110", "cardiac", "hip_replacement", "zip", "age", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)


def _typical(key: str) -> st.SearchStrategy[Any]:
    typical: dict[str, st.SearchStrategy[Any]] = {
        "age": st.integers(0, 110),
        "language": st.sampled_from(["en", "fr", "es"]),
        "tags": st.lists(st.sampled_from(["cardiac", "diabetic", 1, True]), max_size=3),
        "address": st.fixed_dictionaries({}, optional={"zip": st.sampled_from(["94110", "1"])}),
        "patient": st.fixed_dictionaries(
            {}, optional={"age": st.integers(0, 110), "language": st.just("en")}
        ),
        "flag": st.booleans(),
        "score": numbers,
        "note": st.sampled_from(["hip_replacement", "knee", ""]),
        "empty": st.none(),
    }
    return typical.get(key, json_values)


# A patient context: mostly well-typed values, sometimes anything JSON can hold.
contexts: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"id": st.just("p-1")},
    optional={key: st.one_of(_typical(key), _typical(key), json_values) for key in KEYS},
)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    """A condition that passes validation: the value always fits its operator."""
    operator = draw(st.sampled_from(OPERATORS))
    if operator in ("in", "not_in"):
        value: Any = draw(st.lists(scalars, max_size=4))
    elif operator == "exists":
        value = draw(st.sampled_from([None, True, False]))
    elif operator in ORDERING:
        value = draw(st.one_of(numbers, st.sampled_from(["en", "fr", "94110", "m"])))
    else:
        value = draw(json_values)
    return {"field": draw(st.sampled_from(FIELDS)), "operator": operator, "value": value}


def _node(kind: str, node_id: str, value: Any, targets: list[str | None]) -> dict[str, Any]:
    if kind == "MESSAGE":
        return {"id": node_id, "type": kind, "message": f"to {node_id}", "next_node_id": targets[0]}
    if kind == "DELAY":
        return {"id": node_id, "type": kind, "duration_seconds": value, "next_node_id": targets[0]}
    return {"id": node_id, "type": kind, "condition": value,
            "on_true_next_node_id": targets[0], "on_false_next_node_id": targets[1]}  # fmt: skip


@st.composite
def journeys(draw: st.DrawFn, max_nodes: int = 10) -> JourneyDefinition:
    """A valid journey: every node reachable, every cycle through a positive DELAY.

    Nodes are numbered 0..n-1. A random spanning tree of forward edges (each node i > 0 hangs
    off a free out-slot of an earlier node) makes every node reachable from node 0; each slot
    left over ends the run, jumps forward, or jumps back to an earlier-or-same positive DELAY.
    Forward edges cannot close a cycle, so every cycle contains a back edge, whose target is a
    positive DELAY. Ids are random and the list is shuffled, so order carries no meaning.
    """
    kinds = draw(st.lists(st.sampled_from(["MESSAGE", "DELAY", "CONDITIONAL"]), min_size=1,
                          max_size=max_nodes))  # fmt: skip
    n = len(kinds)
    ids = draw(st.lists(st.text("abcdefghjk_.-0123456789", min_size=1, max_size=6), min_size=n,
                        max_size=n, unique=True))  # fmt: skip
    values = [
        draw(DURATIONS) if k == "DELAY" else draw(conditions()) if k == "CONDITIONAL" else None
        for k in kinds
    ]
    slots: list[list[str | None]] = [[None] * (2 if k == "CONDITIONAL" else 1) for k in kinds]
    filled = [[False] * len(s) for s in slots]
    for child in range(1, n):
        free = [(i, s) for i in range(child) for s in range(len(slots[i])) if not filled[i][s]]
        parent, slot = draw(st.sampled_from(free))
        slots[parent][slot], filled[parent][slot] = ids[child], True
    for i in range(n):
        back = [ids[j] for j in range(i + 1) if kinds[j] == "DELAY" and values[j] > 0]
        for s in range(len(slots[i])):
            if not filled[i][s]:
                slots[i][s] = draw(st.sampled_from([None, *ids[i + 1 :], *back]))
    nodes = [_node(kinds[i], ids[i], values[i], slots[i]) for i in range(n)]
    return JourneyDefinition.model_validate(
        {"name": "generated", "start_node_id": ids[0], "nodes": draw(st.permutations(nodes))}
    )


@st.composite
def arbitrary_graphs(
    draw: st.DrawFn, pool: tuple[str, ...] = ("a", "b", "c", "d", "e")
) -> JourneyDefinition:
    """Any definition pydantic accepts, with every rule broken now and then: repeated ids,
    dangling targets, islands, cycles with and without a (possibly zero-second) DELAY."""
    ids = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
    if draw(st.integers(0, 9)) == 0:
        ids.append(draw(st.sampled_from(ids)))
    nodes = []
    for i, node_id in enumerate(ids):
        # Mostly leading on to the next id keeps most nodes reachable, so that some graphs
        # pass and the others fail for one rule rather than for all of them at once.
        after = ids[i + 1 : i + 2] * 3 * len(ids) or [None] * 2
        target = st.sampled_from([*after, *ids, None, "ghost"])
        kind = draw(st.sampled_from(["MESSAGE", "DELAY", "CONDITIONAL"]))
        if kind == "MESSAGE":
            nodes.append({"id": node_id, "type": kind, "message": "m",
                          "next_node_id": draw(target)})  # fmt: skip
        elif kind == "DELAY":
            nodes.append({"id": node_id, "type": kind, "next_node_id": draw(target),
                          "duration_seconds": draw(st.sampled_from([0, 5]))})  # fmt: skip
        else:
            nodes.append({"id": node_id, "type": kind, "condition": draw(conditions()),
                          "on_true_next_node_id": draw(target),
                          "on_false_next_node_id": draw(target)})  # fmt: skip
    start = draw(st.sampled_from([*ids[:1] * 10, *ids, "ghost"]))
    return JourneyDefinition.model_validate(
        {"name": "random", "start_node_id": start, "nodes": draw(st.permutations(nodes))}
    )
