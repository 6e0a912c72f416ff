"""POST /hooks/{source} on a real Kafka and PostgreSQL: a Standard Webhooks request signed under
the source's secret lands exactly as POST /events lands an event (one sealed command, source
`hook:<source>`, the same receipt id); a bad or stale signature is 401 alike, an unknown source
404, a body the mapping cannot read 422 naming the pointer; a replay takes no new effect."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from journeys_contracts.commands import RecordPatientEventSealed, decode_command, receipt_id
from journeys_contracts.keys import patient_key
from journeys_runtime.sealing import open_value
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import Api, api_settings, serving
from tests.integration.api.helpers import audit_records, commands_on_topic, data_key

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
PATIENT = "patient-hook-4711"
KEY = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
MARKER = "marker-hook-data-quokka"
SOURCES = {
    # The sender's own id at /id; its event type at /event.
    "crm": {"secret": SECRET, "eventId": "/id", "patientId": "/patient/id", "type": "/event",
            "occurredAt": "/at", "data": "/data"},
    # No eventId pointer: the event id is the webhook-id. One kind of event.
    "forms": {"secret": [OTHER_SECRET, SECRET], "patientId": "/patientId",
              "typeConstant": "intake_form.submitted"},
}  # fmt: skip


@pytest.fixture
async def api(kafka_bootstrap: str, read_models: str, topics: Topics) -> AsyncIterator[Api]:
    settings = api_settings(kafka_bootstrap, read_models, topics, webhook_sources=SOURCES)
    async with serving(settings) as client:
        client.headers.pop("X-API-Key")  # the signature is the credential
        yield Api(client, settings, read_models, topics)


def signed(
    body: Any, msg_id: str = "msg_1", *, secret: str = SECRET, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sent_at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, sent_at, content)
    return content, {
        "webhook-id": msg_id, "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature, "content-type": "application/json",
    }  # fmt: skip


async def post(
    client: httpx.AsyncClient, source: str, request: tuple[bytes, dict[str, str]]
) -> Any:
    content, headers = request
    return await client.post(f"/hooks/{source}", content=content, headers=headers)


def crm_event(**fields: Any) -> dict[str, Any]:
    return {"id": "crm-81", "event": "appointment.booked", "at": "2026-12-03T10:00:00Z",
            "patient": {"id": PATIENT}, "data": {"note": MARKER}, **fields}  # fmt: skip


async def test_a_signed_webhook_is_a_sealed_command_of_its_source_with_the_events_receipt_id(
    api: Api,
) -> None:
    answer = await post(api.client, "crm", signed(crm_event()))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    [record] = await commands_on_topic(api)
    assert record.key == KEY.encode()
    assert MARKER.encode() not in record.value
    assert PATIENT.encode() not in record.value
    command = decode_command(record.value)
    assert isinstance(command, RecordPatientEventSealed)
    assert command.source == "hook:crm"
    assert command.event_id == "crm-81"
    assert command.event_type == "appointment.booked"
    assert command.receipt_id == receipt_id(KEY, "crm-81")  # as POST /events names it
    assert command.occurred_at == datetime(2026, 12, 3, 10, tzinfo=UTC)
    key = data_key(api.database_url, KEY)
    assert open_value(key, KEY, "patientId", command.patient_id) == PATIENT
    assert open_value(key, KEY, "eventData", command.event_data) == {"note": MARKER}
    [audit] = (await audit_records(api.settings.kafka_bootstrap_servers, api.topics)).values()
    assert (audit.subject, audit.route, audit.status) == ("hook:crm", "/hooks/{source}", 202)
    assert audit.patient_keys == [KEY]


async def test_a_replayed_webhook_names_the_same_receipt_so_it_takes_effect_once(
    api: Api,
) -> None:
    """No eventId pointer: the webhook-id is the event id. With one: the signed body's id.
    Either way a replay is the same receipt, which the executor takes once."""
    form = signed({"patientId": PATIENT, "answers": 3}, "msg_2a8f")
    crm = signed(crm_event(), "msg_77")
    for request in (form, form, crm, crm):
        assert (
            await post(api.client, "forms" if request is form else "crm", request)
        ).status_code == 202
    receipts = [decode_command(r.value).receipt_id for r in await commands_on_topic(api)]
    assert sorted(receipts) == sorted(
        [receipt_id(KEY, "msg_2a8f")] * 2 + [receipt_id(KEY, "crm-81")] * 2
    )
    assert {decode_command(r.value).event_type for r in await commands_on_topic(api)} == {
        "intake_form.submitted",
        "appointment.booked",
    }


async def test_any_failed_signature_check_is_the_same_401_and_sends_nothing(api: Api) -> None:
    content, headers = signed(crm_event())
    stale = signed(crm_event(), at=datetime.now(UTC) - timedelta(minutes=6))
    early = signed(crm_event(), at=datetime.now(UTC) + timedelta(minutes=6))
    wrong_secret = signed(crm_event(), secret=OTHER_SECRET)
    tampered = (content.replace(b"crm-81", b"crm-82"), headers)
    no_signature = (content, {k: v for k, v in headers.items() if k != "webhook-signature"})
    other_id = (content, {**headers, "webhook-id": "msg_other"})
    details = set()
    for request in (stale, early, wrong_secret, tampered, no_signature, other_id):
        answer = await post(api.client, "crm", request)
        assert answer.status_code == 401, answer.text
        details.add(answer.json()["detail"])
    assert details == {"webhook signature or timestamp invalid"}
    assert await commands_on_topic(api) == []
    # Still no credential needed beside the signature, and an unknown source is 404.
    assert (await post(api.client, "crm", (content, headers))).status_code == 202
    assert (await post(api.client, "billing", (content, headers))).status_code == 404


async def test_a_body_the_mapping_cannot_read_is_422_naming_the_pointer_not_the_value(
    api: Api,
) -> None:
    no_patient = crm_event(patient={"name": MARKER})
    bad_type = crm_event(event="Appointment Booked!")
    answer = await post(api.client, "crm", signed(no_patient))
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"type": "value_error", "loc": ["body", "/patient/id"], "msg": "patientId: missing"}
    ]
    answer = await post(api.client, "crm", signed(bad_type))
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "/event"]
    assert error["msg"].startswith("type: ")
    assert "Appointment" not in answer.text
    assert MARKER not in answer.text
    answer = await post(api.client, "crm", signed([crm_event()]))
    assert answer.status_code == 422  # one event per webhook
    assert await commands_on_topic(api) == []
