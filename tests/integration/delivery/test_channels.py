"""The SMS and email channels against real servers on loopback, through the delivery service
and a real broker: what each provider receives, how its answers become reports, and that a
request sent again (as after a crash) reaches the patient once where the provider can tell."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from journeys_contracts.commands import RecordDelivery, decode_command
from journeys_contracts.deliveries import DeliveryRequested
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from journeys_delivery.app import DeliveryService
from journeys_delivery.settings import DeliverySettings
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.integration.delivery.test_delivery import send
from tests.integration.executor.test_executor import SECRET, _read
from tests.providers.sms import ACCOUNT_SID, AUTH_TOKEN, SENDER, SmsGateway
from tests.providers.smtp import SmtpInbox

pytestmark = pytest.mark.integration

TEXT = "canary-channel-8d1f"


@pytest.fixture
def sms() -> Iterator[SmsGateway]:
    with SmsGateway() as running:
        yield running


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SmtpInbox]:
    with SmtpInbox(tmp_path) as running:
        yield running


@asynccontextmanager
async def delivering(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox
) -> AsyncIterator[DeliveryService]:
    settings = DeliverySettings(**{
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOURNEYS_TOPIC_PREFIX": topics.prefix,
        "JOURNEYS_PARTITIONS": PARTITIONS, "JOURNEYS_PATIENT_KEY_SECRET": SECRET,
        "ops_port": 0, "poll_timeout_ms": 50, "retry_initial_seconds": 5,
        "sms_url": sms.url, "sms_account_sid": ACCOUNT_SID, "sms_auth_token": AUTH_TOKEN,
        "sms_from": SENDER, "sms_timeout_seconds": 2,
        "smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_from": "care@clinic.example",
        "smtp_ca_file": str(inbox.cert), "smtp_timeout_seconds": 5,
    })  # fmt: skip
    service = DeliveryService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def request(channel: Any, **fields: Any) -> DeliveryRequested:
    patient = f"patient-{uuid.uuid4().hex[:6]}"
    values: dict[str, Any] = {
        "message_id": uuid.uuid4(), "run_id": uuid.uuid4(), "journey_id": uuid.uuid4(),
        "node_id": "hello", "patient_key": patient_key(SECRET, patient), "patient_id": patient,
        "channel": channel, "message": TEXT, "requested_at": datetime.now(UTC), **fields,
    }  # fmt: skip
    return DeliveryRequested(**values)


async def deliver(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox,
    *requests: DeliveryRequested,
) -> dict[uuid.UUID, list[RecordDelivery]]:  # fmt: skip
    from journeys_contracts.envelope import CloudEvent

    records = [
        (topics.deliveries, r.patient_key.encode(), r.to_json(),
         CloudEvent(id=str(uuid.uuid4()), type=r.type, source="/tests", subject=str(r.run_id),
                    time=datetime.now(UTC)))
        for r in requests
    ]  # fmt: skip
    await send(kafka_bootstrap, records)
    runs = {str(r.run_id) for r in requests}
    async with delivering(kafka_bootstrap, topics, sms, inbox):
        reports = await _read(kafka_bootstrap, topics.commands, len(requests), runs, within=30)
    found: dict[uuid.UUID, list[RecordDelivery]] = {}
    for r in reports:
        command = decode_command(r.value)
        assert isinstance(command, RecordDelivery)
        found.setdefault(command.run_id, []).append(command)
    return found


async def test_an_sms_goes_to_the_gateway_once_even_when_asked_twice(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox
) -> None:
    first = request("sms", phone="+15551230001")
    reports = await deliver(kafka_bootstrap, topics, sms, inbox, first, first)
    assert [(r.delivered, r.channel) for r in reports[first.run_id]] == [(True, "sms")] * 2
    token = str(first.message_id)
    assert sms.attempts[token] == 2
    assert sms.received == {token: {"To": "+15551230001", "From": SENDER, "Body": TEXT}}
    assert sms.refused == []


async def test_an_sms_without_a_number_is_given_up_and_a_throttle_is_honoured(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox
) -> None:
    sms.failures_left, sms.failure_status, sms.retry_after = 1, 429, "7"
    throttled = request("sms", phone="+15551230002")
    nowhere = request("sms")
    reports = await deliver(kafka_bootstrap, topics, sms, inbox, throttled, nowhere)
    (later,) = reports[throttled.run_id]
    assert (later.delivered, later.reason) == (False, "sms gateway answered 429")
    assert later.retry_after_seconds is not None
    assert later.retry_after_seconds >= 7
    (given_up,) = reports[nowhere.run_id]
    assert (given_up.delivered, given_up.retry_after_seconds) == (False, None)
    assert given_up.reason == "no phone number in the patient context"
    dead = await _read(kafka_bootstrap, topics.dlq, 1, {str(nowhere.run_id)})
    assert [header(d.headers, "dlq_stage") for d in dead] == ["delivery"]


async def test_an_email_arrives_over_starttls_with_its_subject_and_message_id(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox
) -> None:
    mail = request("email", email="pat@example.org", subject="Your visit tomorrow")
    reports = await deliver(kafka_bootstrap, topics, sms, inbox, mail)
    assert [(r.delivered, r.channel) for r in reports[mail.run_id]] == [(True, "email")]
    (received,) = inbox.wait_for(1)
    assert inbox.tls_sessions == 1
    assert received["To"] == "pat@example.org"
    assert received["From"] == "care@clinic.example"
    assert received["Subject"] == "Your visit tomorrow"
    assert received["Message-ID"] == f"<{mail.message_id}@clinic.example>"
    assert received.get_content().strip() == TEXT


@pytest.mark.parametrize(("answer", "final"), [("451 4.3.0 try later", False),
                                               ("550 5.1.1 no such user", True)])  # fmt: skip
async def test_an_smtp_error_is_retried_when_temporary_and_given_up_when_permanent(
    kafka_bootstrap: str, topics: Topics, sms: SmsGateway, inbox: SmtpInbox,
    answer: str, final: bool,
) -> None:  # fmt: skip
    inbox.answer = answer
    mail = request("email", email="pat@example.org")
    (report,) = (await deliver(kafka_bootstrap, topics, sms, inbox, mail))[mail.run_id]
    assert report.delivered is False
    assert report.reason == f"smtp server answered {answer[:3]}"
    assert (report.retry_after_seconds is None) is final
