"""ErasePatient against a real broker: the patient's runs are cancelled and tombstoned at once,
a neighbour's run on the same partition carries on, and a restart brings nothing back.

One executor for the module, with the deployment's patient-key secret (the index of runs by
patient is computed with it) and a long grace window, so the ended run is still held.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from journeys_contracts.commands import ErasePatient, FireTimer
from journeys_contracts.envelope import CloudEvent, header
from journeys_contracts.events import erasure_event_id
from journeys_contracts.keys import patient_key
from journeys_runtime.kafka import consumer, producer
from journeys_runtime.topics import Topics, ensure_topics
from journeys_stack.aio import run_blocking
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_executor import SECRET, _neighbour, _partition_of
from tests.integration.executor.test_forgetting import (
    ONE_MESSAGE,
    WAITING,
    _changelog,
    _start,
    _until,
)

pytestmark = pytest.mark.integration

ERASED = "journeys.patient.erased.v1"


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> Topics:
    t = Topics(prefix=f"e{uuid.uuid4().hex[:10]}.")
    run_blocking(ensure_topics(kafka_bootstrap, t, PARTITIONS))
    return t


@pytest.fixture(scope="module")
def executor(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    with executor_process(
        kafka_bootstrap,
        topics,
        tmp_path_factory.mktemp("executor"),
        JOURNEYS_PATIENT_KEY_SECRET=SECRET,
        EXECUTOR_ENDED_RUN_GRACE_SECONDS="3600",
    ) as supervisor:
        yield supervisor


@pytest.fixture
async def send(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Any]:
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()

    async def _send(command: Any, patient_id: str) -> None:
        subject = str(getattr(command, "run_id", None) or command.erasure_id)
        envelope = CloudEvent(str(uuid.uuid4()), command.type, "/tests", subject,
                              datetime.now(UTC))  # fmt: skip
        await p.send_and_wait(topics.commands, command.to_json(),
                              key=patient_key(SECRET, patient_id).encode(),
                              headers=envelope.headers())  # fmt: skip

    yield _send
    await p.stop()


Found = list[tuple[dict[str, str | None], dict[str, Any]]]


async def _events(bootstrap: str, topic: str, subjects: set[str], settle: float = 1.5) -> Found:
    """The committed events whose `ce_subject` is one of `subjects` (headers, value), read
    until none came for `settle` seconds."""
    reader = consumer(bootstrap, None, [topic])
    await reader.start()
    found: Found = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            for records in (await reader.getmany(timeout_ms=200)).values():
                for r in records:
                    if header(r.headers, "ce_subject") in subjects:
                        names = ("ce_id", "ce_subject", "ce_type")
                        headers = {n: header(r.headers, n) for n in names}
                        found.append((headers | {"key": r.key.decode()}, json.loads(r.value)))
                        quiet_since = time.monotonic()
        return found
    finally:
        await reader.stop()


def _erase(patient: str) -> ErasePatient:
    return ErasePatient(erasure_id=uuid.uuid4(), patient_key=patient_key(SECRET, patient),
                        requested_at=datetime.now(UTC))  # fmt: skip


async def _erased(bootstrap: str, topics: Topics, erasure: ErasePatient) -> dict[str, Any]:
    """The PatientErased answering `erasure`, once it is committed."""

    async def answered() -> list[Any]:
        return await _events(bootstrap, topics.events, {str(erasure.erasure_id)}, settle=0.5)

    [(headers, value)] = await _until(answered)
    subject = str(erasure.erasure_id)
    assert headers == {"ce_id": erasure_event_id(erasure.erasure_id), "ce_type": ERASED,
                       "ce_subject": subject, "key": erasure.patient_key}  # fmt: skip
    return dict(value)


async def _types(bootstrap: str, topics: Topics, run_id: uuid.UUID) -> list[str]:
    return [v["type"] for _, v in await _events(bootstrap, topics.events, {str(run_id)})]


async def test_erasing_a_patient_cancels_and_forgets_their_runs_and_spares_a_neighbour(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient = "erased-patient-1"
    neighbour = _neighbour(patient)
    assert _partition_of(neighbour) == _partition_of(patient)
    waiting, ended, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await send(_start(waiting, patient, WAITING, uuid.uuid4()), patient)
    await send(_start(ended, patient, ONE_MESSAGE, uuid.uuid4()), patient)
    await send(_start(theirs, neighbour, WAITING, uuid.uuid4()), neighbour)
    assert (await _types(kafka_bootstrap, topics, ended))[-1] == "journeys.run.completed.v1"
    started = await _events(kafka_bootstrap, topics.events, {str(theirs)})
    assert started[-1][1]["type"] == "journeys.delay.started.v1"

    erasure = _erase(patient)
    await send(erasure, patient)
    erased = await _erased(kafka_bootstrap, topics, erasure)

    assert sorted(erased["runIds"]) == sorted([str(waiting), str(ended)])
    assert "patientId" not in erased
    assert patient not in json.dumps(erased)
    waiting_types = await _types(kafka_bootstrap, topics, waiting)
    assert waiting_types[-1] == "journeys.run.cancelled.v1"
    cancelled = (await _events(kafka_bootstrap, topics.events, {str(waiting)}))[-1][1]
    assert cancelled["reason"] == "patient data erased"
    assert cancelled["cancelledTimerId"] is not None
    assert (await _types(kafka_bootstrap, topics, ended))[-1] == "journeys.run.completed.v1"
    latest = await _changelog(kafka_bootstrap, topics.executor_runs)
    assert latest[str(waiting).encode()] is None, "the last record of the key is a tombstone"
    assert latest[str(ended).encode()] is None, "the last record of the key is a tombstone"
    kept = latest[str(theirs).encode()]
    assert kept is not None
    assert json.loads(kept)["status"] == "waiting_delay"

    timer = started[-1][1]
    due = datetime.fromisoformat(timer["dueAt"])
    await send(FireTimer(run_id=theirs, timer_id=uuid.UUID(timer["timerId"]), due_at=due,
                         fired_at=due), neighbour)  # fmt: skip
    assert (await _types(kafka_bootstrap, topics, theirs))[-1] == "journeys.run.completed.v1"

    again = _erase(patient)
    await send(again, patient)
    assert (await _erased(kafka_bootstrap, topics, again))["runIds"] == []


async def test_after_a_restart_erased_runs_stay_gone_and_a_patients_runs_are_found_again(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """The index of runs by patient is rebuilt from the restored states."""
    erased_patient, later_patient = "erased-patient-2", "erased-patient-3"
    gone, kept = uuid.uuid4(), uuid.uuid4()
    await send(_start(gone, erased_patient, WAITING, uuid.uuid4()), erased_patient)
    await send(_start(kept, later_patient, WAITING, uuid.uuid4()), later_patient)
    started = await _events(kafka_bootstrap, topics.events, {str(gone)})
    assert started[-1][1]["type"] == "journeys.delay.started.v1"
    assert (await _types(kafka_bootstrap, topics, kept))[-1] == "journeys.delay.started.v1"
    first = _erase(erased_patient)
    await send(first, erased_patient)
    assert (await _erased(kafka_bootstrap, topics, first))["runIds"] == [str(gone)]

    await asyncio.to_thread(executor.restart, "executor")

    timer = started[-1][1]
    due = datetime.fromisoformat(timer["dueAt"])
    await send(FireTimer(run_id=gone, timer_id=uuid.UUID(timer["timerId"]), due_at=due,
                         fired_at=due), erased_patient)  # fmt: skip
    repeat, later = _erase(erased_patient), _erase(later_patient)
    await send(repeat, erased_patient)
    await send(later, later_patient)
    assert (await _erased(kafka_bootstrap, topics, repeat))["runIds"] == []
    assert (await _erased(kafka_bootstrap, topics, later))["runIds"] == [str(kept)]
    assert (await _types(kafka_bootstrap, topics, gone))[-1] == "journeys.run.cancelled.v1"
    latest = await _changelog(kafka_bootstrap, topics.executor_runs)
    assert latest[str(gone).encode()] is None
    assert latest[str(kept).encode()] is None


async def test_a_run_started_in_the_erasures_batch_is_erased_with_it(
    executor: Supervisor, kafka_bootstrap: str, topics: Topics
) -> None:
    """Produced in one request, the two commands are fetched in one batch: the run's state is
    then only in the transaction under way, not yet in the table."""
    patient, run_id = "erased-patient-4", uuid.uuid4()
    erasure = _erase(patient)
    key = patient_key(SECRET, patient).encode()
    p: AIOKafkaProducer = producer(kafka_bootstrap, linger_ms=200)
    await p.start()
    try:
        sent = [
            await p.send(topics.commands, command.to_json(), key=key)
            for command in (_start(run_id, patient, WAITING, uuid.uuid4()), erasure)
        ]
        await asyncio.gather(*sent)
    finally:
        await p.stop()
    assert (await _erased(kafka_bootstrap, topics, erasure))["runIds"] == [str(run_id)]
    assert (await _types(kafka_bootstrap, topics, run_id))[-1] == "journeys.run.cancelled.v1"
    latest = await _changelog(kafka_bootstrap, topics.executor_runs)
    assert latest[str(run_id).encode()] is None
