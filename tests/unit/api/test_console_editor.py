"""The journey editor's check: what `POST /journeys` would refuse, located at its node."""

from __future__ import annotations

import json
from typing import Any

from journeys_api.console.editor import STARTER, Problem, check, marked


def text(definition: dict[str, Any]) -> str:
    return json.dumps(definition)


def test_the_starter_is_accepted_and_previewed() -> None:
    found = check(text(STARTER), 7 * 86400)
    assert found.problems == []
    assert found.definition is not None
    assert found.preview is not None
    assert [n["id"] for n in found.preview["nodes"]] == ["thanks", "wait", "ask"]


def test_a_field_error_names_its_node_and_field() -> None:
    broken = json.loads(text(STARTER))
    broken["nodes"][1]["duration_seconds"] = -5
    found = check(text(broken), 7 * 86400)
    assert found.definition is None
    assert [(p.node, p.where) for p in found.problems] == [("wait", "duration_seconds")]
    assert "greater than or equal to 0" in found.problems[0].message
    assert marked(found.preview, found.problems)["invalid"] == ["wait"]  # type: ignore[index]


def test_a_graph_error_names_its_node() -> None:
    broken = json.loads(text(STARTER))
    broken["nodes"][0]["next_node_id"] = "nowhere"
    found = check(text(broken), 7 * 86400)
    assert found.definition is None
    assert found.problems
    assert all(p.node == "thanks" for p in found.problems), found.problems
    assert any("nowhere" in p.message for p in found.problems)


def test_a_look_back_over_the_deployment_s_limit_is_refused_at_its_node() -> None:
    waiting = {
        "name": "w", "start_node_id": "w",
        "nodes": [{"id": "w", "type": "WAIT_FOR_EVENT", "event": "visit.booked",
                   "timeout_seconds": 60, "lookback_seconds": 3600,
                   "on_event_next_node_id": None, "on_timeout_next_node_id": None}],
    }  # fmt: skip
    found = check(text(waiting), 600)
    assert [(p.node, p.where) for p in found.problems] == [("w", "lookback_seconds")]


def test_text_that_is_not_json_says_where() -> None:
    found = check('{"name": "x",\n  "nodes": [}', 600)
    assert found.preview is None
    assert found.problems == [Problem(None, "line 2, column 13", found.problems[0].message)]
    assert found.problems[0].message.startswith("not JSON")


def test_a_missing_top_level_field_is_the_definition_s() -> None:
    found = check(text({"name": "x", "nodes": []}), 600)
    assert ("start_node_id", None) in [(p.where, p.node) for p in found.problems]
