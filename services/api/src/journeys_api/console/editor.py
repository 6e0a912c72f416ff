"""The journey editor's checks: the definition as the API would take it (`POST /journeys`),
each refusal located at its node, and the graph to preview while it is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from journeys_api import bodies
from journeys_api.console import graph
from journeys_contracts.definition import StrictJourneyDefinition

NODE_TYPES = {"MESSAGE", "DELAY", "CONDITIONAL", "WAIT_FOR_EVENT"}
STARTER = {
    "name": "Post-visit check-in",
    "start_node_id": "thanks",
    "nodes": [
        {"id": "thanks", "type": "MESSAGE", "message": "Thanks for your visit, {{ first_name }}.",
         "next_node_id": "wait"},
        {"id": "wait", "type": "DELAY", "duration_seconds": 86400, "next_node_id": "ask"},
        {"id": "ask", "type": "MESSAGE", "message": "How are you feeling today?",
         "next_node_id": None},
    ],
}  # fmt: skip
"""What a new definition starts from: a journey that would be accepted as it is."""


@dataclass(frozen=True)
class Problem:
    node: str | None  # the node's id, when the problem is inside one
    where: str  # the field, under the node when there is one
    message: str


@dataclass
class Checked:
    definition: StrictJourneyDefinition | None = None
    problems: list[Problem] = field(default_factory=list)
    preview: dict[str, Any] | None = None


def _located(data: Any, loc: tuple[Any, ...], message: str) -> Problem:
    """`("body", "nodes", 2, "DELAY", "duration_seconds")` → node `data.nodes[2].id`, field
    `duration_seconds` (the body prefix and the node type pydantic adds are dropped)."""
    path = [p for p in loc if p != "body"]
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        nodes = data.get("nodes") if isinstance(data, dict) else None
        node = nodes[path[1]] if isinstance(nodes, list) and path[1] < len(nodes) else None
        name = node.get("id") if isinstance(node, dict) else None
        rest = [p for p in path[2:] if p not in NODE_TYPES]
        label = name if isinstance(name, str) and name else f"nodes[{path[1]}]"
        return Problem(label, ".".join(map(str, rest)) or "(the node)", message)
    return Problem(None, ".".join(map(str, path)) or "(the definition)", message)


def check(text: str, max_lookback_seconds: float) -> Checked:
    """What `POST /journeys` would say of `text`, and the graph of what parses."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return Checked(problems=[Problem(None, where, f"not JSON: {exc.msg}")])
    result = Checked()
    try:
        result.preview = graph.graph(data)
    except (ValidationError, TypeError, ValueError):
        result.preview = graph.sketch(data)
    try:
        definition = StrictJourneyDefinition.model_validate(data)
    except ValidationError as exc:
        result.problems = [_located(data, tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        return result
    try:
        bodies.require_sound_graph(definition, max_lookback_seconds)
    except RequestValidationError as exc:
        result.problems = [_located(data, tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        return result
    result.definition = definition
    return result


def marked(preview: dict[str, Any] | None, problems: list[Problem]) -> dict[str, Any] | None:
    """The preview with the nodes that have problems named, for the drawing to mark."""
    if preview is None:
        return None
    return {**preview, "invalid": sorted({p.node for p in problems if p.node is not None})}
