"""End to end over HTTP: every node type and operator, branching, delays, cancel, idempotency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    assert_gapless,
    create_journey,
    message_journey,
    timeline,
    trigger,
    types,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

HIP_REPLACEMENT_JOURNEY: dict[str, Any] = {
    "name": "Hip replacement recovery",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age_check"},
        {"id": "age_check", "type": "CONDITIONAL",
         "condition": {"field": "age", "operator": ">", "value": 65},
         "on_true_next_node_id": "wait", "on_false_next_node_id": None},
        {"id": "wait", "type": "DELAY", "duration_seconds": 2, "next_node_id": "checkin"},
        {"id": "checkin", "type": "MESSAGE", "message": "How is your recovery going?",
         "next_node_id": None},
    ],
}  # fmt: skip


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_delay_is_observed_waiting_then_completes_no_earlier_than_due(
    client: httpx.AsyncClient,
) -> None:
    journey_id = await create_journey(client, HIP_REPLACEMENT_JOURNEY)
    run_id = await trigger(client, journey_id, {"id": "patient-123", "age": 72, "language": "en"})

    waiting = await wait_for_status(client, run_id, {"waiting_delay"})
    assert waiting["currentNodeId"] == "wait"
    assert waiting["patientContext"]["age"] == 72
    done = await wait_for_status(client, run_id, {"completed"})
    assert done["currentNodeId"] == "checkin"

    events = await timeline(client, run_id)
    assert_gapless(events)
    assert types(events) == [
        "run.started",
        "node.entered", "message.requested", "message.sent",
        "node.entered", "condition.evaluated",
        "node.entered", "delay.started", "delay.elapsed",
        "node.entered", "message.requested", "message.sent",
        "run.completed",
    ]  # fmt: skip
    started = next(e["data"] for e in events if e["type"].endswith("delay.started.v1"))
    elapsed = next(e["data"] for e in events if e["type"].endswith("delay.elapsed.v1"))
    assert (_at(started["dueAt"]) - _at(started["occurredAt"])).total_seconds() == 2
    assert _at(elapsed["firedAt"]) >= _at(started["dueAt"])
    assert _at(elapsed["occurredAt"]) >= _at(started["dueAt"])


async def test_condition_false_branch_ends_the_run_without_waiting(
    client: httpx.AsyncClient,
) -> None:
    journey_id = await create_journey(client, HIP_REPLACEMENT_JOURNEY)
    run_id = await trigger(client, journey_id, {"id": "patient-young", "age": 40})

    await wait_for_status(client, run_id, {"completed"})
    events = await timeline(client, run_id)
    evaluated = next(e["data"] for e in events if e["type"].endswith("condition.evaluated.v1"))
    assert evaluated["result"] is False
    assert "delay.started" not in types(events)
    assert types(events)[-1] == "run.completed"


OPERATOR_CASES = [
    # (field, operator, value, patient context, expected branch)
    ("age", "==", 72, {"age": 72}, True),
    ("age", "eq", 71, {"age": 72}, False),
    ("age", "!=", 71, {"age": 72}, True),
    ("age", "ne", 72, {"age": 72}, False),
    ("age", ">", 65, {"age": 72}, True),
    ("age", "gt", 80, {"age": 72}, False),
    ("age", ">=", 72, {"age": 72}, True),
    ("age", "gte", 73, {"age": 72}, False),
    ("age", "<", 80, {"age": 72}, True),
    ("age", "lt", 72, {"age": 72}, False),
    ("age", "<=", 72, {"age": 72}, True),
    ("age", "lte", 71, {"age": 72}, False),
    ("language", "in", ["en", "fr"], {"language": "fr"}, True),
    ("language", "not_in", ["en", "fr"], {"language": "fr"}, False),
    ("phone", "exists", None, {"phone": "555"}, True),
    ("phone", "exists", None, {}, False),
    ("condition", "contains", "hip", {"condition": "hip_replacement"}, True),
    ("tags", "contains", "diabetic", {"tags": ["cardiac"]}, False),
    ("address.zip", "==", "94110", {"address": {"zip": "94110"}}, True),
    ("patient.age", ">", 65, {"age": 72}, True),
    ("patient.address.zip", "in", ["10001"], {"address": {"zip": "94110"}}, False),
]


@pytest.mark.parametrize(("field", "operator", "value", "context", "expected"), OPERATOR_CASES)
async def test_conditional_takes_the_branch_its_operator_decides(
    client: httpx.AsyncClient,
    field: str,
    operator: str,
    value: Any,
    context: dict[str, Any],
    expected: bool,
) -> None:
    body = {
        "name": f"operator {operator}",
        "start_node_id": "check",
        "nodes": [
            {"id": "check", "type": "CONDITIONAL",
             "condition": {"field": field, "operator": operator, "value": value},
             "on_true_next_node_id": "yes", "on_false_next_node_id": "no"},
            {"id": "yes", "type": "MESSAGE", "message": "took true", "next_node_id": None},
            {"id": "no", "type": "MESSAGE", "message": "took false", "next_node_id": None},
        ],
    }  # fmt: skip
    journey_id = await create_journey(client, body)
    run_id = await trigger(client, journey_id, {"id": f"patient-{operator}", **context})

    done = await wait_for_status(client, run_id, {"completed"})
    assert done["currentNodeId"] == ("yes" if expected else "no")


async def test_cancel_during_delay_never_sends_the_message_after_it(
    client: httpx.AsyncClient,
) -> None:
    body = message_journey(
        "cancellable",
        {"type": "MESSAGE", "message": "first"},
        {"type": "DELAY", "duration_seconds": 2},
        {"type": "MESSAGE", "message": "never"},
    )
    journey_id = await create_journey(client, body)
    run_id = await trigger(client, journey_id, {"id": "patient-cancel"})
    await wait_for_status(client, run_id, {"waiting_delay"})

    response = await client.post(f"/journeys/runs/{run_id}/cancel", json={"reason": "opted out"})
    assert response.status_code == 202, response.text
    assert response.json() == {"runId": run_id, "status": "cancelled"}  # read-your-writes
    assert (await client.get(f"/journeys/runs/{run_id}")).json()["status"] == "cancelled"

    import asyncio

    await asyncio.sleep(3)  # past the delay's due time: the cancelled timer must not resume it
    run = await wait_for_status(client, run_id, {"cancelled"})
    assert run["currentNodeId"] == "n1"
    events = await timeline(client, run_id)
    assert_gapless(events)
    assert types(events).count("message.sent") == 1
    assert types(events)[-1] == "run.cancelled"
    cancelled = events[-1]["data"]
    started = next(e["data"] for e in events if e["type"].endswith("delay.started.v1"))
    assert cancelled["cancelledTimerId"] == started["timerId"]

    again = await client.post(f"/journeys/runs/{run_id}/cancel")
    assert again.status_code == 409


async def test_trigger_with_same_idempotency_key_and_body_returns_the_same_run(
    client: httpx.AsyncClient,
) -> None:
    journey_id = await create_journey(client, HIP_REPLACEMENT_JOURNEY)
    context = {"id": "patient-idem", "age": 30}

    first = await trigger(client, journey_id, context, key="upstream-order-77")
    second = await trigger(client, journey_id, context, key="upstream-order-77")
    assert first == second
    await wait_for_status(client, first, {"completed"})

    conflicting = await client.post(
        f"/journeys/{journey_id}/trigger",
        json={**context, "age": 31},
        headers={"Idempotency-Key": "upstream-order-77"},
    )
    assert conflicting.status_code == 422
    runs = await client.get("/journeys/runs", params={"patientId": "patient-idem"})
    assert [r["runId"] for r in runs.json()["items"]] == [first]
    events = await timeline(client, first)
    assert types(events).count("run.started") == 1


async def test_bad_requests_get_precise_4xx(client: httpx.AsyncClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await client.get(f"/journeys/{unknown}")).status_code == 404
    assert (await client.get(f"/journeys/runs/{unknown}")).status_code == 404
    assert (await client.post(f"/journeys/{unknown}/trigger", json={"id": "p"})).status_code == 404
    assert (await client.post(f"/journeys/runs/{unknown}/cancel")).status_code == 404

    dangling = {**HIP_REPLACEMENT_JOURNEY, "start_node_id": "nowhere"}
    response = await client.post("/journeys", json=dangling)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "start_node_id"
