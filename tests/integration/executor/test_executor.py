"""The executor as a real process against a real broker: events, partitions, DLQ."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from journeys_contracts.commands import CancelRun, FireTimer, StartRun
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, event_id, header
from journeys_contracts.keys import patient_key
from journeys_executor.core import Decision, decide
from journeys_runtime.kafka import RECORD_MAX_BYTES, consumer, producer
from journeys_runtime.topics import Topics, ensure_topics
from journeys_stack.aio import run_blocking
from journeys_stack.supervisor import Supervisor
from tests.conftest import PARTITIONS
from tests.integration.executor.process import executor_process

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
DEFINITION = JourneyDefinition.model_validate(
    {
        "name": "executor integration",
        "start_node_id": "hello",
        "nodes": [
            {"id": "hello", "type": "MESSAGE", "message": "hi", "next_node_id": "wait"},
            {"id": "wait", "type": "DELAY", "duration_seconds": 3600, "next_node_id": None},
        ],
    }
)


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> Topics:
    """One prefix for the module: the tests share one executor and tell runs apart by id."""
    t = Topics(prefix=f"x{uuid.uuid4().hex[:10]}.")
    run_blocking(ensure_topics(kafka_bootstrap, t, PARTITIONS))
    return t


@pytest.fixture(scope="module")
def executor(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    tmp_path = tmp_path_factory.mktemp("executor")
    with executor_process(kafka_bootstrap, topics, tmp_path) as supervisor:
        yield supervisor


@pytest.fixture
async def send(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Any]:
    p: AIOKafkaProducer = producer(kafka_bootstrap)
    await p.start()

    async def _send(command: Any, patient_id: str, value: bytes | None = None) -> int:
        envelope = CloudEvent(str(uuid.uuid4()), command.type, "/tests", str(command.run_id),
                              datetime.now(UTC))  # fmt: skip
        meta = await p.send_and_wait(
            topics.commands,
            value if value is not None else command.to_json(),
            key=patient_key(SECRET, patient_id).encode(),
            headers=envelope.headers(),
        )
        return int(meta.partition)

    yield _send
    await p.stop()


async def _read(
    bootstrap: str, topic: str, until: int, subject: set[str], within: float = 30
) -> list[Any]:
    """Committed records whose CloudEvents subject (run id) is in `subject`, in order."""
    c = consumer(bootstrap, None, [topic])
    await c.start()
    records: list[Any] = []

    def collect(batches: dict[Any, list[Any]]) -> None:
        for batch in batches.values():
            records.extend(r for r in batch if header(r.headers, "ce_subject") in subject)

    deadline = time.monotonic() + within
    try:
        while len(records) < until and time.monotonic() < deadline:
            collect(await c.getmany(timeout_ms=200))
        collect(await c.getmany(timeout_ms=500))  # anything beyond `until` shows up here
        return records
    finally:
        await c.stop()


def _start(run_id: uuid.UUID, patient: str, definition: JourneyDefinition = DEFINITION) -> StartRun:
    return StartRun(run_id=run_id, journey_id=uuid.uuid4(), patient_id=patient,
                    patient_context={"id": patient}, definition=definition,
                    requested_at=datetime.now(UTC))  # fmt: skip


def _partition_of(patient: str) -> int:
    key = patient_key(SECRET, patient).encode()
    return int(DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS))))


def _neighbour(patient: str) -> str:
    """Another patient whose commands share `patient`'s partition."""
    candidates = (f"{patient}-neighbour-{n}" for n in range(1000))
    return next(c for c in candidates if _partition_of(c) == _partition_of(patient))


def _types(records: list[Any]) -> list[str]:
    return [json.loads(r.value)["type"] for r in records]


async def _waiting_on_delay(
    kafka_bootstrap: str, topics: Topics, run_id: uuid.UUID
) -> dict[str, Any]:
    """The run's `delay.started` event, once its first six events are on the topic."""
    started = await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    delay: dict[str, Any] = json.loads(started[-1].value)
    assert delay["type"] == "journeys.delay.started.v1"
    return delay


def _timer(delay: dict[str, Any], early: timedelta = timedelta(0)) -> FireTimer:
    due = datetime.fromisoformat(delay["dueAt"])
    return FireTimer(run_id=uuid.UUID(delay["runId"]), timer_id=uuid.UUID(delay["timerId"]),
                     due_at=due, fired_at=due - early)  # fmt: skip


async def test_start_run_emits_gapless_cloudevents_on_the_partition_of_its_command(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    partition = await send(_start(run_id, "patient-a"), "patient-a")

    records = await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    values = [json.loads(r.value) for r in records]
    assert [v["type"] for v in values] == [
        "journeys.run.started.v1", "journeys.node.entered.v1", "journeys.message.requested.v1",
        "journeys.message.sent.v1", "journeys.node.entered.v1", "journeys.delay.started.v1",
    ]  # fmt: skip
    assert [v["seq"] for v in values] == [1, 2, 3, 4, 5, 6]
    for record, value in zip(records, values, strict=True):
        assert record.partition == partition
        assert record.key == patient_key(SECRET, "patient-a").encode()
        assert header(record.headers, "ce_id") == event_id(run_id, value["seq"])
        assert header(record.headers, "ce_type") == value["type"]
        assert header(record.headers, "ce_subject") == str(run_id)
        assert header(record.headers, "content-type") == "application/json"
        assert b"patient-a" not in b"".join(v for _, v in record.headers)


async def test_duplicate_start_and_stale_timer_and_late_cancel_emit_nothing(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    await send(_start(run_id, "patient-b"), "patient-b")
    # The message is sent and reported first: the run waits on its delay.
    await _waiting_on_delay(kafka_bootstrap, topics, run_id)
    now = datetime.now(UTC)
    await send(_start(run_id, "patient-b"), "patient-b")
    await send(FireTimer(run_id=run_id, timer_id=uuid.uuid4(), due_at=now, fired_at=now),
               "patient-b")  # fmt: skip
    await send(CancelRun(run_id=run_id, requested_at=now), "patient-b")
    await send(CancelRun(run_id=run_id, requested_at=now), "patient-b")

    # Six events of the start, one of the first cancel; `_read` looks on past the seventh.
    records = await _read(kafka_bootstrap, topics.events, until=7, subject={str(run_id)})
    types = [json.loads(r.value)["type"] for r in records]
    assert types.count("journeys.run.started.v1") == 1
    assert types[-1] == "journeys.run.cancelled.v1"
    assert len(types) == 7


async def test_early_timer_is_rejected_and_the_run_keeps_waiting(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    await send(_start(run_id, "patient-c"), "patient-c")
    delay = await _waiting_on_delay(kafka_bootstrap, topics, run_id)

    await send(_timer(delay, early=timedelta(seconds=1)), "patient-c")
    await send(_timer(delay), "patient-c")

    records = await _read(kafka_bootstrap, topics.events, until=8, subject={str(run_id)})
    types = [json.loads(r.value)["type"] for r in records]
    assert types[6:] == ["journeys.delay.elapsed.v1", "journeys.run.completed.v1"]


async def test_poison_commands_go_to_the_dead_letter_topic_and_processing_continues(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    bogus = _start(uuid.uuid4(), "patient-d")
    await send(bogus, "patient-d", value=b"not json")
    await send(bogus, "patient-d", value=b'{"type": "no such type"}')
    good = uuid.uuid4()
    await send(_start(good, "patient-d"), "patient-d")

    dead = await _read(kafka_bootstrap, topics.dlq, until=2, subject={str(bogus.run_id)})
    assert [r.value for r in dead] == [b"not json", b'{"type": "no such type"}']
    for record in dead:
        assert header(record.headers, "dlq_source_topic") == topics.commands
        assert header(record.headers, "dlq_error")
    events = await _read(kafka_bootstrap, topics.events, until=6, subject={str(good)})
    assert {json.loads(r.value)["runId"] for r in events} == {str(good)}


async def test_a_restarted_executor_reads_its_runs_back_and_carries_a_waiting_run_on(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    await send(_start(run_id, "patient-e"), "patient-e")
    delay = await _waiting_on_delay(kafka_bootstrap, topics, run_id)

    await asyncio.to_thread(executor.restart, "executor")
    await send(_timer(delay), "patient-e")

    # Only a process that read the run back from the changelog accepts this timer.
    records = await _read(kafka_bootstrap, topics.events, until=8, subject={str(run_id)})
    values = [json.loads(r.value) for r in records]
    assert [v["type"] for v in values[6:]] == [
        "journeys.delay.elapsed.v1", "journeys.run.completed.v1"
    ]  # fmt: skip
    assert [v["seq"] for v in values] == list(range(1, 9))


# Definitions a producer other than the API could put on the commands topic: the graph rules
# are the API's, so `decode_command` takes them, and the core meets the missing node late.
AFTER_DELIVERY = JourneyDefinition.model_validate({
    "name": "next node missing", "start_node_id": "hello",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": "hi", "next_node_id": "gone"}],
})  # fmt: skip
AT_START = JourneyDefinition.model_validate({
    "name": "start node missing", "start_node_id": "gone",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": "hi"}],
})  # fmt: skip
AFTER_DELAY = JourneyDefinition.model_validate({
    "name": "node after the delay missing", "start_node_id": "wait",
    "nodes": [{"id": "wait", "type": "DELAY", "duration_seconds": 3600, "next_node_id": "gone"}],
})  # fmt: skip


async def test_a_command_that_makes_the_core_raise_fails_its_run_and_the_partition_goes_on(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """The core raises after the run's first message was handed over, or before anything was
    written: either way the run ends `failed` (seq gapless, the reason names only the error's
    type), the command goes to the DLQ, and the next patient on the partition is served."""
    after, at_start, good = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    neighbour = _neighbour("patient-f")
    await send(_start(after, "patient-f", AFTER_DELIVERY), "patient-f")
    await send(_start(at_start, neighbour, AT_START), neighbour)
    await send(_start(good, neighbour), neighbour)

    events = await _read(kafka_bootstrap, topics.events, until=6, subject={str(good)})
    assert len(_types(events)) == 6
    both = {str(after), str(at_start)}
    failed = await _read(kafka_bootstrap, topics.events, until=6, subject=both)
    by_run = {run: [json.loads(r.value) for r in failed if json.loads(r.value)["runId"] == run]
              for run in (str(after), str(at_start))}  # fmt: skip
    assert [e["type"] for e in by_run[str(after)]] == [
        "journeys.run.started.v1", "journeys.node.entered.v1", "journeys.message.requested.v1",
        "journeys.run.failed.v1",
    ]  # fmt: skip
    assert [e["type"] for e in by_run[str(at_start)]] == [
        "journeys.run.started.v1", "journeys.run.failed.v1"
    ]  # fmt: skip
    for values in by_run.values():
        assert [e["seq"] for e in values] == list(range(1, len(values) + 1))
        assert values[-1]["reason"] == "executor error: KeyError"  # the type, never the text
    dead = await _read(kafka_bootstrap, topics.dlq, until=2, subject=both)
    assert len(dead) == 2
    for record in dead:
        assert header(record.headers, "dlq_stage") == "process"
        assert header(record.headers, "dlq_error") == "KeyError"
        assert b"gone" not in b"".join(v for _, v in record.headers)


async def test_a_core_error_on_a_later_command_fails_the_run_that_exists(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    await send(_start(run_id, "patient-g", AFTER_DELAY), "patient-g")
    started = await _read(kafka_bootstrap, topics.events, until=3, subject={str(run_id)})
    delay = json.loads(started[-1].value)
    assert delay["type"] == "journeys.delay.started.v1"

    await send(_timer(delay), "patient-g")

    records = await _read(kafka_bootstrap, topics.events, until=4, subject={str(run_id)})
    values = [json.loads(r.value) for r in records]
    # Nothing this command decided is kept: the run fails where it waited.
    assert [v["type"] for v in values[3:]] == ["journeys.run.failed.v1"]
    assert [v["seq"] for v in values] == list(range(1, len(values) + 1))
    dead = await _read(kafka_bootstrap, topics.dlq, until=1, subject={str(run_id)})
    assert [header(r.headers, "dlq_stage") for r in dead] == ["process"]


def _sized(run_id: uuid.UUID, patient: str, size: int, definition: JourneyDefinition) -> StartRun:
    """A StartRun whose value is exactly `size` bytes, padded in the patient context."""
    command = _start(run_id, patient, definition)
    context = {"id": patient, "notes": ""}
    base = len(command.model_copy(update={"patient_context": context}).to_json())
    context["notes"] = "x" * (size - base)
    sized = command.model_copy(update={"patient_context": context})
    assert len(sized.to_json()) == size
    return sized


async def test_a_start_whose_records_are_over_the_limit_fails_its_run_not_its_partition(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """A trigger just under the limit runs as any other (its stored state, without the
    definition, is smaller than the command); one from a producer that ignores the limit
    fails with the reason, its command goes to the DLQ (without its value, which cannot fit
    beside the DLQ headers), and the next patient on the partition is served."""
    under, over, good = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    neighbour = _neighbour("patient-h")
    await send(_sized(under, "patient-h", RECORD_MAX_BYTES - 100, DEFINITION), "patient-h")
    await send(_sized(over, neighbour, RECORD_MAX_BYTES + 1000, DEFINITION), neighbour)
    await send(_start(good, neighbour), neighbour)

    assert len(await _read(kafka_bootstrap, topics.events, until=6, subject={str(good)})) == 6
    both = {str(under), str(over)}
    events = [json.loads(r.value) for r in
              await _read(kafka_bootstrap, topics.events, until=7, subject=both)]  # fmt: skip
    by_run = {run: [(e["type"], e["seq"]) for e in events if e["runId"] == run] for run in both}
    assert [t for t, _ in by_run[str(under)]] == [
        "journeys.run.started.v1", "journeys.node.entered.v1", "journeys.message.requested.v1",
        "journeys.message.sent.v1", "journeys.node.entered.v1", "journeys.delay.started.v1",
    ]  # fmt: skip
    # Its start cannot be recorded at all: the failure is the run's one event.
    assert by_run[str(over)] == [("journeys.run.failed.v1", 1)]
    (failure,) = [e for e in events if e["runId"] == str(over)]
    assert failure["reason"].startswith("record too large: ")
    dead = {header(r.headers, "ce_subject"): r for r in
            await _read(kafka_bootstrap, topics.dlq, until=1, subject=both)}  # fmt: skip
    assert set(dead) == {str(over)}
    assert header(dead[str(over)].headers, "dlq_stage") == "size"
    assert dead[str(over)].value == b""
    omitted = header(dead[str(over)].headers, "dlq_value_omitted") or ""
    assert omitted.startswith("record too large")


# Node ids are up to 200 characters: a run at a long-named DELAY stores that id twice (the
# current node and the pending timer's), so its state grows by ~400 bytes as it goes.
LONG = "n" * 200
GROWING = JourneyDefinition.model_validate({
    "name": "growing", "start_node_id": "a",
    "nodes": [{"id": "a", "type": "DELAY", "duration_seconds": 0.5, "next_node_id": LONG},
              {"id": LONG, "type": "DELAY", "duration_seconds": 3600}],
})  # fmt: skip


async def test_a_run_whose_start_fits_the_limit_never_outgrows_it(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """A stored state holds no definition, so what it grows by (node ids) is already counted in
    the definition its `run.started` carries: the largest start that fits goes on growing."""
    run_id = uuid.uuid4()
    command = _sized(run_id, "patient-i", RECORD_MAX_BYTES - 80, GROWING)
    now = datetime.now(UTC)
    first = decide(None, command, now)
    assert isinstance(first, Decision)
    assert first.state is not None
    started_size = len(first[0].to_json())
    assert RECORD_MAX_BYTES - 100 < started_size <= RECORD_MAX_BYTES
    timer = first.state.pending_timer
    assert timer is not None
    fired = FireTimer(run_id=run_id, timer_id=timer.timer_id, due_at=timer.due_at,
                      fired_at=timer.due_at)  # fmt: skip
    later = decide(first.state, fired, now)
    assert isinstance(later, Decision)
    assert later.state is not None
    grown = len(later.state.model_dump_json())
    assert len(first.state.model_dump_json()) + 390 < grown < started_size

    await send(command, "patient-i")
    started = await _read(kafka_bootstrap, topics.events, until=3, subject={str(run_id)})
    await send(_timer(json.loads(started[-1].value)), "patient-i")

    records = await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    assert _types(records) == [
        "journeys.run.started.v1", "journeys.node.entered.v1", "journeys.delay.started.v1",
        "journeys.delay.elapsed.v1", "journeys.node.entered.v1", "journeys.delay.started.v1",
    ]  # fmt: skip
    assert await _read(kafka_bootstrap, topics.dlq, until=1, subject={str(run_id)}, within=1) == []


async def test_the_executor_log_names_error_types_never_their_text(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """The core's KeyError quotes the node it missed: here, a patient value."""
    canary = f"canary-{uuid.uuid4().hex[:8]}-patient"
    poison = JourneyDefinition.model_validate({
        "name": "canary", "start_node_id": canary,
        "nodes": [{"id": "hello", "type": "MESSAGE", "message": "hi"}],
    })  # fmt: skip
    run_id = uuid.uuid4()
    await send(_start(run_id, "patient-j", poison), "patient-j")
    dead = await _read(kafka_bootstrap, topics.dlq, until=1, subject={str(run_id)})
    assert [header(r.headers, "dlq_error") for r in dead] == ["KeyError"]

    log = executor.services["executor"].log_path.read_text()
    failures = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and str(run_id) in line]  # fmt: skip
    assert canary not in log
    assert "Traceback" not in log
    assert any(f.get("error") == "KeyError" for f in failures), "the failure was logged"


async def test_a_command_of_a_newer_version_is_skipped_and_counted_and_new_fields_ignored(
    executor: Supervisor, send: Any, kafka_bootstrap: str, topics: Topics
) -> None:
    """During a rolling upgrade a newer API may write a command type this executor does not
    know, or add fields to one it knows: neither is poison."""
    later, run_id = uuid.uuid4(), uuid.uuid4()
    unknown = {"type": "journeys.command.snooze_run.v1", "runId": str(later), "minutes": 5}
    await send(_start(later, "patient-k"), "patient-k", value=json.dumps(unknown).encode())
    newer = json.loads(_start(run_id, "patient-k").to_json()) | {"priority": "high"}
    await send(_start(run_id, "patient-k"), "patient-k", value=json.dumps(newer).encode())

    # One partition, in order: once the second command's events are there, the first is done.
    events = await _read(kafka_bootstrap, topics.events, until=6, subject={str(run_id)})
    assert [json.loads(r.value)["seq"] for r in events] == [1, 2, 3, 4, 5, 6]
    assert await _read(kafka_bootstrap, topics.dlq, until=1, subject={str(later)}, within=1) == []
    ready_url = executor.services["executor"].ready_url
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(ready_url.replace("/ready", "/metrics"))).text
    name = 'journeys_executor_records_unknown_total{kind="command_type"}'
    skipped = [line for line in metrics.splitlines() if line.startswith(name)]
    assert skipped
    assert float(skipped[0].split()[-1]) >= 1
