"""The run table: definitions kept once per journey, ended runs forgotten after a grace window."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import cast

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from journeys_contracts.commands import ErasePatient
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.keys import patient_key
from journeys_executor.core import RunState
from journeys_executor.partition import BatchProcessor, Partition, _Batch
from journeys_executor.runs import Runs, journey_key
from journeys_runtime.topics import Topics
from tests.unit.executor.helpers import T0, Run, delay, journey, message, start

RECORDED = Path(__file__).parent / "recorded"
WAITING = journey(delay("wait", 3600, "hello"), message("hello"))
ONE_MESSAGE = journey(message("bye"))
GRACE = 3600.0
ONE_MESSAGE_JOURNEY = uuid.UUID("55555555-5555-4555-8555-555555555555")
KEY_OF = partial(patient_key, "a-test-secret")


def _key(state: RunState) -> bytes:
    return str(state.run_id).encode()


def _stored(runs: Runs, *states: RunState) -> None:
    """What a committed transaction does: each state, and its journey when the table lacks it."""
    changed: dict[bytes, bytes | None] = {}
    for state in states:
        record = runs.definition_record(state)
        if record is not None:
            changed[record[0]] = record[1]
        changed[_key(state)] = state.model_dump_json().encode()
    runs.update(changed, {_key(s): s for s in states})


def _waiting(run_id: uuid.UUID | None = None) -> RunState:
    run = Run()
    run.when(start(WAITING, run_id=run_id or uuid.uuid4()))
    return run.s


def _ended(at_offset: float = 0) -> RunState:
    """A run of another journey, ended `at_offset` seconds after T0."""
    run = Run()
    command = start(ONE_MESSAGE, run_id=uuid.uuid4())
    run.when(command.model_copy(update={"journey_id": ONE_MESSAGE_JOURNEY}))
    run.deliver()
    assert run.s.ended
    return run.s.model_copy(update={"updated_at": T0 + timedelta(seconds=at_offset)})


def test_a_run_state_is_stored_without_its_definition() -> None:
    state = _waiting()
    assert "definition" not in json.loads(state.model_dump_json())


def test_a_state_stored_without_its_definition_loads_with_its_journeys() -> None:
    runs = Runs(KEY_OF)
    state = _waiting()
    _stored(runs, state)
    assert runs.get(_key(state)) == state
    definition = state.definition.model_dump_json().encode()
    again = Runs.restored(
        {journey_key(state.journey_id): definition, _key(state): state.model_dump_json().encode()},
        KEY_OF,
    )
    loaded = again.get(_key(state))
    assert loaded == state
    assert loaded is not None
    assert loaded.definition == WAITING


def test_a_journey_is_written_once_per_partition() -> None:
    runs = Runs(KEY_OF)
    first, second = _waiting(), _waiting()
    assert runs.definition_record(first) == (
        journey_key(first.journey_id),
        WAITING.model_dump_json().encode(),
    )
    _stored(runs, first)
    assert runs.definition_record(second) is None


def test_a_state_recorded_with_its_definition_loads_and_its_definition_enters_the_table() -> None:
    """A changelog written before definitions had their own records still restores; the
    first state of that journey written now also writes the journey's record."""
    raw = (RECORDED / "run_state_with_definition.json").read_bytes().strip()
    recorded = json.loads(raw)
    runs = Runs.restored({recorded["run_id"].encode(): raw}, KEY_OF)
    state = runs.get(recorded["run_id"].encode())
    assert state is not None
    assert state.status == "waiting_delay"
    assert state.definition == JourneyDefinition.model_validate(recorded["definition"])
    record = runs.definition_record(state)
    assert record is not None
    assert record[0] == f"journey:{recorded['journey_id']}".encode()
    # A run of the same journey stored in the new shape loads from the table.
    newer = state.model_copy(update={"run_id": uuid.uuid4()})
    _stored(runs, newer)
    assert runs.get(_key(newer)) == newer
    assert runs.definition_record(state) is None


def test_an_ended_run_is_due_for_forgetting_once_its_grace_window_has_passed() -> None:
    runs = Runs(KEY_OF)
    ended, waiting = _ended(at_offset=0), _waiting()
    _stored(runs, ended, waiting)
    forget_at = T0.timestamp() + GRACE
    assert not runs.has_due(before=forget_at - GRACE - 0.001)
    assert runs.due(before=T0.timestamp() - 0.001, limit=10) == []
    assert runs.has_due(before=T0.timestamp())
    assert runs.due(before=T0.timestamp(), limit=10) == [_key(ended)]


def test_an_active_run_is_never_due() -> None:
    runs = Runs(KEY_OF)
    _stored(runs, _waiting())
    assert runs.due(before=(T0 + timedelta(days=3650)).timestamp(), limit=10) == []


def test_due_runs_come_oldest_first_and_at_most_limit_at_a_time() -> None:
    runs = Runs(KEY_OF)
    states = [_ended(at_offset=s) for s in (30, 10, 20)]
    _stored(runs, *states)
    now = T0.timestamp() + 100
    first = runs.due(before=now, limit=2)
    assert first == [_key(states[1]), _key(states[2])]
    runs.update(dict.fromkeys(first), {})
    assert runs.due(before=now, limit=2) == [_key(states[0])]


def test_a_forgotten_run_is_gone_and_no_longer_due() -> None:
    runs = Runs(KEY_OF)
    ended = _ended()
    _stored(runs, ended)
    runs.update({_key(ended): None}, {})
    assert runs.get(_key(ended)) is None
    assert not runs.has_due(before=T0.timestamp() + GRACE)
    assert runs.due(before=T0.timestamp() + GRACE, limit=10) == []


def test_a_restored_table_knows_which_runs_ended_and_when() -> None:
    raw_ended = (RECORDED / "ended_run_state_with_definition.json").read_bytes().strip()
    raw_waiting = (RECORDED / "run_state_with_definition.json").read_bytes().strip()
    ended_key = json.loads(raw_ended)["run_id"].encode()
    fresh = _ended(at_offset=50)
    runs = Runs.restored({
        ended_key: raw_ended,
        json.loads(raw_waiting)["run_id"].encode(): raw_waiting,
        journey_key(fresh.journey_id): ONE_MESSAGE.model_dump_json().encode(),
        _key(fresh): fresh.model_dump_json().encode(),
    }, KEY_OF)  # fmt: skip
    assert len(runs) == 3
    assert runs.due(before=T0.timestamp() + 49, limit=10) == [ended_key]
    assert runs.due(before=T0.timestamp() + 50, limit=10) == [_key(fresh)]


def test_a_state_this_version_cannot_read_does_not_stop_the_restore_of_the_others() -> None:
    fresh = _ended(at_offset=50)
    runs = Runs.restored({
        b"not-json": b"{garbled",
        b"other-shape": json.dumps({"run_id": "r", "sealed": True}).encode(),
        journey_key(fresh.journey_id): ONE_MESSAGE.model_dump_json().encode(),
        _key(fresh): fresh.model_dump_json().encode(),
    }, KEY_OF)  # fmt: skip
    assert runs.get(_key(fresh)) == fresh
    assert runs.due(before=T0.timestamp() + 50, limit=10) == [_key(fresh)]
    assert len(runs) == 3  # kept as stored: a command for one of them is dead-lettered


def test_the_executor_forgets_a_run_grace_seconds_after_it_ended() -> None:
    runs = Runs(KEY_OF)
    ended = _ended(at_offset=0)
    _stored(runs, ended)
    part = Partition(TopicPartition("commands", 0), cast(AIOKafkaProducer, None), runs, 0)

    def at(seconds: float) -> BatchProcessor:
        now = T0 + timedelta(seconds=seconds)
        return BatchProcessor(Topics(), "g", 1.0, lambda: now, ended_run_grace=GRACE)

    assert not at(GRACE - 0.01).sweep_due(part)
    assert at(GRACE).sweep_due(part)


def _of(patient_id: str, state: RunState) -> RunState:
    return state.model_copy(update={"patient_id": patient_id})


def test_a_patients_runs_are_found_by_patient_key_active_and_ended() -> None:
    runs = Runs(KEY_OF)
    waiting, ended, other = _of("p-1", _waiting()), _of("p-1", _ended()), _of("p-2", _waiting())
    _stored(runs, waiting, ended, other)
    assert runs.of_patient(KEY_OF("p-1")) == sorted([_key(waiting), _key(ended)])
    assert runs.of_patient(KEY_OF("p-2")) == [_key(other)]
    assert runs.of_patient(KEY_OF("p-3")) == []


def test_a_forgotten_run_leaves_its_patients_index() -> None:
    runs = Runs(KEY_OF)
    first, second = _of("p-1", _waiting()), _of("p-1", _ended())
    _stored(runs, first, second)
    runs.update({_key(first): None}, {})
    assert runs.of_patient(KEY_OF("p-1")) == [_key(second)]
    runs.update({_key(second): None}, {})
    assert runs.of_patient(KEY_OF("p-1")) == []


def test_a_restored_table_finds_a_patients_runs_by_the_key_computed_from_the_state() -> None:
    mine, theirs = _of("p-1", _waiting()), _of("p-2", _ended())
    runs = Runs.restored({
        journey_key(mine.journey_id): WAITING.model_dump_json().encode(),
        journey_key(theirs.journey_id): ONE_MESSAGE.model_dump_json().encode(),
        _key(mine): mine.model_dump_json().encode(),
        _key(theirs): theirs.model_dump_json().encode(),
    }, KEY_OF)  # fmt: skip
    assert runs.of_patient(KEY_OF("p-1")) == [_key(mine)]
    assert runs.of_patient(KEY_OF("p-2")) == [_key(theirs)]


class _Producer:
    """Takes records and acknowledges them at once; the erasure's transaction needs no broker
    to be judged here, only what it sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes | None, **kwargs: object) -> asyncio.Future[None]:
        self.sent.append((topic, value, list(kwargs.get("headers") or [])))  # type: ignore[call-overload]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_an_erasure_that_meets_an_unreadable_state_is_dead_lettered_not_raised() -> None:
    runs = Runs(KEY_OF)
    waiting = _waiting()
    runs.update({_key(waiting): b"{garbled"}, {_key(waiting): waiting})  # indexed, unreadable
    producer = _Producer()
    part = Partition(TopicPartition("commands", 0), cast(AIOKafkaProducer, producer), runs, 0)
    processor = BatchProcessor(Topics(), "g", 1.0, lambda: T0)
    command = ErasePatient(erasure_id=uuid.uuid4(), patient_key=KEY_OF(waiting.patient_id),
                           requested_at=T0)  # fmt: skip
    record = ConsumerRecord("commands", 0, 7, 0, 0, b"k", command.to_json(), None, 0, 0, [])

    await processor._erase(part, record, command, _Batch())

    [(topic, value, headers)] = producer.sent
    assert topic == Topics().dlq
    assert value == command.to_json()
    assert ("dlq_stage", b"process") in headers
