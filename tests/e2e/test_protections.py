"""End to end, the patient's protections over HTTP: consent revoked mid-journey suppresses the
next message; the frequency cap holds across three journeys of one patient; a message due at
23:00 in the patient's time zone is deferred to 08:00 there; an operator's retry of a message
given up is not sent to a channel the patient revoked since. The webhook gateway on loopback
counts what really went out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from journeys_contracts.envelope import header
from tests.e2e.conftest import Stack, api_client, running_stack
from tests.e2e.helpers import (
    create_journey,
    timeline,
    trigger,
    types,
    wait_for_status,
    wait_for_type,
)
from tests.integration.executor.test_executor import _read
from tests.providers.webhook import WebhookGateway

pytestmark = pytest.mark.e2e

CAP = 2


@pytest.fixture(scope="module")
def gateway() -> Iterator[WebhookGateway]:
    with WebhookGateway() as running:
        yield running


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    gateway: WebhookGateway,
) -> Iterator[Stack]:
    env = {"DELIVERY_WEBHOOK_URL": gateway.url, "DELIVERY_WEBHOOK_SECRET": gateway.secret,
           "EXECUTOR_FREQUENCY_CAP_MESSAGES": str(CAP),
           "EXECUTOR_FREQUENCY_CAP_WINDOW_SECONDS": "3600"}  # fmt: skip
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory, env) as running:
        yield running


def _webhook(node_id: str, text: str, nxt: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "MESSAGE", "message": text, "channel": "webhook",
            "next_node_id": nxt}  # fmt: skip


def _received(gateway: WebhookGateway, run_ids: set[str]) -> list[dict[str, Any]]:
    return [m["data"] for m in dict(gateway.received).values() if m["data"]["runId"] in run_ids]


async def test_a_stop_mid_journey_suppresses_the_next_message(
    stack: Stack, gateway: WebhookGateway
) -> None:
    journey = {
        "name": "Intake", "start_node_id": "ask",
        "nodes": [
            _webhook("ask", "Please fill in the intake form.", "form"),
            {"id": "form", "type": "WAIT_FOR_EVENT", "event": "form.submitted",
             "timeout_seconds": 600, "on_event_next_node_id": "thanks",
             "on_timeout_next_node_id": None},
            _webhook("thanks", "Thank you!"),
        ],
    }  # fmt: skip
    async with api_client(stack) as client:
        journey_id = await create_journey(client, journey)
        run_id = await trigger(client, journey_id, {"id": "patient-stop-1"})
        await wait_for_status(client, run_id, {"waiting_event"})

        refused = await client.put("/patients/patient-stop-1/consent",
                                   json={"channels": {"fax": False}})  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"][:3] == ["body", "channels", "fax"]
        stop = await client.put("/patients/patient-stop-1/consent",
                                json={"channels": {"webhook": False}})  # fmt: skip
        assert stop.status_code == 202, stop.text
        assert stop.json()["channels"] == {"webhook": False}

        event = {"eventId": f"form-{uuid.uuid4()}", "patientId": "patient-stop-1",
                 "type": "form.submitted"}  # fmt: skip
        assert (await client.post("/events", json=event)).status_code == 202
        await wait_for_status(client, run_id, {"completed"})
        events = await timeline(client, run_id)

    assert types(events)[-4:] == [
        "event.matched", "node.entered", "message.suppressed", "run.completed"
    ]  # fmt: skip
    suppressed = events[-2]["data"]
    assert (suppressed["nodeId"], suppressed["channel"], suppressed["reason"]) == (
        "thanks", "webhook", "consent"
    )  # fmt: skip
    sent = _received(gateway, {run_id})
    assert [m["message"] for m in sent] == ["Please fill in the intake form."]


async def test_the_frequency_cap_holds_across_three_journeys(
    stack: Stack, gateway: WebhookGateway
) -> None:
    patient = "patient-cap-1"
    async with api_client(stack) as client:
        run_ids = []
        for n in range(3):
            body = {"name": f"Reminder {n}", "start_node_id": "r",
                    "nodes": [_webhook("r", f"Reminder {n}")]}  # fmt: skip
            journey_id = await create_journey(client, body)
            run_ids.append(await trigger(client, journey_id, {"id": patient}))
        outcomes = []
        for run_id in run_ids:
            await wait_for_status(client, run_id, {"completed"})
            outcomes.append(types(await timeline(client, run_id))[2])
    assert sorted(outcomes) == ["message.requested"] * CAP + ["message.suppressed"]
    assert len(_received(gateway, set(run_ids))) == CAP
    assert all(gateway.attempts[m["messageId"]] == 1 for m in _received(gateway, set(run_ids)))


def _zone_where_it_is_23() -> str:
    """An `Etc/GMT±N` zone whose clock reads 23:xx now (Etc names invert the sign)."""
    hour = datetime.now(UTC).hour
    offset = next(h for h in range(-12, 15) if (hour + h) % 24 == 23)
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def test_a_message_due_at_23_in_the_patients_zone_waits_until_08_there(
    stack: Stack, gateway: WebhookGateway
) -> None:
    zone = _zone_where_it_is_23()
    journey = {"name": "Evening reminder", "start_node_id": "r", "quiet_hours": "21:00-08:00",
               "nodes": [_webhook("r", "Your appointment is tomorrow.")]}  # fmt: skip
    async with api_client(stack) as client:
        journey_id = await create_journey(client, journey)
        run_id = await trigger(client, journey_id, {"id": "patient-night-1", "timezone": zone})
        events = await wait_for_type(client, run_id, "message.deferred")
        run = (await client.get(f"/journeys/runs/{run_id}")).json()

    deferred = next(e["data"] for e in events if e["type"].endswith("message.deferred.v1"))
    local = datetime.fromisoformat(deferred["dueAt"]).astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (8, 0)
    assert deferred["reason"] == "quiet_hours"
    assert timedelta(hours=7) < local - datetime.now(ZoneInfo(zone)) <= timedelta(hours=9)
    assert run["status"] not in {"completed", "failed"}
    assert _received(gateway, {run_id}) == []


async def test_an_operators_retry_to_a_channel_revoked_since_is_not_sent(
    stack: Stack, gateway: WebhookGateway
) -> None:
    patient = "patient-retry-stop-1"
    gateway.status = 410  # refused for good: the message is given up
    try:
        async with api_client(stack) as client:
            body = {"name": "Given up", "start_node_id": "r",
                    "nodes": [_webhook("r", "Please call the clinic.")]}  # fmt: skip
            run_id = await trigger(client, await create_journey(client, body), {"id": patient})
            await wait_for_status(client, run_id, {"completed"})
            events = await timeline(client, run_id)
    finally:
        gateway.status = 200
    failed = next(e["data"] for e in events if e["type"].endswith("message.failed.v1"))
    async with api_client(stack) as client:
        stop = await client.put(f"/patients/{patient}/consent",
                                json={"channels": {"webhook": False}})  # fmt: skip
        assert stop.status_code == 202, stop.text
        retried = await client.post(f"/deliveries/{failed['messageId']}/retry")
        assert retried.status_code == 202, retried.text

    (parked,) = await _read(stack.kafka_bootstrap, stack.topics.dlq, 1, {failed["messageId"]})
    assert header(parked.headers, "dlq_stage") == "consent"
    assert header(parked.headers, "dlq_error") == "no consent to webhook"
    command = json.loads(parked.value)
    assert command["type"] == "journeys.command.retry_message.v1"
    assert "dataKey" not in command["request"]  # the API seals: the key stays out of the DLQ
    assert gateway.attempts[failed["messageId"]] == 1  # the refused first attempt, no other


async def test_a_message_whose_template_failed_is_listed_but_has_nothing_to_retry(
    stack: Stack, gateway: WebhookGateway
) -> None:
    body = {"name": "Unfillable", "start_node_id": "r",
            "nodes": [_webhook("r", "Hello {{ first_name }}")]}  # fmt: skip
    async with api_client(stack) as client:
        run_id = await trigger(client, await create_journey(client, body), {"id": "p-template"})
        await wait_for_status(client, run_id, {"completed"})
        page = await client.get("/deliveries", params={"limit": 200})
        listed = [m for m in page.json()["items"] if m["runId"] == run_id]
        assert [(m["reason"], m["attempts"]) for m in listed] == [("template", 1)]
        retried = await client.post(f"/deliveries/{listed[0]['messageId']}/retry")
    assert retried.status_code == 409
    assert retried.json()["detail"] == (
        "Expected a message that was asked for, but it failed before (template)"
    )
    assert _received(gateway, {run_id}) == []
