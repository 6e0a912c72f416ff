"""Journey bodies for the API's tests, starting from the hip replacement journey."""

from __future__ import annotations

import copy
from typing import Any

HIP_REPLACEMENT_JOURNEY: dict[str, Any] = {
    "name": "Hip replacement recovery",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age_check"},
        {"id": "age_check", "type": "CONDITIONAL",
         "condition": {"field": "age", "operator": ">", "value": 65},
         "on_true_next_node_id": "wait", "on_false_next_node_id": None},
        {"id": "wait", "type": "DELAY", "duration_seconds": 86400, "next_node_id": "checkin"},
        {"id": "checkin", "type": "MESSAGE", "message": "How is your recovery going?",
         "next_node_id": None},
    ],
}  # fmt: skip


def hip_replacement_journey() -> dict[str, Any]:
    """A deep copy, for tests that break one thing in it."""
    return copy.deepcopy(HIP_REPLACEMENT_JOURNEY)


def linear_journey(name: str, *messages: str) -> dict[str, Any]:
    texts = messages or ("hello",)
    nodes = [
        {"id": f"n{i}", "type": "MESSAGE", "message": text,
         "next_node_id": f"n{i + 1}" if i + 1 < len(texts) else None}
        for i, text in enumerate(texts)
    ]  # fmt: skip
    return {"name": name, "start_node_id": "n0", "nodes": nodes}
