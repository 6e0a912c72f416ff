"""End to end, patients texting back through a Twilio-shaped gateway on loopback: a STOP mid-
journey suppresses the next SMS, START restores it, HELP is answered, every text is a
`message.replied` event a journey can wait for; a number never texted, a forged signature,
a repeat of a text and a form without a sender change nothing."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator

from tests.e2e.browser import accessible, shot, signed_in
from tests.e2e.conftest import Stack, api_client, running_stack
from tests.e2e.helpers import (
    create_journey,
    timeline,
    trigger,
    types,
    wait_for_status,
    wait_for_type,
)
from tests.providers.sms import ACCOUNT_SID, AUTH_TOKEN, SENDER, SmsGateway

pytestmark = pytest.mark.e2e

HELP_TEXT = "Clinic reminders. Reply STOP to end & START to resume."
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as running:
        yield running


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    admin_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    gateway: SmsGateway,
) -> Iterator[Stack]:
    env = {"DELIVERY_SMS_URL": gateway.url, "DELIVERY_SMS_ACCOUNT_SID": ACCOUNT_SID,
           "DELIVERY_SMS_AUTH_TOKEN": AUTH_TOKEN, "DELIVERY_SMS_FROM": SENDER,
           "API_SMS_AUTH_TOKEN": AUTH_TOKEN, "API_SMS_HELP_TEXT": HELP_TEXT}  # fmt: skip
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory, env) as running:
        yield running


def _sms(node_id: str, text: str, nxt: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "MESSAGE", "message": text, "channel": "sms",
            "next_node_id": nxt}  # fmt: skip


def _check_in(name: str, question: str) -> dict[str, Any]:
    """Ask by SMS, wait for the reply, thank the patient for it."""
    return {
        "name": name, "start_node_id": "ask",
        "nodes": [
            _sms("ask", question, "wait"),
            {"id": "wait", "type": "WAIT_FOR_EVENT", "event": "message.replied",
             "timeout_seconds": 600, "on_event_next_node_id": "thanks",
             "on_timeout_next_node_id": None},
            _sms("thanks", "Thank you, your care team will read it."),
        ],
    }  # fmt: skip


async def _sent(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run's `message.sent`, once it is in the timeline."""
    events = await wait_for_type(client, run_id, "message.sent")
    return dict(next(e["data"] for e in events if e["type"] == "journeys.message.sent.v1"))


async def _reply(gateway: SmsGateway, stack: Stack, sender: str, text: str,
                 sid: str | None = None) -> httpx.Response:  # fmt: skip
    return await asyncio.to_thread(gateway.reply, stack.api_url, sender, text, sid=sid)


async def _event(client: httpx.AsyncClient, event_id: str, effects: int) -> dict[str, Any]:
    """`GET /events/{eventId}` once it shows `effects` effects."""
    deadline = time.monotonic() + 30
    last: Any = None
    while time.monotonic() < deadline:
        last = await client.get(f"/events/{event_id}")
        if (
            last.status_code == 200
            and sum(len(r["effects"]) for r in last.json()["receipts"]) >= effects
        ):
            return dict(last.json())
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"event {event_id}: {last.status_code if last else None} {last.text if last else ''}"
    )


async def _consent(client: httpx.AsyncClient, patient_id: str, *, granted: bool) -> dict[str, Any]:
    """`GET /patients/{patientId}/consent` once SMS shows `granted`."""
    deadline = time.monotonic() + 30
    channels: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/patients/{patient_id}/consent")
        assert response.status_code == 200, response.text
        channels = dict(response.json()["channels"])
        if channels["sms"]["granted"] is granted:
            return channels
        await asyncio.sleep(0.1)
    raise AssertionError(f"consent to sms of {patient_id} is not {granted}: {channels}")


async def _one_sms_run(
    client: httpx.AsyncClient, journey_id: str, context: dict[str, Any]
) -> list[str]:
    run_id = await trigger(client, journey_id, context)
    await wait_for_status(client, run_id, {"completed"})
    return types(await timeline(client, run_id))


async def test_a_stop_text_suppresses_the_next_sms_help_is_answered_and_start_restores(
    stack: Stack, gateway: SmsGateway
) -> None:
    journey = _check_in("Check-in", "How are you feeling today? Reply in a few words.")
    # As people type it; the gateway writes the sender in E.164.
    context = {"id": "patient-sms-1", "phone": "+1 (555) 010-2001"}
    sender = "+15550102001"
    async with api_client(stack) as client:
        run_id = await trigger(client, await create_journey(client, journey), context)
        sent = await _sent(client, run_id)
        assert len(sent["recipientKey"]) == 64  # a keyed hash of the number, never the number
        assert "phone" not in sent
        await wait_for_status(client, run_id, {"waiting_event"})

        sid = "SM" + uuid.uuid4().hex
        stop = await _reply(gateway, stack, sender, " Stop. ", sid)
        assert stop.status_code == 200, stop.text
        assert stop.headers["content-type"].startswith("application/xml")
        assert stop.text == EMPTY
        await wait_for_status(client, run_id, {"completed"})
        events = await timeline(client, run_id)
        assert types(events)[-4:] == [
            "event.matched", "node.entered", "message.suppressed", "run.completed"
        ]  # fmt: skip
        suppressed = events[-2]["data"]
        assert (suppressed["nodeId"], suppressed["channel"], suppressed["reason"]) == (
            "thanks", "sms", "consent"
        )  # fmt: skip
        receipt = (await _event(client, f"sms:{sid}", 1))["receipts"][0]
        assert (receipt["type"], receipt["source"]) == ("message.replied", "sms")
        assert [(e["effect"], e["runId"]) for e in receipt["effects"]] == [("resumed", run_id)]
        to_patient = [m for m in gateway.received.values() if m["To"] == context["phone"]]
        assert [m["Body"] for m in to_patient] == [journey["nodes"][0]["message"]]

        consent = await _consent(client, "patient-sms-1", granted=False)
        assert consent["sms"]["source"] == "sms"
        assert consent["email"] == {"granted": True, "source": None, "changedAt": None,
                                    "consentId": None}  # fmt: skip

        once = await create_journey(
            client,
            {
                "name": "Reminder",
                "start_node_id": "r",
                "nodes": [_sms("r", "Your appointment is at 9.")],
            },
        )
        assert "message.suppressed" in await _one_sms_run(client, once, context)

        helped = await _reply(gateway, stack, sender, "help")
        assert helped.status_code == 200
        assert helped.text == (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            "Clinic reminders. Reply STOP to end &amp; START to resume.</Message></Response>"
        )

        start = await _reply(gateway, stack, sender, "START")
        assert (start.status_code, start.text) == (200, EMPTY)
        # The gateway sending the STOP again (same MessageSid) does not revoke it anew.
        again = await _reply(gateway, stack, sender, " Stop. ", sid=sid)
        assert (again.status_code, again.text) == (200, EMPTY)
        assert (await _consent(client, "patient-sms-1", granted=True))["sms"]["source"] == "sms"
        after = await _one_sms_run(client, once, context)
        assert "message.sent" in after
        assert "message.suppressed" not in after

        # The whole exchange, as a care team reads it: the repeated STOP is not in it twice.
        said = [(m["direction"], m["text"], m["status"] or m["keyword"])
                for m in await _conversation(client, "patient-sms-1", 7)]  # fmt: skip
        assert said == [
            ("out", journey["nodes"][0]["message"], "sent"),
            ("in", " Stop. ", "stop"),
            ("out", None, "suppressed"),  # never rendered: consent was checked first
            ("out", None, "suppressed"),
            ("in", "help", "help"),
            ("in", "START", "start"),
            ("out", "Your appointment is at 9.", "sent"),
        ]


async def _conversation(
    client: httpx.AsyncClient, patient_id: str, count: int
) -> list[dict[str, Any]]:
    """`POST /patients/conversation` once it has `count` messages, the last one reported."""
    deadline = time.monotonic() + 30
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.post("/patients/conversation", json={"patientId": patient_id})
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        if len(messages) >= count and messages[-1]["status"] not in ("requested", None):
            return messages
        await asyncio.sleep(0.1)
    raise AssertionError(f"the conversation of {patient_id}: {messages}")


async def test_texts_that_must_change_nothing(stack: Stack, gateway: SmsGateway) -> None:
    async with api_client(stack) as client:
        sid = "SM" + uuid.uuid4().hex
        stranger = await _reply(gateway, stack, "+15550109999", "STOP", sid)
        assert (stranger.status_code, stranger.text) == (200, EMPTY)
        await asyncio.sleep(1)
        assert (await client.get(f"/events/sms:{sid}")).status_code == 404

        forged = await asyncio.to_thread(
            gateway.reply, stack.api_url, "+15550102001", "STOP", token="not-the-token"
        )
        assert forged.status_code == 401
        assert forged.json() == {"detail": "SMS gateway signature invalid"}

        url = f"{stack.api_url}/channels/sms/inbound"
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "Body": "STOP"}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
        async with httpx.AsyncClient() as raw:
            missing = await raw.post(url, data=form, headers={SIGNATURE_HEADER: signature})
        assert missing.status_code == 422
        assert [e["loc"] for e in missing.json()["detail"]] == [["body", "From"]]


async def test_the_console_shows_a_patients_conversation_live(
    browser: Browser, stack: Stack, gateway: SmsGateway
) -> None:
    """The conversation page, found by the patient id in a POST (never in the URL): a reply
    the patient texts appears without a reload, then the journey's answer to it, sent."""
    journey = _check_in("Console check-in", "Any pain since the visit? Reply in a few words.")
    patient = {"id": "patient-sms-console", "phone": "+15550102077"}
    async with api_client(stack) as client:
        run_id = await trigger(client, await create_journey(client, journey), patient)
        await _sent(client, run_id)
        await wait_for_status(client, run_id, {"waiting_event"})

        context, page = await signed_in(browser, stack, stack.api_key)
        await page.goto("/console/deliveries")
        await page.get_by_role("link", name="A patient's conversation").click()
        await page.get_by_label("Patient id").fill(patient["id"])
        await page.get_by_role("button", name="Open their conversation").click()
        await expect(page).to_have_url(re.compile(r"/console/deliveries/conversation\?patient="))
        assert patient["id"] not in page.url
        bubbles = page.locator("#conversation li")
        await expect(bubbles).to_have_count(1)
        await expect(bubbles.first).to_contain_text("Any pain since the visit?")
        await expect(bubbles.first).to_contain_text("sent")
        await expect(page.locator("#live-state")).to_have_text("live")

        reply = await _reply(gateway, stack, patient["phone"], "A little, on the left side")
        assert reply.status_code == 200, reply.text
        await expect(bubbles).to_have_count(3, timeout=15_000)  # no reload: the stream
        await expect(bubbles.nth(1)).to_have_attribute("data-direction", "in")
        await expect(bubbles.nth(1)).to_contain_text("A little, on the left side")
        await expect(bubbles.nth(2)).to_contain_text("Thank you, your care team will read it.")
        await expect(bubbles.nth(2)).to_contain_text("sent", timeout=15_000)
        await shot(page, "17-conversation")
        await accessible(page)
        await context.close()
