"""The executor forgets ended runs after a grace window, and keeps journeys once per partition.

One executor for the module, with a grace window of a few seconds; the changelog is read to
its end with `read_committed`, as a replica taking a partition over reads it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from journeys_contracts.commands import CancelRun, FireTimer, RecordDelivery, StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, header
from journeys_contracts.keys import patient_key
from journeys_runtime.kafka import consumer, producer
from journeys_runtime.topics import Topics, ensure_topics
from journeys_stack.aio import run_blocking
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process
from tests.integration.executor.test_executor import _partition_of

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
GRACE_SECONDS = 3.0
RECORDED = Path(__file__).parents[2] / "unit" / "executor" / "recorded"
ONE_MESSAGE = JourneyDefinition.model_validate({
    "name": "one message", "start_node_id": "hello",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": "hi"}],
})  # fmt: skip
WAITING = JourneyDefinition.model_validate({
    "name": "waits", "start_node_id": "wait",
    "nodes": [{"id": "wait", "type": "DELAY", "duration_seconds": 3600, "next_node_id": None}],
})  # fmt: skip


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> Topics:
    t = Topics(prefix=f"f{uuid.uuid4().hex[:10]}.")
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
        EXECUTOR_ENDED_RUN_GRACE_SECONDS=str(GRACE_SECONDS),
    ) as supervisor:
        yield supervisor


@pytest.fixture
async def send(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Any]:
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()

    async def _send(command: Any, patient_id: str) -> None:
        envelope = CloudEvent(str(uuid.uuid4()), command.type, "/tests", str(command.run_id),
                              datetime.now(UTC))  # fmt: skip
        await p.send_and_wait(topics.commands, command.to_json(),
                              key=patient_key(SECRET, patient_id).encode(),
                              headers=envelope.headers())  # fmt: skip

    yield _send
    await p.stop()


def _start(run_id: uuid.UUID, patient: str, definition: JourneyDefinition,
           journey_id: uuid.UUID) -> StartRun:  # fmt: skip
    return StartRun(run_id=run_id, journey_id=journey_id, patient_id=patient,
                    patient_context={"id": patient}, definition=definition,
                    requested_at=datetime.now(UTC))  # fmt: skip


async def _changelog(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The last committed record of each key, over every partition, read to the end."""
    reader = consumer(bootstrap, None)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        latest: dict[bytes, bytes | None] = {}
        remaining = [tp for tp in tps if ends[tp] > 0]
        while remaining:
            for records in (await reader.getmany(*remaining, timeout_ms=200)).values():
                latest.update((r.key, r.value) for r in records)
            remaining = [tp for tp in remaining if await reader.position(tp) < ends[tp]]
        return latest
    finally:
        await reader.stop()


async def _events(bootstrap: str, topic: str, run_id: uuid.UUID, settle: float = 1.5) -> list[str]:
    """The types of the run's committed events, read until none came for `settle` seconds."""
    reader = consumer(bootstrap, None, [topic])
    await reader.start()
    found: list[str] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = await reader.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    if header(r.headers, "ce_subject") == str(run_id):
                        found.append(json.loads(r.value)["type"])
                        quiet_since = time.monotonic()
        return found
    finally:
        await reader.stop()


async def _until(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


async def test_an_ended_run_is_forgotten_after_the_grace_window_and_an_active_one_is_kept(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    ended, waiting = uuid.uuid4(), uuid.uuid4()
    ended_journey, waiting_journey = uuid.uuid4(), uuid.uuid4()
    await send(_start(ended, "patient-a", ONE_MESSAGE, ended_journey), "patient-a")
    await send(_start(waiting, "patient-b", WAITING, waiting_journey), "patient-b")
    # Within the window the ended run's state still rejects a duplicate start.
    await send(_start(ended, "patient-a", ONE_MESSAGE, ended_journey), "patient-a")
    types = await _events(kafka_bootstrap, topics.events, ended)
    assert types.count("journeys.run.started.v1") == 1
    assert types[-1] == "journeys.run.completed.v1"

    async def ended_forgotten() -> dict[bytes, bytes | None] | None:
        latest = await _changelog(kafka_bootstrap, topics.executor_runs)
        return latest if str(ended).encode() in latest and latest[str(ended).encode()] is None \
            else None  # fmt: skip

    latest = await _until(ended_forgotten)
    assert latest, "the ended run's key ends with a tombstone"
    kept = latest[str(waiting).encode()]
    assert kept is not None
    assert json.loads(kept)["status"] == "waiting_delay"
    assert "definition" not in json.loads(kept)
    for journey_id, definition in ((ended_journey, ONE_MESSAGE), (waiting_journey, WAITING)):
        stored = latest[f"journey:{journey_id}".encode()]
        assert stored is not None
        assert JourneyDefinition.model_validate_json(stored) == definition


async def test_commands_for_a_forgotten_run_are_rejected(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id, journey_id = uuid.uuid4(), uuid.uuid4()
    await send(_start(run_id, "patient-c", ONE_MESSAGE, journey_id), "patient-c")

    async def forgotten() -> bool:
        latest = await _changelog(kafka_bootstrap, topics.executor_runs)
        return str(run_id).encode() in latest and latest[str(run_id).encode()] is None

    assert await _until(forgotten)
    now = datetime.now(UTC)
    await send(FireTimer(run_id=run_id, timer_id=uuid.uuid4(), due_at=now, fired_at=now),
               "patient-c")  # fmt: skip
    await send(CancelRun(run_id=run_id, requested_at=now), "patient-c")
    await send(RecordDelivery(run_id=run_id, message_id=uuid.uuid4(), channel="console",
                              delivered=True, at=now), "patient-c")  # fmt: skip
    types = await _events(kafka_bootstrap, topics.events, run_id)
    assert types[-1] == "journeys.run.completed.v1", "nothing after the run's own end"
    assert len(types) == 5


def _restores(log_path: Path) -> list[dict[str, Any]]:
    lines = log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if '"run table restored"' in line]


def _recorded(name: str, run_id: uuid.UUID) -> tuple[bytes, bytes, str]:
    """A state as the previous version stored it (with its definition), under a new run id."""
    fields = json.loads((RECORDED / name).read_text())
    fields["run_id"] = str(run_id)
    fields["journey_id"] = str(uuid.uuid4())
    return str(run_id).encode(), json.dumps(fields).encode(), fields["patient_id"]


async def test_a_restarted_executor_restores_active_runs_and_journeys_and_forgets_old_ended_runs(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """Also from states the previous version wrote, with their definition inside: the waiting
    one carries on after the restart, the one that ended long ago is forgotten at once."""
    waiting, journey_id = uuid.uuid4(), uuid.uuid4()
    await send(_start(waiting, "patient-d", WAITING, journey_id), "patient-d")
    old_waiting, old_ended = uuid.uuid4(), uuid.uuid4()
    key_w, value_w, patient = _recorded("run_state_with_definition.json", old_waiting)
    key_e, value_e, _ = _recorded("ended_run_state_with_definition.json", old_ended)
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()
    try:
        for key, value in ((key_w, value_w), (key_e, value_e)):
            await p.send_and_wait(topics.executor_runs, value, key=key,
                                  partition=_partition_of(patient))  # fmt: skip
    finally:
        await p.stop()
    assert "journeys.delay.started.v1" in await _events(kafka_bootstrap, topics.events, waiting)

    log_path = executor.services["executor"].log_path
    before = len(_restores(log_path))
    await asyncio.to_thread(executor.restart, "executor")

    async def old_forgotten() -> dict[bytes, bytes | None] | None:
        latest = await _changelog(kafka_bootstrap, topics.executor_runs)
        return latest if latest.get(key_e, b"") is None else None

    latest = await _until(old_forgotten)
    assert latest, "the run that ended before the restart is tombstoned"
    restores = _restores(log_path)[before:]
    live = [k for k, v in latest.items() if v is not None and not k.startswith(b"journey:")]
    journeys = [k for k, v in latest.items() if k.startswith(b"journey:")]
    # Read back: the runs not forgotten (and the old ended one, forgotten since), the journeys
    # with records and the two whose definitions were inside the old states.
    assert sum(r["runs"] for r in restores) == len(live) + 1
    assert sum(r["journeys"] for r in restores) == len(journeys) + 2
    pending = json.loads(value_w)["pending_timer"]
    due = datetime.fromisoformat(pending["due_at"])
    fire = FireTimer(run_id=old_waiting, timer_id=uuid.UUID(pending["timer_id"]), due_at=due,
                     fired_at=due)  # fmt: skip
    await send(fire, patient)
    types = await _events(kafka_bootstrap, topics.events, old_waiting)
    assert types[-1] == "journeys.run.completed.v1"
    # The old state's journey now has a record of its own, and the state none inside.
    latest = await _changelog(kafka_bootstrap, topics.executor_runs)
    assert latest[f"journey:{json.loads(value_w)['journey_id']}".encode()] is not None
    assert "definition" not in json.loads(latest[key_w] or b"{}")
