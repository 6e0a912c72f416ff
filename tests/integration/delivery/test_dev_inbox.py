"""`make run`'s development inbox takes what the real channels send (SMTP, a signed webhook, a
Twilio-shaped SMS request) and writes each message once to its file."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.app import channels_of
from journeys_delivery.channels import Sent
from journeys_delivery.settings import DeliverySettings
from journeys_stack.inbox import DevInbox
from journeys_stack.ports import free_ports

pytestmark = pytest.mark.integration


async def test_every_channel_lands_in_the_inbox_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smtp_port, http_port = free_ports(2)
    inbox = DevInbox(tmp_path / "inbox.log", smtp_port, http_port)
    inbox.start()
    try:
        for name, value in inbox.settings().items():  # as the stack hands them to the service
            monkeypatch.setenv(name, value)
        channels = channels_of(DeliverySettings())
        sent = []
        for name in ("email", "webhook", "sms"):
            request = DeliveryRequested(
                message_id=uuid.uuid4(), run_id=uuid.uuid4(), journey_id=uuid.uuid4(),
                node_id="hello", patient_key="a" * 64, patient_id="patient-123",
                channel=name, message=f"Welcome by {name}!", requested_at=datetime.now(UTC),
                phone="+15551230009", email="patient@example.org", subject="Welcome",
            )  # fmt: skip
            for _ in range(2):  # sent again, as after a crash
                assert await channels[name].send(request) == Sent()
            sent.append(request)
        for channel in channels.values():
            await channel.close()
    finally:
        inbox.stop()
    lines = [json.loads(line) for line in (tmp_path / "inbox.log").read_text().splitlines()]
    assert [(line["channel"], line["text"]) for line in lines] == [
        ("email", "Welcome by email!"), ("webhook", "Welcome by webhook!"),
        ("sms", "Welcome by sms!"),
    ]  # fmt: skip
    assert lines[0]["subject"] == "Welcome"
    assert lines[0]["messageId"] == f"<{sent[0].message_id}@journeys.localhost>"
    assert lines[2]["to"] == "+15551230009"
