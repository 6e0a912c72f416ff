"""The console's journey graph: a box per node saying what it does, an arrow per branch."""

from __future__ import annotations

from typing import Any

import pytest

from journeys_api.console.graph import duration, graph


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.5, "0.5 s"), (45, "45 s"), (90, "1 min 30 s"), (3600, "1 h"),
     (86400, "1 d"), (90061, "1 d 1 h"), (7 * 86400 + 59, "7 d 59 s")],
)  # fmt: skip
def test_durations_read_as_their_two_largest_units(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_every_node_and_branch_is_drawn_with_its_label() -> None:
    definition: dict[str, Any] = {
        "name": "Check-in",
        "start_node_id": "hello",
        "nodes": [
            {"id": "hello", "type": "MESSAGE", "message": "Hello   {{ first_name }},\nwelcome",
             "next_node_id": "old", "on_failure_next_node_id": "bye"},
            {"id": "old", "type": "CONDITIONAL",
             "condition": {"field": "age", "operator": ">=", "value": 65},
             "on_true_next_node_id": "pause", "on_false_next_node_id": None},
            {"id": "pause", "type": "DELAY", "duration_seconds": 172800, "next_node_id": "ask"},
            {"id": "ask", "type": "WAIT_FOR_EVENT", "event": "checkin.answered",
             "when": {"field": "event.data.score", "operator": "exists"},
             "timeout_seconds": 3600, "on_event_next_node_id": "bye",
             "on_timeout_next_node_id": "bye"},
            {"id": "bye", "type": "MESSAGE", "channel": "sms", "message": "x" * 60},
        ],
    }  # fmt: skip
    drawn = graph(definition)
    assert drawn["start"] == "hello"
    assert [(n["id"], n["text"]) for n in drawn["nodes"]] == [
        ("hello", "message: Hello {{ first_name }}, welcome"),
        ("old", "if age >= 65"),
        ("pause", "wait 2 d"),
        ("ask", "wait for checkin.answered where event.data.score exists, up to 1 h"),
        ("bye", f"sms: {'x' * 39}…"),
    ]
    assert [(e["from"], e["to"], e["label"]) for e in drawn["edges"]] == [
        ("hello", "old", ""), ("hello", "bye", "failed"), ("old", "pause", "yes"),
        ("pause", "ask", ""), ("ask", "bye", "event"), ("ask", "bye", "timeout"),
    ]  # fmt: skip
