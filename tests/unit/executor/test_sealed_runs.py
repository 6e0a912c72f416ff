"""Sealed runs in the executor's adapters: the stored state, the events of both topics, the DLQ.

The broker is a fake that takes every record (what a transaction sends is what is judged
here); the real round trip is in tests/integration/executor/test_sealed.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial
from typing import Any, cast

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from journeys_contracts.commands import CancelRun, ErasePatient
from journeys_contracts.events_sealed import decode_sealed_event
from journeys_contracts.keys import patient_key
from journeys_contracts.wire import WireModel
from journeys_executor.core import RunState
from journeys_executor.partition import BatchProcessor, Partition
from journeys_executor.runs import Runs, journey_key, state_json
from journeys_runtime.kafka import RECORD_MAX_BYTES
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, DataKeys, Keyring
from journeys_runtime.sealing import (
    open_event,
    open_value,
    seal_cancel_run,
    seal_start_run,
    to_wire,
)
from journeys_runtime.shredding import DataKey
from journeys_runtime.topics import Topics
from tests.unit.executor.helpers import PATIENT, T0, delay, journey, message, start

KEY_OF = partial(patient_key, "a-test-secret")
PATIENT_KEY = KEY_OF(PATIENT)
KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
CANARY = "canary-context-71b0"
WAITING = journey(message("hello", "wait", text="canary-message-5e2a"), delay("wait", 3600))
TOPICS = Topics("t.")


class _Producer:
    """Takes records and acknowledges them at once; transactions always commit."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append((topic, value, list(kwargs.get("headers") or [])))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def begin_transaction(self) -> None:
        pass

    async def send_offsets_to_transaction(self, *args: Any) -> None:
        pass

    async def commit_transaction(self) -> None:
        pass

    def on(self, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
        return [(value, dict(headers)) for t, value, headers in self.sent if t == topic]


class Executor:
    """One partition of a sealing executor, fed records, with the fake broker."""

    def __init__(self, emit_events_v1: bool = True) -> None:
        self.data_keys = DataKeys(KEYRING, 10)
        self.producer = _Producer()
        self.runs = Runs(KEY_OF, self.data_keys)
        self.part = Partition(TopicPartition(TOPICS.commands, 0),
                              cast(AIOKafkaProducer, self.producer), self.runs, 0)  # fmt: skip
        self.processor = BatchProcessor(
            TOPICS, "g", 1.0, lambda: T0,
            data_keys=self.data_keys, emit_events_v1=emit_events_v1,
        )  # fmt: skip

    async def given(self, *commands: WireModel | bytes, key: str = PATIENT_KEY) -> None:
        offset = self.part.next_offset
        records = [
            ConsumerRecord(TOPICS.commands, 0, offset + i, 0, 0, key.encode(),
                           c if isinstance(c, bytes) else c.to_json(), None, 0, 0, [])
            for i, c in enumerate(commands)
        ]  # fmt: skip
        await self.processor.run(self.part, records)

    def dead(self) -> list[tuple[Any, dict[str, bytes]]]:
        return [(json.loads(v) if v else v, h) for v, h in self.producer.on(TOPICS.dlq)]


def _sealed_start(
    data_key: DataKey, context: dict[str, Any] | None = None, run_id: uuid.UUID | None = None
) -> WireModel:
    clear = start(WAITING, context or {"id": PATIENT, "word": CANARY}, run_id or uuid.uuid4())
    return seal_start_run(clear, data_key, KEYRING.wrap(PATIENT_KEY, data_key), PATIENT_KEY)


def _sealed_state(data_key: DataKey) -> RunState:
    """A sealed run waiting on its message: patient id, context and message all in it."""
    state = RunState(
        run_id=uuid.uuid4(), journey_id=uuid.uuid4(), patient_id=PATIENT,
        patient_context={"id": PATIENT, "word": CANARY}, definition=WAITING,
        status="in_progress", current_node_id="hello", seq=3, updated_at=T0,
        pending_message={"message_id": uuid.uuid4(), "node_id": "hello",
                         "message": "canary-message-5e2a"},
        patient_key=PATIENT_KEY, data_key=to_wire(KEYRING.wrap(PATIENT_KEY, data_key)),
    )  # fmt: skip
    return state


def _assert_sealed(value: bytes | None) -> None:
    """No patient data in clear; a `run.started` carries the journey's definition, whose
    message texts are the journey's, not the patient's."""
    data = json.loads(value or b"{}")
    data.pop("definition", None) if isinstance(data, dict) else None
    for canary in (PATIENT, CANARY, "canary-message-5e2a"):
        assert canary not in json.dumps(data), f"{canary} in clear"


def test_a_sealed_state_is_stored_with_its_patient_data_sealed_and_loads_back_opened() -> None:
    data_keys = DataKeys(KEYRING, 10)
    key = DataKey.generate()
    state = _sealed_state(key)
    stored = state_json(state, data_keys)
    _assert_sealed(stored)
    fields = json.loads(stored)
    assert fields["patient_key"] == PATIENT_KEY
    assert fields["data_key"] == state.data_key.model_dump() if state.data_key else False
    assert open_value(key, PATIENT_KEY, "patientId", fields["patient_id"]) == PATIENT
    assert (
        open_value(key, PATIENT_KEY, "patientContext", fields["patient_context"])["word"] == CANARY
    )
    message = fields["pending_message"]["message"]
    assert open_value(key, PATIENT_KEY, "message", message) == "canary-message-5e2a"

    def never(patient_id: str) -> str:
        raise AssertionError("a sealed state is indexed by its stored patient key")

    runs = Runs.restored(
        {journey_key(state.journey_id): WAITING.model_dump_json().encode(),
         str(state.run_id).encode(): stored}, never, DataKeys(KEYRING, 10),
    )  # fmt: skip
    assert runs.of_patient(PATIENT_KEY) == [str(state.run_id).encode()]
    assert runs.get(str(state.run_id).encode()) == state


def test_an_unsealed_state_is_stored_as_before() -> None:
    state = _sealed_state(DataKey.generate()).model_copy(
        update={"patient_key": None, "data_key": None}
    )
    stored = state_json(state, None)
    assert stored == state.model_dump_json().encode()
    assert "patient_key" not in json.loads(stored)
    assert "data_key" not in json.loads(stored)


async def test_a_sealed_start_publishes_sealed_events_and_their_clear_twins() -> None:
    executor, key = Executor(), DataKey.generate()
    command = _sealed_start(key)
    await executor.given(command)

    sealed = executor.producer.on(TOPICS.sealed_events)
    twins = executor.producer.on(TOPICS.events)
    # Up to the message, where the run waits for the delivery service's report.
    assert len(sealed) == len(twins) == 3
    [(request, request_headers)] = executor.producer.on(TOPICS.deliveries)
    _assert_sealed(request)
    assert request_headers["ce_type"] == b"journeys.delivery.requested.v2"
    assert "dataKey" in json.loads(request or b"")
    for (v2, v2_headers), (v1, v1_headers) in zip(sealed, twins, strict=True):
        _assert_sealed(v2)
        assert v2 is not None
        assert v1 is not None
        opened = open_event(decode_sealed_event(v2), key)
        assert json.loads(opened.to_json()) == json.loads(v1)
        assert json.loads(v1)["sealedTwin"] is True
        assert v2_headers["ce_type"] == json.loads(v2)["type"].encode()
        assert v2_headers["ce_id"] != v1_headers["ce_id"]
    [state] = executor.producer.on(TOPICS.executor_runs)[1:]  # after the journey's record
    _assert_sealed(state[0])
    assert executor.dead() == []


async def test_without_v1_events_a_sealed_run_publishes_only_on_v2_and_an_unsealed_only_on_v1() -> (
    None
):
    executor = Executor(emit_events_v1=False)
    await executor.given(_sealed_start(DataKey.generate()))
    await executor.given(start(WAITING, run_id=uuid.uuid4()))
    sealed = [json.loads(v or b"") for v, _ in executor.producer.on(TOPICS.sealed_events)]
    plain = [json.loads(v or b"") for v, _ in executor.producer.on(TOPICS.events)]
    assert len(sealed) == len(plain) == 3
    assert len({e["runId"] for e in sealed} | {e["runId"] for e in plain}) == 2
    assert {e["sealedTwin"] for e in plain} == {False}


async def test_a_sealed_start_whose_events_only_fit_in_clear_fails_its_run_for_size() -> None:
    """Sealed values are a third bigger than clear ones: the check measures what is sent."""
    executor, key = Executor(), DataKey.generate()
    base = len(start(WAITING, {"id": PATIENT, "pad": ""}).to_json())
    pad = "x" * (RECORD_MAX_BYTES - base - 2000)
    assert len(start(WAITING, {"id": PATIENT, "pad": pad}).to_json()) < RECORD_MAX_BYTES
    await executor.given(_sealed_start(key, {"id": PATIENT, "pad": pad}))

    sent = [v for _, v, _ in executor.producer.sent]
    assert all(len(v or b"") <= RECORD_MAX_BYTES for v in sent)
    [(failed, _)] = executor.producer.on(TOPICS.sealed_events)
    assert json.loads(failed or b"")["type"] == "journeys.run.failed.v2"
    [(twin, _)] = executor.producer.on(TOPICS.events)
    assert json.loads(twin or b"")["reason"].startswith("record too large: ")
    [(_, headers)] = executor.dead()
    assert headers["dlq_stage"] == b"size"


async def test_a_sealed_start_under_a_key_that_does_not_unwrap_is_dead_lettered_without_it() -> (
    None
):
    executor, key = Executor(), DataKey.generate()
    command = json.loads(_sealed_start(key).to_json())
    other = KEYRING.wrap(KEY_OF("someone else"), key)  # wrapped for another patient key
    command["dataKey"] = other.to_json()
    await executor.given(json.dumps(command).encode())

    [(value, headers)] = executor.dead()
    assert "dataKey" not in value
    assert value["runId"] == command["runId"]
    assert headers["dlq_stripped"] == b"dataKey"
    assert headers["dlq_stage"] == b"unseal"
    assert headers["dlq_error"] == b"sealed command does not open: TamperedError: " \
        b"the wrapped key does not open for this patient key"  # fmt: skip
    assert executor.producer.on(TOPICS.events) == executor.producer.on(TOPICS.sealed_events) == []


async def test_a_sealed_start_under_another_patients_key_is_dead_lettered() -> None:
    executor = Executor()
    await executor.given(_sealed_start(DataKey.generate()), key=KEY_OF("someone else"))
    [(value, headers)] = executor.dead()
    assert headers["dlq_stage"] == b"unseal"
    assert "dataKey" not in value
    assert executor.producer.on(TOPICS.events) == []


async def test_a_malformed_sealed_start_is_dead_lettered_without_its_key() -> None:
    executor = Executor()
    command = json.loads(_sealed_start(DataKey.generate()).to_json())
    command["definition"] = {"nodes": "none"}
    await executor.given(json.dumps(command).encode())
    [(value, headers)] = executor.dead()
    assert headers["dlq_stage"] == b"decode"
    assert "dataKey" not in value
    assert headers["dlq_stripped"] == b"dataKey"


async def test_a_sealed_cancel_opens_its_reason_for_the_runs_patient_only() -> None:
    executor, key = Executor(), DataKey.generate()
    run_id = uuid.uuid4()
    await executor.given(_sealed_start(key, run_id=run_id))
    cancel = CancelRun(run_id=run_id, requested_at=T0, reason=f"{PATIENT} moved")
    stranger = seal_cancel_run(cancel, DataKey.generate(), KEY_OF("someone else"))
    await executor.given(stranger)
    assert [h["dlq_stage"] for _, h in executor.dead()] == [b"unseal"]
    await executor.given(seal_cancel_run(cancel, key, PATIENT_KEY))

    v2 = json.loads(executor.producer.on(TOPICS.sealed_events)[-1][0] or b"")
    assert v2["type"] == "journeys.run.cancelled.v2"
    assert open_value(key, PATIENT_KEY, "reason", v2["reason"]) == f"{PATIENT} moved"
    v1 = json.loads(executor.producer.on(TOPICS.events)[-1][0] or b"")
    assert (v1["reason"], v1["sealedTwin"]) == (f"{PATIENT} moved", True)


async def test_a_sealed_cancel_of_an_unsealed_run_is_dead_lettered_and_of_no_run_rejected() -> None:
    executor, key = Executor(), DataKey.generate()
    run_id = uuid.uuid4()
    await executor.given(start(WAITING, run_id=run_id))
    events = len(executor.producer.on(TOPICS.events))
    cancel = CancelRun(run_id=run_id, requested_at=T0, reason="moved")
    await executor.given(seal_cancel_run(cancel, key, PATIENT_KEY))
    assert [h["dlq_stage"] for _, h in executor.dead()] == [b"unseal"]
    unknown = cancel.model_copy(update={"run_id": uuid.uuid4()})
    await executor.given(seal_cancel_run(unknown, key, PATIENT_KEY))
    assert len(executor.dead()) == 1
    assert len(executor.producer.on(TOPICS.events)) == events


async def test_erasing_a_patient_cancels_their_sealed_run_sealed_and_forgets_their_data_key() -> (
    None
):
    executor, key = Executor(), DataKey.generate()
    await executor.given(_sealed_start(key))
    assert len(executor.data_keys) == 1
    erasure = ErasePatient(erasure_id=uuid.uuid4(), patient_key=PATIENT_KEY, requested_at=T0)
    await executor.given(erasure)

    v2 = [json.loads(v or b"")["type"] for v, _ in executor.producer.on(TOPICS.sealed_events)]
    v1 = [json.loads(v or b"")["type"] for v, _ in executor.producer.on(TOPICS.events)]
    assert v2[-2:] == ["journeys.run.cancelled.v2", "journeys.patient.erased.v1"]
    assert v1[-2:] == ["journeys.run.cancelled.v1", "journeys.patient.erased.v1"]
    assert len(executor.data_keys) == 0
    assert executor.runs.of_patient(PATIENT_KEY) == []


async def test_a_data_key_named_with_json_escapes_is_stripped_from_the_dead_letter_too() -> None:
    executor, key = Executor(), DataKey.generate()
    command = json.loads(_sealed_start(key).to_json())
    command["dataKey"] = KEYRING.wrap(KEY_OF("someone else"), key).to_json()
    value = json.dumps(command).replace('"dataKey"', '"\\u0064ataKey"').encode()
    assert b"dataKey" not in value
    await executor.given(value)
    [(dead, headers)] = executor.dead()
    assert headers["dlq_stage"] == b"unseal"
    assert "dataKey" not in dead
    assert headers["dlq_stripped"] == b"dataKey"
