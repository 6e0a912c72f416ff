"""Patient events against a real broker: a sealed event starts the run a journey's trigger
asks for (once, however often it is redelivered), is kept sealed for look-back across a
restart of the executor, resumes a waiting run, exits one, and a malformed one is
dead-lettered while the partition goes on. A patient's consent, set by command, holds across a
restart.

Journeys with triggers are read from the definitions topic, as the API publishes them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from journeys_contracts.commands import (
    ErasePatient,
    RecordPatientEvent,
    RecordPatientEventSealed,
    SetConsent,
    receipt_id,
)
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, header
from journeys_contracts.journeys import JourneyDefined
from journeys_contracts.wire import WireModel
from journeys_executor.core import PatientState, triggered_run_id
from journeys_executor.patients import patient_json, patient_record_key
from journeys_runtime.kafka import partition_of, producer
from journeys_runtime.sealing import seal_value, to_wire
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_executor import SECRET, _read
from tests.integration.executor.test_forgetting import _changelog
from tests.integration.executor.test_sealed import KEYRING, Patient, _topics

pytestmark = pytest.mark.integration
# A value no id or base64 text can contain by chance ("c-1" could: a UUID has "…c-1…" once in
# a few hundred), so finding it in a stored record means it is there in clear.
CLINIC = "clinic-canary-q7z"

DAY = 86400
BOOKED = JourneyDefinition.model_validate({
    "name": "pre-visit", "start_node_id": "hello",
    "triggers": [{"event": "appointment.booked",
                  "when": {"field": "event.data.clinic", "operator": "==", "value": CLINIC}}],
    "exit_on": [{"event": "appointment.cancelled"}],
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": "See you soon", "next_node_id": "form"},
              {"id": "form", "type": "WAIT_FOR_EVENT", "event": "intake_form.submitted",
               "timeout_seconds": 2 * DAY, "lookback_seconds": DAY,
               "on_event_next_node_id": "thanks", "on_timeout_next_node_id": None},
              {"id": "thanks", "type": "MESSAGE", "message": "Thank you"}],
})  # fmt: skip


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> Any:
    return _topics(kafka_bootstrap)


@pytest.fixture(scope="module")
def executor(
    kafka_bootstrap: str, topics: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    with executor_process(
        kafka_bootstrap, topics, tmp_path_factory.mktemp("executor"),
        JOURNEYS_PATIENT_KEY_SECRET=SECRET,
    ) as supervisor:  # fmt: skip
        yield supervisor


@pytest.fixture
async def send(kafka_bootstrap: str, topics: Any) -> AsyncIterator[Any]:
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()

    async def _send(topic: str, record: WireModel, key: str, subject: str) -> None:
        envelope = CloudEvent(str(uuid.uuid4()), record.type, "/tests", subject,
                              datetime.now(UTC))  # fmt: skip
        await p.send_and_wait(topic, record.to_json(), key=key.encode(),
                              headers=envelope.headers())  # fmt: skip

    yield _send
    await p.stop()


def sealed_event(patient: Patient, event_id: str, kind: str, data: dict[str, Any]) -> WireModel:
    """A `record_patient_event.v2`, sealed as the API seals it."""
    now = datetime.now(UTC)
    return RecordPatientEventSealed(
        receipt_id=receipt_id(patient.key, event_id), event_id=event_id, patient_key=patient.key,
        patient_id=seal_value(patient.data_key, patient.key, "patientId", patient.id),
        event_type=kind, occurred_at=now, received_at=now, source="api",
        event_data=seal_value(patient.data_key, patient.key, "eventData", data),
        data_key=to_wire(KEYRING.wrap(patient.key, patient.data_key)),
    )  # fmt: skip


async def _define(send: Any, topics: Any, definition: JourneyDefinition) -> uuid.UUID:
    journey_id = uuid.uuid4()
    record = JourneyDefined(journey_id=journey_id, definition=definition,
                            created_at=datetime.now(UTC))  # fmt: skip
    await send(topics.definitions, record, str(journey_id), str(journey_id))
    return journey_id


def _types(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["type"].removeprefix("journeys.")[:-3] for r in records]


async def test_an_event_starts_the_triggered_run_once_and_the_form_that_follows_resumes_it(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Any
) -> None:
    journey_id = await _define(send, topics, BOOKED)
    patient = Patient("trigger")
    booked = sealed_event(patient, "ehr-1", "appointment.booked", {"clinic": CLINIC})
    other_clinic = sealed_event(patient, "ehr-2", "appointment.booked", {"clinic": "c-9"})
    for record in (booked, booked, other_clinic):  # a redelivery, and one the `when` refuses
        await send(topics.commands, record, patient.key, str(record.receipt_id))
    run = triggered_run_id(journey_id, patient.key, "ehr-1")
    started = await _read(kafka_bootstrap, topics.sealed_events, until=6, subject={str(run)})
    assert _types(started) == ["run.started", "node.entered", "message.requested",
                               "message.sent", "node.entered", "event.waiting"]  # fmt: skip
    first = json.loads(started[0].value)
    assert first["triggerEventId"] == "ehr-1"
    assert first["triggerReceiptId"] == str(receipt_id(patient.key, "ehr-1"))
    patient.assert_no_clear_data([r.value for r in started])

    form = sealed_event(patient, "form-1", "intake_form.submitted", {"score": 7})
    await send(topics.commands, form, patient.key, str(form.receipt_id))
    resumed = await _read(kafka_bootstrap, topics.events, until=11, subject={str(run)})
    assert _types(resumed)[5:] == [
        "event.waiting", "event.matched", "node.entered", "message.requested", "message.sent",
        "run.completed",
    ]  # fmt: skip
    matched = json.loads(resumed[6].value)
    assert matched["eventData"] == {"score": 7}
    assert matched["cancelledTimerId"] == json.loads(resumed[5].value)["timerId"]
    # One run for the event, however often it came; none for the other clinic.
    other = triggered_run_id(journey_id, patient.key, "ehr-2")
    assert await _read(kafka_bootstrap, topics.events, until=0, subject={str(other)},
                       within=1) == []  # fmt: skip

    stored = (await _changelog(kafka_bootstrap, topics.executor_runs))[
        f"patient:{patient.key}".encode()
    ]
    assert stored is not None
    patient.assert_no_clear_data([stored], extra=CLINIC.encode())
    assert [e["eventId"] for e in json.loads(stored)["recent"]] == ["ehr-1", "ehr-2", "form-1"]


async def test_an_event_before_the_run_is_kept_across_a_restart_and_met_by_look_back(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Any
) -> None:
    patient = Patient("lookback")
    form = sealed_event(patient, "form-early", "intake_form.submitted", {"score": 3})
    await send(topics.commands, form, patient.key, str(form.receipt_id))
    probe_id = uuid.uuid4()  # a run on the patient's partition: once it runs, the form is kept
    await send(topics.commands, patient.start(probe_id), patient.key, str(probe_id))
    await _read(kafka_bootstrap, topics.events, until=1, subject={str(probe_id)})
    executor.restart("executor")

    run_id = uuid.uuid4()
    await send(topics.commands, patient.start(run_id, BOOKED), patient.key, str(run_id))
    events = await _read(kafka_bootstrap, topics.events, until=10, subject={str(run_id)})
    assert _types(events) == ["run.started", "node.entered", "message.requested", "message.sent",
                              "node.entered", "event.matched", "node.entered",
                              "message.requested", "message.sent", "run.completed"]  # fmt: skip
    matched = json.loads(events[5].value)
    assert matched["lookback"] is True
    assert matched["eventId"] == "form-early"


async def test_an_exit_event_cancels_the_waiting_run_and_a_bad_event_is_dead_lettered(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Any
) -> None:
    patient = Patient("exit")
    run_id = uuid.uuid4()
    await send(topics.commands, patient.start(run_id, BOOKED), patient.key, str(run_id))
    await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    # Keyed by another patient's key: it could be routed to the wrong partition. Poison.
    stray = sealed_event(patient, "x-0", "appointment.cancelled", {})
    await send(topics.commands, stray, "f" * 64, str(stray.receipt_id))
    now = datetime.now(UTC)
    clear = RecordPatientEvent(
        receipt_id=receipt_id(patient.key, "x-1"), event_id="x-1", patient_key=patient.key,
        patient_id=patient.id, event_type="appointment.cancelled", occurred_at=now,
        received_at=now, source="topic:clinic.events",
    )  # fmt: skip
    await send(topics.commands, clear, patient.key, str(clear.receipt_id))

    events = await _read(kafka_bootstrap, topics.events, until=8, subject={str(run_id)})
    assert _types(events)[-2:] == ["run.exited", "run.cancelled"]
    cancelled = json.loads(events[-1].value)
    assert cancelled["exitEventId"] == "x-1"
    assert cancelled["cancelledTimerId"] == json.loads(events[5].value)["timerId"]
    dead = await _read(kafka_bootstrap, topics.dlq, until=1, subject={str(stray.receipt_id)})
    assert header(dead[0].headers, "dlq_stage") == "unseal"
    assert b"dataKey" not in (dead[0].value or b"")

    # Erasing the patient forgets their kept events too.
    record_key = f"patient:{patient.key}".encode()
    assert (await _changelog(kafka_bootstrap, topics.executor_runs))[record_key] is not None
    erasure = ErasePatient(erasure_id=uuid.uuid4(), patient_key=patient.key,
                           requested_at=datetime.now(UTC))  # fmt: skip
    await send(topics.commands, erasure, patient.key, str(erasure.erasure_id))
    await _read(kafka_bootstrap, topics.events, until=1, subject={str(erasure.erasure_id)})
    assert (await _changelog(kafka_bootstrap, topics.executor_runs))[record_key] is None


async def test_a_replica_is_ready_only_once_its_patient_table_is_restored(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    """A changelog holding many patients takes a while to read; `/ready` waits for it, so a
    rolling update does not stop the replica being replaced before its successor can work."""
    fresh = _topics(kafka_bootstrap)
    p: AIOKafkaProducer = producer(kafka_bootstrap, linger_ms=20)
    await p.start()
    try:
        sends = []
        for n in range(20_000):
            key = f"{n:064x}"
            state = PatientState(key, seen=((uuid.uuid4(), datetime.now(UTC)),))
            sends.append(await p.send(
                fresh.executor_runs, patient_json(state, None), key=patient_record_key(key),
                partition=partition_of(key.encode(), PARTITIONS),
            ))  # fmt: skip
        await asyncio.gather(*sends)
    finally:
        await p.stop()

    # `executor_process` returns once `/ready` answers 200: the log says what was done by then.
    with executor_process(kafka_bootstrap, fresh, tmp_path, JOURNEYS_PATIENT_KEY_SECRET=SECRET):
        log = (tmp_path / "executor.log").read_text().splitlines()
    lines = [json.loads(line) for line in log if line.startswith("{")]
    taken = {p for line in lines if line.get("message") == "partitions taken over"
             for p in line["partitions"]}  # fmt: skip
    assert len(taken) == PARTITIONS, "answered ready before its partitions were taken over"
    restored = [line for line in lines if line.get("message") == "run table restored"]
    assert restored
    assert restored[0]["seconds"] > 0


async def test_a_revoked_channel_is_suppressed_across_a_restart_until_consent_is_granted(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Any
) -> None:
    patient = Patient("consent")

    async def consent(console: bool) -> None:
        command = SetConsent(consent_id=uuid.uuid4(), patient_key=patient.key,
                             channels={"console": console}, source="api",
                             changed_at=datetime.now(UTC))  # fmt: skip
        await send(topics.commands, command, patient.key, str(command.consent_id))

    async def first_message(run_id: uuid.UUID) -> list[str]:
        await send(topics.commands, patient.start(run_id), patient.key, str(run_id))
        events = await _read(kafka_bootstrap, topics.events, until=4, subject={str(run_id)})
        return _types(events)[2:4]

    await consent(False)
    assert await first_message(uuid.uuid4()) == ["message.suppressed", "node.entered"]
    stored = (await _changelog(kafka_bootstrap, topics.executor_runs))[
        f"guard:{patient.key}".encode()
    ]
    assert stored is not None
    assert json.loads(stored) == {"revoked": ["console"], "sent": []}

    executor.restart("executor")
    assert await first_message(uuid.uuid4()) == ["message.suppressed", "node.entered"]
    await consent(True)
    assert await first_message(uuid.uuid4()) == ["message.requested", "message.sent"]
    stored = (await _changelog(kafka_bootstrap, topics.executor_runs))[
        f"guard:{patient.key}".encode()
    ]
    assert stored is None  # nothing revoked and no cap: the guard is tombstoned
