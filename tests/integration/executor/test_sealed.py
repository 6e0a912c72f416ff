"""Sealed runs against a real broker: a run started by `StartRunSealed` publishes its events
sealed on `journeys.events.v2` (and, while the v1 topic is still fed, their clear twins marked
`sealedTwin`), stores its state sealed, survives a restart, cancels with a sealed reason and
is erased like any other; a sealed command that does not open is dead-lettered without its key.

The commands are sealed as the API seals them: a fresh data key wrapped under the development
keyring, which the executor (in development) opens too.
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

from journeys_contracts.commands import CancelRun, ErasePatient, FireTimer, StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, event_id, header
from journeys_contracts.events import erasure_event_id
from journeys_contracts.events_sealed import decode_sealed_event
from journeys_contracts.keys import patient_key
from journeys_contracts.wire import WireModel
from journeys_runtime.kafka import producer
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.sealing import open_event, open_value, seal_cancel_run, seal_start_run
from journeys_runtime.shredding import DataKey
from journeys_runtime.topics import Topics, ensure_topics
from journeys_stack.aio import run_blocking
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_erasure import _events
from tests.integration.executor.test_executor import SECRET, _read
from tests.integration.executor.test_forgetting import _changelog, _until

pytestmark = pytest.mark.integration

KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
MESSAGE = "canary-message-3f1c"
SECRET_WORD = "canary-context-9d2e"
WELCOME = JourneyDefinition.model_validate({
    "name": "sealed", "start_node_id": "hello",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": MESSAGE, "next_node_id": "wait"},
              {"id": "wait", "type": "DELAY", "duration_seconds": 3600, "next_node_id": None}],
})  # fmt: skip
# After the delay, a branch on the context and a message: only a state whose patient id and
# context open again after a restart takes the true branch and delivers.
WAIT_THEN_BRANCH = JourneyDefinition.model_validate({
    "name": "sealed restart", "start_node_id": "wait",
    "nodes": [{"id": "wait", "type": "DELAY", "duration_seconds": 3600, "next_node_id": "old"},
              {"id": "old", "type": "CONDITIONAL", "on_true_next_node_id": "hello",
               "on_false_next_node_id": None,
               "condition": {"field": "age", "operator": ">", "value": 65}},
              {"id": "hello", "type": "MESSAGE", "message": MESSAGE}],
})  # fmt: skip
STARTED = [
    "journeys.run.started", "journeys.node.entered", "journeys.message.requested",
    "journeys.message.sent", "journeys.node.entered", "journeys.delay.started",
]  # fmt: skip


def _topics(kafka_bootstrap: str) -> Topics:
    t = Topics(prefix=f"s{uuid.uuid4().hex[:10]}.")
    run_blocking(ensure_topics(kafka_bootstrap, t, PARTITIONS))
    return t


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> Topics:
    return _topics(kafka_bootstrap)


@pytest.fixture(scope="module")
def executor(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    with executor_process(
        kafka_bootstrap, topics, tmp_path_factory.mktemp("executor"),
        JOURNEYS_PATIENT_KEY_SECRET=SECRET,
    ) as supervisor:  # fmt: skip
        yield supervisor


class Patient:
    """A patient whose commands are sealed under their own data key."""

    def __init__(self, name: str) -> None:
        self.id = f"{name}-{uuid.uuid4().hex[:6]}"
        self.key = patient_key(SECRET, self.id)
        self.data_key = DataKey.generate()
        self.context = {"id": self.id, "age": 72, "word": SECRET_WORD}
        self.canaries = [self.id.encode(), SECRET_WORD.encode(), MESSAGE.encode()]

    def start(self, run_id: uuid.UUID, definition: JourneyDefinition = WELCOME) -> WireModel:
        clear = StartRun(run_id=run_id, journey_id=uuid.uuid4(), patient_id=self.id,
                         patient_context=self.context, definition=definition,
                         requested_at=datetime.now(UTC))  # fmt: skip
        wrapped = KEYRING.wrap(self.key, self.data_key)
        return seal_start_run(clear, self.data_key, wrapped, self.key)

    def cancel(self, run_id: uuid.UUID, reason: str) -> WireModel:
        clear = CancelRun(run_id=run_id, requested_at=datetime.now(UTC), reason=reason)
        return seal_cancel_run(clear, self.data_key, self.key)

    def assert_no_clear_data(self, values: list[bytes | None], extra: bytes = b"") -> None:
        """No patient data in clear; a `run.started` carries the journey's definition, whose
        message texts are the journey's, not the patient's."""
        for value in values:
            try:
                data = json.loads(value or b"{}")
            except ValueError:  # a header
                data = (value or b"").decode(errors="replace")
            if isinstance(data, dict):
                data.pop("definition", None)
            text = json.dumps(data).encode()
            for canary in [*self.canaries, *([extra] if extra else [])]:
                assert canary not in text, "patient data in clear"


@pytest.fixture
async def send(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Any]:
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()

    async def _send(command: Any, key: str, value: bytes | None = None) -> None:
        subject = str(getattr(command, "run_id", None) or command.erasure_id)
        envelope = CloudEvent(str(uuid.uuid4()), command.type, "/tests", subject,
                              datetime.now(UTC))  # fmt: skip
        await p.send_and_wait(topics.commands, value or command.to_json(), key=key.encode(),
                              headers=envelope.headers())  # fmt: skip

    yield _send
    await p.stop()


def _headers(run_id: uuid.UUID) -> list[tuple[str, bytes]]:
    return CloudEvent(str(uuid.uuid4()), "command", "/tests", str(run_id),
                      datetime.now(UTC)).headers()  # fmt: skip


async def _sealed(bootstrap: str, topics: Topics, run_id: uuid.UUID, until: int) -> list[Any]:
    return await _read(bootstrap, topics.sealed_events, until=until, subject={str(run_id)})


async def test_a_sealed_run_publishes_sealed_events_with_clear_twins_and_stores_its_state_sealed(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient, run_id = Patient("sealed-a"), uuid.uuid4()
    await send(patient.start(run_id), patient.key)

    sealed = await _sealed(kafka_bootstrap, topics, run_id, until=6)
    twins = await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    assert [json.loads(r.value)["type"] for r in sealed] == [f"{t}.v2" for t in STARTED]
    assert [json.loads(r.value)["type"] for r in twins] == [f"{t}.v1" for t in STARTED]
    patient.assert_no_clear_data([r.value for r in sealed])
    for record, twin in zip(sealed, twins, strict=True):
        v2, v1 = json.loads(record.value), json.loads(twin.value)
        assert record.key == twin.key == patient.key.encode()
        assert record.partition == twin.partition
        assert v2["patientKey"] == patient.key
        assert v1["sealedTwin"] is True
        assert header(record.headers, "ce_type") == v2["type"]
        assert header(record.headers, "ce_subject") == str(run_id)
        assert header(twin.headers, "ce_id") == event_id(run_id, v1["seq"])
        assert header(record.headers, "ce_id") not in (None, header(twin.headers, "ce_id"))
        # The twin is exactly the sealed event opened.
        opened = open_event(decode_sealed_event(record.value), patient.data_key)
        assert json.loads(opened.to_json()) == v1
    assert json.loads(twins[0].value)["patientContext"] == patient.context
    assert json.loads(twins[2].value)["message"] == MESSAGE

    stored = (await _changelog(kafka_bootstrap, topics.executor_runs))[str(run_id).encode()]
    assert stored is not None
    patient.assert_no_clear_data([stored])
    state = json.loads(stored)
    assert state["patient_key"] == patient.key
    assert state["data_key"]["kid"] == patient.data_key.kid
    assert state["status"] == "waiting_delay"
    assert open_value(patient.data_key, patient.key, "patientId", state["patient_id"]) == patient.id


async def test_a_sealed_cancel_opens_its_reason_and_publishes_it_sealed(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient, run_id = Patient("sealed-b"), uuid.uuid4()
    reason = f"{patient.id} moved away"
    await send(patient.start(run_id), patient.key)
    await _sealed(kafka_bootstrap, topics, run_id, until=6)

    await send(patient.cancel(run_id, reason), patient.key)
    await send(patient.cancel(uuid.uuid4(), reason), patient.key)  # no such run: rejected

    sealed = await _sealed(kafka_bootstrap, topics, run_id, until=7)
    cancelled = json.loads(sealed[-1].value)
    assert cancelled["type"] == "journeys.run.cancelled.v2"
    patient.assert_no_clear_data([r.value for r in sealed], extra=b"moved away")
    assert open_value(patient.data_key, patient.key, "reason", cancelled["reason"]) == reason
    twin = await _read(kafka_bootstrap, topics.events, until=7, subject={str(run_id)})
    assert json.loads(twin[-1].value)["reason"] == reason
    assert len(sealed) == len(twin) == 7


async def test_a_sealed_start_whose_key_does_not_open_is_dead_lettered_without_its_key(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient, tampered, stranger, good = (
        Patient("sealed-c"),
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
    )
    bad = json.loads(patient.start(tampered).to_json())
    wrapped = bad["dataKey"]["wrapped"]
    bad["dataKey"]["wrapped"] = ("A" if wrapped[0] != "A" else "B") + wrapped[1:]
    await send(patient.start(tampered), patient.key, value=json.dumps(bad).encode())
    other = Patient("sealed-c-other")  # keyed as another patient: refused, not opened
    await send(other.start(stranger), patient.key)
    await send(patient.start(good), patient.key)

    assert len(await _sealed(kafka_bootstrap, topics, good, until=6)) == 6
    dead = await _read(kafka_bootstrap, topics.dlq, until=2, subject={str(tampered), str(stranger)})
    assert [header(r.headers, "ce_subject") for r in dead] == [str(tampered), str(stranger)]
    for record in dead:
        value = json.loads(record.value)
        assert "dataKey" not in value
        assert value["type"] == "journeys.command.start_run.v2"
        assert header(record.headers, "dlq_stripped") == "dataKey"
        assert header(record.headers, "dlq_error")
        patient.assert_no_clear_data([record.value, *(v for _, v in record.headers)])
    nothing = await _events(kafka_bootstrap, topics.sealed_events, {str(tampered), str(stranger)},
                            settle=1.0)  # fmt: skip
    assert nothing == []


async def test_a_restarted_executor_opens_a_sealed_run_from_its_changelog_and_carries_it_on(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient, run_id = Patient("sealed-d"), uuid.uuid4()
    await send(patient.start(run_id, WAIT_THEN_BRANCH), patient.key)
    started = await _sealed(kafka_bootstrap, topics, run_id, until=3)
    delay = json.loads(started[-1].value)
    assert delay["type"] == "journeys.delay.started.v2"

    await asyncio.to_thread(executor.restart, "executor")
    due = datetime.fromisoformat(delay["dueAt"])
    fire = FireTimer(run_id=run_id, timer_id=uuid.UUID(delay["timerId"]), due_at=due, fired_at=due)
    await send(fire, patient.key)

    sealed = await _sealed(kafka_bootstrap, topics, run_id, until=10)
    assert [json.loads(r.value)["type"] for r in sealed[3:]] == [
        "journeys.delay.elapsed.v2", "journeys.node.entered.v2",
        "journeys.condition.evaluated.v2", "journeys.node.entered.v2",
        "journeys.message.requested.v2", "journeys.message.sent.v2", "journeys.run.completed.v2",
    ]  # fmt: skip
    assert [json.loads(r.value)["seq"] for r in sealed] == list(range(1, 11))
    patient.assert_no_clear_data([r.value for r in sealed])
    evaluated = json.loads(sealed[5].value)
    assert evaluated["result"] is True


async def test_erasing_a_patient_cancels_and_forgets_their_sealed_run(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    patient, run_id = Patient("sealed-e"), uuid.uuid4()
    await send(patient.start(run_id), patient.key)
    await _sealed(kafka_bootstrap, topics, run_id, until=6)

    erasure = ErasePatient(erasure_id=uuid.uuid4(), patient_key=patient.key,
                           requested_at=datetime.now(UTC))  # fmt: skip
    await send(erasure, patient.key)

    subjects = {str(run_id), str(erasure.erasure_id)}
    for topic in (topics.sealed_events, topics.events):

        async def erased(topic: str = topic) -> Any:
            found = await _events(kafka_bootstrap, topic, subjects, settle=0.5)
            done = found and found[-1][1]["type"] == "journeys.patient.erased.v1"
            return found if done else None

        found = await _until(erased)
        assert found, topic
        types = [value["type"] for _, value in found]
        erased_headers, erasure_event = found[-1]
        assert erasure_event["runIds"] == [str(run_id)]
        assert erased_headers["ce_type"] == "journeys.patient.erased.v1"
        if topic == topics.events:
            assert erased_headers["ce_id"] == erasure_event_id(erasure.erasure_id)
        assert types[-2].startswith("journeys.run.cancelled.")
    latest = await _changelog(kafka_bootstrap, topics.executor_runs)
    assert latest[str(run_id).encode()] is None, "the last record of the key is a tombstone"


async def test_without_v1_events_a_sealed_run_publishes_only_sealed_ones(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    """An unsealed run still publishes on v1 alone, and nothing on v2."""
    topics = _topics(kafka_bootstrap)
    with executor_process(
        kafka_bootstrap, topics, tmp_path,
        JOURNEYS_PATIENT_KEY_SECRET=SECRET, EXECUTOR_EMIT_EVENTS_V1="false",
    ):  # fmt: skip
        p: AIOKafkaProducer = producer(kafka_bootstrap)
        await p.start()
        try:
            patient, run_id, clear_run = Patient("sealed-f"), uuid.uuid4(), uuid.uuid4()
            await p.send_and_wait(topics.commands, patient.start(run_id).to_json(),
                                  key=patient.key.encode(),
                                  headers=_headers(run_id))  # fmt: skip
            clear = StartRun(run_id=clear_run, journey_id=uuid.uuid4(), patient_id=patient.id,
                             patient_context={"id": patient.id}, definition=WELCOME,
                             requested_at=datetime.now(UTC))  # fmt: skip
            await p.send_and_wait(
                topics.commands,
                clear.to_json(),
                key=patient.key.encode(),
                headers=_headers(clear_run),
            )
        finally:
            await p.stop()
        sealed = await _sealed(kafka_bootstrap, topics, run_id, until=6)
        plain = await _read(kafka_bootstrap, topics.events, until=6, subject={str(clear_run)})
        no_twin = await _events(kafka_bootstrap, topics.events, {str(run_id)}, settle=1.0)
        no_seal = await _events(kafka_bootstrap, topics.sealed_events, {str(clear_run)}, settle=1.0)
    assert [json.loads(r.value)["type"] for r in sealed] == [f"{t}.v2" for t in STARTED]
    assert [json.loads(r.value)["type"] for r in plain] == [f"{t}.v1" for t in STARTED]
    assert {json.loads(r.value)["sealedTwin"] for r in plain} == {False}
    assert no_twin == no_seal == []
