"""The delivery service against a real broker and a real HTTP gateway on loopback: with the
executor in service mode, a run's message leaves as a delivery request, the service sends it
signed to the gateway and reports the outcome, and the run goes on; a sealed run's request
carries no patient data in clear; a failing gateway's answer reaches the run as a failure;
poison goes to the dead-letter topic and a newer record type is skipped."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from journeys_contracts.commands import StartRun, decode_command
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.deliveries import DeliveryRequested
from journeys_contracts.envelope import CloudEvent, header
from journeys_contracts.events import decode_event
from journeys_contracts.keys import patient_key
from journeys_delivery.app import DeliveryService
from journeys_delivery.settings import DeliverySettings
from journeys_runtime.kafka import producer
from journeys_runtime.keyring import Keyring
from journeys_runtime.sealing import seal_delivery, to_wire
from journeys_runtime.shredding import DataKey
from journeys_runtime.topics import Topics
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_executor import SECRET, _read
from tests.integration.executor.test_sealed import Patient
from tests.providers.webhook import WebhookGateway

pytestmark = pytest.mark.integration

TEXT = "canary-delivery-5b7e"
JOURNEY = JourneyDefinition.model_validate({
    "name": "by webhook", "start_node_id": "hello",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": TEXT, "channel": "webhook",
               "next_node_id": "bye"},
              {"id": "bye", "type": "MESSAGE", "message": TEXT + " again", "channel": "webhook"}],
})  # fmt: skip
DELIVERED = [
    "journeys.run.started", "journeys.node.entered", "journeys.message.requested",
    "journeys.message.sent", "journeys.node.entered", "journeys.message.requested",
    "journeys.message.sent", "journeys.run.completed",
]  # fmt: skip


@pytest.fixture
def gateway() -> Iterator[WebhookGateway]:
    with WebhookGateway() as running:
        yield running


@pytest.fixture
def executor(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    with executor_process(
        kafka_bootstrap, topics, tmp_path_factory.mktemp("executor"), delivery=False,
        JOURNEYS_PATIENT_KEY_SECRET=SECRET,
    ) as supervisor:  # fmt: skip
        yield supervisor


def settings(
    kafka_bootstrap: str, topics: Topics, gateway: WebhookGateway, **more: Any
) -> DeliverySettings:
    return DeliverySettings(**{
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOURNEYS_TOPIC_PREFIX": topics.prefix,
        "JOURNEYS_PARTITIONS": PARTITIONS, "JOURNEYS_PATIENT_KEY_SECRET": SECRET,
        "ops_port": 0, "poll_timeout_ms": 50,
        "webhook_url": gateway.url, "webhook_secret": gateway.secret,
        "webhook_timeout_seconds": 2, **more,
    })  # fmt: skip


@asynccontextmanager
async def delivering(
    kafka_bootstrap: str, topics: Topics, gateway: WebhookGateway, **more: Any
) -> AsyncIterator[DeliveryService]:
    service = DeliveryService(settings(kafka_bootstrap, topics, gateway, **more))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def send(bootstrap: str, records: list[tuple[str, bytes, bytes, CloudEvent]]) -> None:
    p = producer(bootstrap)
    await p.start()
    try:
        acks = [await p.send(topic, value, key=key, headers=envelope.headers())
                for topic, key, value, envelope in records]  # fmt: skip
        await asyncio.gather(*acks)
    finally:
        await p.stop()


def request(
    topics: Topics, patient: str, channel: Any, run_id: uuid.UUID
) -> tuple[str, bytes, bytes, CloudEvent]:
    """A clear delivery request of one message of `run_id`, as the executor writes it."""
    key = patient_key(SECRET, patient)
    r = DeliveryRequested(
        message_id=uuid.uuid4(), run_id=run_id, journey_id=uuid.uuid4(), node_id="n",
        patient_key=key, patient_id=patient, channel=channel, message=TEXT,
        requested_at=datetime.now(UTC),
    )  # fmt: skip
    envelope = CloudEvent(id=str(uuid.uuid4()), type=r.type, source="/tests",
                          subject=str(run_id), time=datetime.now(UTC))  # fmt: skip
    return topics.deliveries, key.encode(), r.to_json(), envelope


def start(run_id: uuid.UUID, patient: str) -> StartRun:
    return StartRun(run_id=run_id, journey_id=uuid.uuid4(), patient_id=patient,
                    patient_context={"id": patient}, definition=JOURNEY,
                    requested_at=datetime.now(UTC))  # fmt: skip


def command_record(topics: Topics, key: str, command: Any) -> tuple[str, bytes, bytes, CloudEvent]:
    envelope = CloudEvent(id=str(uuid.uuid4()), type=command.type, source="/tests",
                          subject=str(command.run_id), time=datetime.now(UTC))  # fmt: skip
    return topics.commands, key.encode(), command.to_json(), envelope


def types(records: list[Any]) -> list[str]:
    return [header(r.headers, "ce_type").rsplit(".", 1)[0] for r in records]


async def test_a_message_goes_out_signed_once_and_the_run_goes_on(
    kafka_bootstrap: str, topics: Topics, executor: Supervisor, gateway: WebhookGateway
) -> None:
    clear, sealed = uuid.uuid4(), uuid.uuid4()
    patient = Patient("delivery")
    name = f"clear-{uuid.uuid4().hex[:6]}"
    async with delivering(kafka_bootstrap, topics, gateway):
        await send(kafka_bootstrap, [
            command_record(topics, patient_key(SECRET, name), start(clear, name)),
            command_record(topics, patient.key, patient.start(sealed, JOURNEY)),
        ])  # fmt: skip
        events = await _read(kafka_bootstrap, topics.events, 2 * len(DELIVERED),
                             {str(clear), str(sealed)}, within=60)  # fmt: skip
    by_run = {run: [r for r in events if header(r.headers, "ce_subject") == str(run)]
              for run in (clear, sealed)}  # fmt: skip
    for run in (clear, sealed):
        assert types(by_run[run]) == DELIVERED
        sent = [decode_event(r.value) for r in by_run[run]][3]
        assert sent.channel == "webhook"  # type: ignore[union-attr]

    received = gateway.wait_for(4)
    assert gateway.refused == []
    assert sorted(m["data"]["message"] for m in received.values()) == [
        TEXT,
        TEXT,
        f"{TEXT} again",
        f"{TEXT} again",
    ]
    assert sorted(m["data"]["patientId"] for m in received.values()) == sorted(
        [name, name, patient.id, patient.id]
    )
    requested = [decode_event(r.value) for r in events if "message.requested" in
                 header(r.headers, "ce_type")]  # fmt: skip
    assert {str(e.message_id) for e in requested} == set(received)  # type: ignore[union-attr]
    assert all(n == 1 for n in gateway.attempts.values())

    # The requests: a sealed run's carries its patient's data sealed, the clear run's in clear.
    requests = await _read(kafka_bootstrap, topics.deliveries, 4, {str(clear), str(sealed)})
    kinds = {header(r.headers, "ce_subject"): header(r.headers, "ce_type") for r in requests}
    assert kinds == {str(clear): "journeys.delivery.requested.v1",
                     str(sealed): "journeys.delivery.requested.v2"}  # fmt: skip
    for r in requests:
        assert r.key.decode() in (patient.key, patient_key(SECRET, name))
        if header(r.headers, "ce_subject") == str(sealed):
            patient.assert_no_clear_data([r.value])


async def test_a_final_gateway_error_reaches_the_run_as_a_failed_message(
    kafka_bootstrap: str, topics: Topics, executor: Supervisor, gateway: WebhookGateway
) -> None:
    gateway.status = 400
    run_id = uuid.uuid4()
    name = f"refused-{uuid.uuid4().hex[:6]}"
    async with delivering(kafka_bootstrap, topics, gateway):
        await send(kafka_bootstrap, [
            command_record(topics, patient_key(SECRET, name), start(run_id, name))
        ])  # fmt: skip
        events = await _read(kafka_bootstrap, topics.events, 8, {str(run_id)}, within=60)
    # A 400 is final: each message fails at once, and the run goes on past it.
    assert types(events) == [
        "journeys.run.started", "journeys.node.entered", "journeys.message.requested",
        "journeys.message.failed", "journeys.node.entered", "journeys.message.requested",
        "journeys.message.failed", "journeys.run.completed",
    ]  # fmt: skip
    assert sum(gateway.attempts.values()) == 2
    failed = decode_event(events[3].value)
    assert failed.reason == "gateway answered 400"  # type: ignore[union-attr]
    assert name not in json.dumps(failed.reason)  # type: ignore[union-attr]


async def test_poison_is_dead_lettered_a_newer_type_skipped_and_an_unknown_channel_reported(
    kafka_bootstrap: str, topics: Topics, gateway: WebhookGateway
) -> None:
    key = patient_key(SECRET, "someone")
    run_id = uuid.uuid4()
    sms = DeliveryRequested(
        message_id=uuid.uuid4(), run_id=run_id, journey_id=uuid.uuid4(), node_id="n",
        patient_key=key, patient_id="someone", channel="sms", message=TEXT,
        requested_at=datetime.now(UTC),
    )  # fmt: skip

    def record(value: bytes, kind: str) -> tuple[str, bytes, bytes, CloudEvent]:
        envelope = CloudEvent(id=str(uuid.uuid4()), type=kind, source="/tests",
                              subject=str(run_id), time=datetime.now(UTC))  # fmt: skip
        return topics.deliveries, key.encode(), value, envelope

    newer = json.dumps({**json.loads(sms.to_json()), "type": "journeys.delivery.requested.v9"})
    # Sealed under a key no key-encryption key here unwraps: parked, and its run told.
    closed_run = uuid.uuid4()
    closed = seal_delivery(
        sms.model_copy(update={"run_id": closed_run, "message_id": uuid.uuid4()}),
        DataKey.generate(),
        to_wire(Keyring.parse("other=" + base64.b64encode(b"k" * 32).decode(), "other")
                .wrap(key, DataKey.generate())),
    )  # fmt: skip
    await send(kafka_bootstrap, [
        record(b"{not json", "journeys.delivery.requested.v1"),
        record(newer.encode(), "journeys.delivery.requested.v9"),
        record(sms.to_json(), sms.type),
        (topics.deliveries, key.encode(), closed.to_json(),
         CloudEvent(id=str(uuid.uuid4()), type=closed.type, source="/tests",
                    subject=str(closed_run), time=datetime.now(UTC))),
    ])  # fmt: skip
    async with delivering(kafka_bootstrap, topics, gateway):
        reports = await _read(kafka_bootstrap, topics.commands, 1, {str(run_id)})
        dead = await _read(kafka_bootstrap, topics.dlq, 2, {str(run_id)})
        (unopened,) = await _read(kafka_bootstrap, topics.commands, 1, {str(closed_run)})
    told = decode_command(unopened.value)
    assert (told.delivered, told.reason) == (False, "delivery request did not open")  # type: ignore[union-attr]
    (report,) = [decode_command(r.value) for r in reports]
    assert report.delivered is False  # type: ignore[union-attr]
    assert report.reason == "channel sms is not configured"  # type: ignore[union-attr]
    assert reports[0].key == key.encode()
    poison, given_up = dead
    assert poison.value == b"{not json"
    assert header(poison.headers, "dlq_stage") == "decode"
    # A message no channel can send is given up at once, and parked with the reason.
    assert given_up.value == sms.to_json()
    assert header(given_up.headers, "dlq_stage") == "delivery"
    assert header(given_up.headers, "dlq_error") == "channel sms is not configured"
    assert gateway.attempts == {}


async def test_a_hanging_gateway_holds_back_only_its_own_messages(
    kafka_bootstrap: str, topics: Topics, gateway: WebhookGateway
) -> None:
    """One patient, so both requests share a partition: the console message read after the
    webhook one is reported while the gateway still hangs on the first, which is given up after
    `DELIVERY_WEBHOOK_TIMEOUT_SECONDS` (2 s here)."""
    gateway.hang_seconds = 4
    slow, fast = uuid.uuid4(), uuid.uuid4()

    await send(kafka_bootstrap, [request(topics, "patient-hang", "webhook", slow),
                                 request(topics, "patient-hang", "console", fast)])  # fmt: skip
    async with delivering(kafka_bootstrap, topics, gateway):
        early = await _read(kafka_bootstrap, topics.commands, 1, {str(slow), str(fast)},
                            within=3)  # fmt: skip
        late = await _read(kafka_bootstrap, topics.commands, 2, {str(slow), str(fast)},
                           within=20)  # fmt: skip
    assert [header(r.headers, "ce_subject") for r in early] == [str(fast)]
    reports = {header(r.headers, "ce_subject"): decode_command(r.value) for r in late}
    assert reports[str(fast)].delivered is True  # type: ignore[union-attr]
    assert reports[str(slow)].delivered is False  # type: ignore[union-attr]
    assert reports[str(slow)].reason == "gateway timed out"  # type: ignore[union-attr]


async def test_a_burst_keeps_to_the_channels_rate_limit(
    kafka_bootstrap: str, topics: Topics, gateway: WebhookGateway
) -> None:
    """45 messages at once, 15 a second allowed: never more than a second's worth plus the
    bucket in any second, so the burst takes at least two seconds; each sent once."""
    rate, count = 15, 45
    burst = [request(topics, "patient-burst", "webhook", uuid.uuid4()) for _ in range(count)]
    await send(kafka_bootstrap, burst)
    async with delivering(kafka_bootstrap, topics, gateway, webhook_rate_per_second=rate):
        await asyncio.to_thread(gateway.wait_for, count)
    times = gateway.accepted_at
    assert len(times) == count
    assert all(n == 1 for n in gateway.attempts.values())
    for i, start in enumerate(times):
        within_a_second = sum(1 for t in times[i:] if t - start < 1.0)
        assert within_a_second <= 2 * rate
    assert times[-1] - times[0] >= (count - rate) / rate * 0.9
