"""End to end over HTTP: a journey defined with triggers, wait and exit, then patient events
straight after it: the journey the API answered 201 for is matched by the next event, a form
that came first meets the wait by look-back, a repeat does nothing, a cancellation exits."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import assert_gapless, create_journey, timeline, types, wait_for_status

pytestmark = pytest.mark.e2e

PREVISIT: dict[str, Any] = {
    "name": "Pre-visit",
    "triggers": [{"event": "appointment.booked",
                  "when": {"field": "event.data.clinicId", "operator": "==", "value": "c-1"}}],
    "exit_on": [{"event": "appointment.cancelled"}],
    "start_node_id": "remind",
    "nodes": [
        {"id": "remind", "type": "MESSAGE", "message": "Please fill in the intake form.",
         "next_node_id": "form"},
        {"id": "form", "type": "WAIT_FOR_EVENT", "event": "intake_form.submitted",
         "timeout_seconds": 3600, "lookback_seconds": 86400,
         "on_event_next_node_id": "score", "on_timeout_next_node_id": None},
        {"id": "score", "type": "CONDITIONAL",
         "condition": {"field": "events.form.pain", "operator": ">", "value": 5},
         "on_true_next_node_id": "call", "on_false_next_node_id": None},
        {"id": "call", "type": "MESSAGE", "message": "A nurse will call you.",
         "next_node_id": None},
    ],
}  # fmt: skip


async def _send(client: httpx.AsyncClient, *events: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/events", json={"events": list(events)})
    assert response.status_code == 202, response.text
    return dict(response.json())


async def _effects(client: httpx.AsyncClient, event_id: str, within: float = 20) -> list[Any]:
    """The effects of the (one) receipt of `event_id`, once it has any."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"/events/{event_id}")
        if response.status_code == 200:
            (receipt,) = response.json()["receipts"]
            if receipt["effects"] or time.monotonic() > deadline:
                return list(receipt["effects"])
        assert time.monotonic() < deadline, f"event {event_id}: {response.status_code}"
        await asyncio.sleep(0.2)


async def test_events_start_resume_and_exit_runs_of_a_journey_defined_just_before(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    early, late = f"early-{tag}", f"late-{tag}"
    # The form overtakes the booking, and the booking comes right after the journey's 201.
    assert await _send(client, {"eventId": f"form-{tag}", "patientId": early,
                                "type": "intake_form.submitted", "data": {"pain": 8}}) == {
        "accepted": 1, "duplicates": 0}  # fmt: skip
    journey_id = await create_journey(client, PREVISIT)
    booking = {"eventId": f"appt-{tag}", "patientId": early, "type": "appointment.booked",
               "data": {"clinicId": "c-1"}}  # fmt: skip
    assert await _send(client, booking, booking) == {"accepted": 1, "duplicates": 1}

    (started,) = await _effects(client, f"appt-{tag}")
    assert started["effect"] == "started"
    assert started["journeyId"] == journey_id
    run_id = started["runId"]
    await wait_for_status(client, run_id, {"completed"})
    events = await timeline(client, run_id)
    assert_gapless(events)
    assert types(events) == [
        "run.started", "node.entered", "message.requested", "message.sent",
        "node.entered", "event.matched", "node.entered", "condition.evaluated",
        "node.entered", "message.requested", "message.sent", "run.completed",
    ]  # fmt: skip
    assert events[5]["data"]["lookback"] is True
    assert events[5]["data"]["eventData"] == {"pain": 8}  # the branch read it: a nurse calls
    assert events[7]["data"]["result"] is True

    # A redelivery through another request: no second run.
    assert await _send(client, booking) == {"accepted": 1, "duplicates": 0}
    # Another clinic's booking: the trigger's condition does not hold.
    await _send(client, {"eventId": f"appt2-{tag}", "patientId": late,
                         "type": "appointment.booked", "data": {"clinicId": "c-2"}})  # fmt: skip
    # A booking, then a cancellation while the run waits for the form.
    await _send(client, {"eventId": f"appt3-{tag}", "patientId": late,
                         "type": "appointment.booked", "data": {"clinicId": "c-1"}})  # fmt: skip
    (waiting,) = await _effects(client, f"appt3-{tag}")
    waited = await wait_for_status(client, waiting["runId"], {"waiting_event"})
    assert waited["waitingFor"] == "intake_form.submitted"
    await _send(client, {"eventId": f"cancel-{tag}", "patientId": late,
                         "type": "appointment.cancelled"})  # fmt: skip
    (exited,) = await _effects(client, f"cancel-{tag}")
    assert (exited["effect"], exited["runId"], exited["nodeId"]) == (
        "exited", waiting["runId"], "form",
    )  # fmt: skip
    await wait_for_status(client, waiting["runId"], {"cancelled"})
    assert types(await timeline(client, waiting["runId"]))[-2:] == ["run.exited", "run.cancelled"]

    assert await _effects(client, f"appt2-{tag}", within=1) == []
    assert [e["effect"] for e in await _effects(client, f"appt-{tag}")] == ["started"]
    runs = (await client.get("/journeys/runs", params={"journeyId": journey_id})).json()["items"]
    assert sorted(r["status"] for r in runs) == ["cancelled", "completed"]
