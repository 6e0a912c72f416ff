"""A journey's definition as the graph the console draws: a box per node with what it does in a
few words, an arrow per branch with its label. The page lays it out in the browser (dagre)."""

from __future__ import annotations

from typing import Any

from journeys_contracts.definition import (
    AnyNode,
    Condition,
    ConditionalNode,
    DelayNode,
    JourneyDefinition,
    MessageNode,
    WaitForEventNode,
    successors,
)

EDGE_LABELS = {
    "next_node_id": "",
    "on_true_next_node_id": "yes",
    "on_false_next_node_id": "no",
    "on_event_next_node_id": "event",
    "on_timeout_next_node_id": "timeout",
    "on_failure_next_node_id": "failed",
}
SNIPPET = 40


def duration(seconds: float) -> str:
    """`90` → `1 min 30 s`, `86400` → `1 d`: the two largest units that are not zero."""
    left = round(seconds)
    if left == 0:
        return f"{seconds:g} s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])


def _condition(condition: Condition) -> str:
    if condition.operator == "exists":
        return f"{condition.field} {'missing' if condition.value is False else 'exists'}"
    return f"{condition.field} {condition.operator} {condition.value!r}"


def summary(node: AnyNode) -> str:
    """What the node does, short enough for its box."""
    if isinstance(node, MessageNode):
        text = " ".join(node.message.split())
        text = text if len(text) <= SNIPPET else f"{text[: SNIPPET - 1]}…"
        return f"{node.channel or 'message'}: {text}"
    if isinstance(node, DelayNode):
        return f"wait {duration(node.duration_seconds)}"
    if isinstance(node, ConditionalNode):
        return f"if {_condition(node.condition)}"
    if isinstance(node, WaitForEventNode):
        when = f" where {_condition(node.when)}" if node.when is not None else ""
        return f"wait for {node.event}{when}, up to {duration(node.timeout_seconds)}"
    raise TypeError(type(node).__name__)


def graph(definition: dict[str, Any]) -> dict[str, Any]:
    """`{"start": id, "nodes": [{id, type, text}], "edges": [{from, to, label}]}`; an edge to
    a node the definition lacks is left out (a stored definition always resolves)."""
    parsed = JourneyDefinition.model_validate(definition)
    ids = {node.id for node in parsed.nodes}
    nodes = [{"id": n.id, "type": n.type, "text": summary(n)} for n in parsed.nodes]
    edges = [
        {"from": node.id, "to": target, "label": EDGE_LABELS.get(field, field)}
        for node in parsed.nodes
        for field, target in successors(node)
        if target in ids
    ]
    return {"start": parsed.start_node_id, "nodes": nodes, "edges": edges}


def sketch(data: Any) -> dict[str, Any] | None:
    """The graph of a definition the model refuses (a node with a bad field), as far as its
    ids and branches can be read: boxes say only the node's type. None when not even that."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    nodes = [n for n in data["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]
    if not nodes:
        return None
    ids = {n["id"] for n in nodes}
    return {
        "start": data.get("start_node_id"),
        "nodes": [{"id": n["id"], "type": str(n.get("type", "?")), "text": str(n.get("type", "?"))}
                  for n in nodes],
        "edges": [{"from": n["id"], "to": n[name], "label": label}
                  for n in nodes for name, label in EDGE_LABELS.items() if n.get(name) in ids],
    }  # fmt: skip
