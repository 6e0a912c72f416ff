"""End to end over HTTP with the delivery service: the executor leaves sending to it, a journey's
messages reach the webhook gateway signed and once each, a node without a channel goes to the
default (console), and the run's timeline shows who sent what."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from journeys_contracts.envelope import header
from tests.e2e.conftest import Stack, api_client, running_stack
from tests.e2e.helpers import (
    assert_gapless,
    create_journey,
    timeline,
    trigger,
    types,
    wait_for_status,
)
from tests.integration.executor.test_executor import _read
from tests.providers.smtp import SmtpInbox
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


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def gateway() -> Iterator[WebhookGateway]:
    with WebhookGateway() as running:
        yield running


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpInbox]:
    with SmtpInbox(tmp_path_factory.mktemp("smtp")) as running:
        yield running


@pytest.fixture(scope="module")
def delivering_stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    gateway: WebhookGateway,
    inbox: SmtpInbox,
) -> Iterator[Stack]:
    env = {"DELIVERY_SMTP_HOST": "127.0.0.1", "DELIVERY_SMTP_PORT": str(inbox.port),
           "DELIVERY_SMTP_FROM": "care@clinic.example", "DELIVERY_SMTP_CA_FILE": str(inbox.cert),
           "DELIVERY_WEBHOOK_URL": gateway.url,
           "DELIVERY_WEBHOOK_SECRET": gateway.secret, "DELIVERY_RETRY_INITIAL_SECONDS": "0.2",
           "DELIVERY_WEBHOOK_MAX_ATTEMPTS": "3"}  # fmt: skip
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory, env) as running:
        yield running


@pytest.fixture
def fresh(gateway: WebhookGateway) -> Iterator[WebhookGateway]:
    """The module's gateway, healthy, for one test."""
    gateway.status, gateway.failures_left, gateway.retry_after = 200, 0, None
    yield gateway
    gateway.status, gateway.failures_left, gateway.retry_after = 200, 0, None


async def test_a_journey_sends_through_the_delivery_service(
    delivering_stack: Stack, fresh: WebhookGateway
) -> None:
    gateway = fresh
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


ONE_MESSAGE = {
    "name": "One webhook message",
    "start_node_id": "hello",
    "nodes": [
        {"id": "hello", "type": "MESSAGE", "message": "Your appointment is tomorrow.",
         "channel": "webhook", "next_node_id": None, "on_failure_next_node_id": "fallback"},
        {"id": "fallback", "type": "MESSAGE", "message": "Please call the clinic.",
         "channel": "console"},
    ],
}  # fmt: skip


async def run_once(stack: Stack, patient: str) -> tuple[str, list[dict[str, Any]]]:
    async with api_client(stack) as client:
        journey_id = await create_journey(client, ONE_MESSAGE)
        run_id = await trigger(client, journey_id, {"id": patient})
        await wait_for_status(client, run_id, {"completed"}, within=60)
        return run_id, await timeline(client, run_id)


async def test_a_provider_down_for_two_attempts_gets_the_message_once_on_the_third(
    delivering_stack: Stack, fresh: WebhookGateway
) -> None:
    fresh.failures_left, fresh.retry_after = 2, "1"
    run_id, events = await run_once(delivering_stack, "patient-retry-1")

    assert_gapless(events)
    assert types(events) == [
        "run.started", "node.entered",
        "message.requested", "message.retrying",
        "message.requested", "message.retrying",
        "message.requested", "message.sent",
        "run.completed",
    ]  # fmt: skip
    retrying = [e["data"] for e in events if e["type"].endswith("message.retrying.v1")]
    assert [(r["attempt"], r["reason"]) for r in retrying] == [
        (1, "gateway answered 503"), (2, "gateway answered 503")
    ]  # fmt: skip
    # Never sooner than the provider's Retry-After: 1 s.
    for r, e in zip(retrying, [e for e in events if e["type"].endswith("retrying.v1")],
                    strict=True):  # fmt: skip
        assert _at(r["dueAt"]) - _at(e["occurredAt"]) >= timedelta(seconds=1)
    message_id = retrying[0]["messageId"]
    assert fresh.attempts[message_id] == 3
    assert fresh.wait_for(1)[message_id]["data"]["runId"] == run_id
    sent = [e["data"] for e in events if e["type"].endswith("message.sent.v1")]
    assert sent == [{**sent[0], "attempt": 3}]


async def test_a_message_given_up_takes_the_failure_branch_and_is_parked(
    delivering_stack: Stack, fresh: WebhookGateway
) -> None:
    fresh.status = 410
    run_id, events = await run_once(delivering_stack, "patient-gone-1")

    assert types(events) == [
        "run.started", "node.entered", "message.requested", "message.failed",
        "node.entered", "message.requested", "message.sent", "run.completed",
    ]  # fmt: skip
    failed = next(e["data"] for e in events if e["type"].endswith("message.failed.v1"))
    assert (failed["reason"], failed["nodeId"]) == ("gateway answered 410", "hello")
    assert next(e["data"] for e in events if e["type"].endswith("message.sent.v1"))[
        "channel"] == "console"  # fmt: skip
    (parked,) = await _read(delivering_stack.kafka_bootstrap, delivering_stack.topics.dlq, 1,
                            {run_id})  # fmt: skip
    request = json.loads(parked.value)
    # The API seals patient data (development keys): the parked request is sealed, and parked
    # without the wrapped data key, which must not outlive an erasure in the DLQ.
    assert (request["type"], request["messageId"]) == (
        "journeys.delivery.requested.v2", failed["messageId"]
    )  # fmt: skip
    assert "dataKey" not in request
    assert header(parked.headers, "dlq_stripped") == "dataKey"
    assert header(parked.headers, "dlq_stage") == "delivery"
    assert header(parked.headers, "dlq_error") == "gateway answered 410"

    # Operators find it given up, opened from its sealed event, without its text.
    async with api_client(delivering_stack) as client:
        page = await client.get("/deliveries", params={"status": "failed", "limit": 200})
        assert page.status_code == 200, page.text
        refused = await client.get("/deliveries", params={"status": "sent"})
    listed = [m for m in page.json()["items"] if m["runId"] == run_id]
    assert [{k: v for k, v in m.items() if k not in ("journeyId", "failedAt")}
            for m in listed] == [{
        "messageId": failed["messageId"], "runId": run_id, "nodeId": "hello",
        "channel": "webhook", "status": "failed", "reason": "gateway answered 410",
        "attempts": 1, "retriedAt": None, "retry": None,
    }]  # fmt: skip
    assert refused.status_code == 422

    # Sent again, once: the gateway is back and takes it; a second retry is refused.
    fresh.status = 200
    async with api_client(delivering_stack) as client:
        retried = await client.post(f"/deliveries/{failed['messageId']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json() == {"messageId": failed["messageId"], "attempt": 2,
                                  "status": "requested"}  # fmt: skip
        again = await client.post(f"/deliveries/{failed['messageId']}/retry")
        page = await client.get("/deliveries", params={"limit": 200})
    assert again.status_code == 409
    assert "retried at" in again.json()["detail"]
    delivered = fresh.wait_for_message(failed["messageId"])
    assert delivered["data"]["message"] == "Your appointment is tomorrow."
    assert fresh.attempts[failed["messageId"]] == 2  # the refused first, the retry
    assert fresh.absorbed[failed["messageId"]] == 0
    (listed,) = [m for m in page.json()["items"] if m["runId"] == run_id]
    assert listed["retriedAt"] is not None
    # The run went on long ago; the retry's outcome is on the operators' list.
    async with api_client(delivering_stack) as client:
        retry = await _retry_outcome(client, run_id)
    assert (retry["attempt"], retry["status"], retry["reason"]) == (2, "sent", None)
    assert retry["reportedAt"] is not None


async def _retry_outcome(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    retry: dict[str, Any] = {}
    while time.monotonic() < deadline:
        page = await client.get("/deliveries", params={"limit": 200})
        (listed,) = [m for m in page.json()["items"] if m["runId"] == run_id]
        retry = listed["retry"] or {}
        if retry.get("status") not in (None, "pending"):
            return retry
        await asyncio.sleep(0.1)
    raise AssertionError(f"the retry of run {run_id} was not reported: {retry}")


BILINGUAL = {
    "name": "Pre-visit reminder",
    "start_node_id": "remind",
    "nodes": [
        {"id": "remind", "type": "MESSAGE", "channel": "email",
         "subject": "{{ clinic }}: your visit",
         "message": "Hello {{ first_name }}, see you at {{ clinic }}.",
         "templates": {"es": "Hola {{ first_name }}, le esperamos en {{ clinic }}."}},
    ],
}  # fmt: skip


async def test_a_bilingual_journey_reaches_each_patients_inbox_in_their_language(
    delivering_stack: Stack, inbox: SmtpInbox
) -> None:
    patients = {
        "ana@example.org": {"id": "patient-es-1", "first_name": "Ana", "language": "es",
                            "email": "ana@example.org", "clinic": "Clínica Norte"},
        "bob@example.org": {"id": "patient-en-1", "first_name": "Bob", "language": "en-GB",
                            "email": "bob@example.org", "clinic": "North Clinic"},
    }  # fmt: skip
    async with api_client(delivering_stack) as client:
        journey_id = await create_journey(client, BILINGUAL)
        runs = [await trigger(client, journey_id, context) for context in patients.values()]
        for run_id in runs:
            await wait_for_status(client, run_id, {"completed"}, within=60)
    mails = {m["To"]: m for m in inbox.wait_for(2) if m["To"] in patients}
    assert mails["ana@example.org"].get_content().strip() == (
        "Hola Ana, le esperamos en Clínica Norte."
    )
    assert mails["ana@example.org"]["Subject"] == "Clínica Norte: your visit"
    assert mails["bob@example.org"].get_content().strip() == "Hello Bob, see you at North Clinic."
    assert len(inbox.by_message_id()) >= 2
    assert all(len(copies) == 1 for copies in inbox.by_message_id().values())
