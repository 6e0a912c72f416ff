"""End to end over HTTP with the delivery service: the executor leaves sending to it, a journey's
messages reach the webhook gateway signed and once each, a node without a channel goes to the
default (console), and the run's timeline shows who sent what."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Stack, api_client, running_stack
from tests.e2e.helpers import (
    assert_gapless,
    create_journey,
    timeline,
    trigger,
    types,
    wait_for_status,
)
from tests.providers.webhook import WebhookGateway

pytestmark = pytest.mark.e2e

JOURNEY = {
    "name": "Knee surgery follow-up",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "channel": "webhook",
         "next_node_id": "wait"},
        {"id": "wait", "type": "DELAY", "duration_seconds": 1, "next_node_id": "checkin"},
        {"id": "checkin", "type": "MESSAGE", "message": "How is your knee?", "channel": "webhook",
         "next_node_id": "note"},
        {"id": "note", "type": "MESSAGE", "message": "Logged for the care team."},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway() -> Iterator[WebhookGateway]:
    with WebhookGateway() as running:
        yield running


@pytest.fixture(scope="module")
def delivering_stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    gateway: WebhookGateway,
) -> Iterator[Stack]:
    env = {"EXECUTOR_DELIVERY": "service", "DELIVERY_WEBHOOK_URL": gateway.url,
           "DELIVERY_WEBHOOK_SECRET": gateway.secret}  # fmt: skip
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory, env) as running:
        yield running


async def test_a_journey_sends_through_the_delivery_service(
    delivering_stack: Stack, gateway: WebhookGateway
) -> None:
    assert "delivery" in delivering_stack.supervisor.services
    client: httpx.AsyncClient
    async with api_client(delivering_stack) as client:
        journey_id = await create_journey(client, JOURNEY)
        run_id = await trigger(client, journey_id, {"id": "patient-knee-1", "age": 58})
        await wait_for_status(client, run_id, {"completed"})
        events = await timeline(client, run_id)

    assert_gapless(events)
    assert types(events) == [
        "run.started",
        "node.entered", "message.requested", "message.sent",
        "node.entered", "delay.started", "delay.elapsed",
        "node.entered", "message.requested", "message.sent",
        "node.entered", "message.requested", "message.sent",
        "run.completed",
    ]  # fmt: skip
    sent = [e for e in events if e["type"].endswith("message.sent.v1")]
    assert [e["data"]["channel"] for e in sent] == ["webhook", "webhook", "console"]
    received = gateway.wait_for(2)
    ours = [m["data"] for m in received.values() if m["data"]["runId"] == run_id]
    assert sorted(m["message"] for m in ours) == ["How is your knee?", "Welcome!"]
    assert {m["patientId"] for m in ours} == {"patient-knee-1"}
    assert gateway.refused == []
    assert all(gateway.attempts[m["messageId"]] == 1 for m in ours)
