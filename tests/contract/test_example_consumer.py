"""The example consumer other teams copy works against a real broker, as documented."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from journeys_contracts import events as ev
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.envelope import CloudEvent, event_id
from journeys_contracts.keys import patient_key
from journeys_contracts.wire import WireModel
from journeys_runtime.kafka import producer
from journeys_runtime.topics import Topics

SCRIPT = Path(__file__).parents[2] / "contracts" / "examples" / "consume_events.py"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
DEFINITION = JourneyDefinition.model_validate(
    {
        "name": "Example",
        "start_node_id": "hello",
        "nodes": [{"id": "hello", "type": "MESSAGE", "message": "Hello!"}],
    }
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consume_events", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_events(run_id: uuid.UUID) -> list[ev.Event]:
    fields = {"run_id": run_id, "journey_id": uuid.uuid4(), "patient_id": "patient-secret-42"}
    return [
        ev.RunStarted(
            **fields, seq=1, occurred_at=NOW, journey_name="Example", start_node_id="hello",
            patient_context={"age": 72}, definition=DEFINITION,
        ),
        ev.NodeEntered(**fields, seq=2, occurred_at=NOW, node_id="hello", node_type="MESSAGE"),
        ev.RunCompleted(**fields, seq=3, occurred_at=NOW, last_node_id="hello"),
    ]  # fmt: skip


async def write_like_the_executor(bootstrap: str, topics: Topics, run_id: uuid.UUID) -> None:
    """Commit seq 1-2, abort seq 3, then commit seq 2 again (a replay after a crash)."""
    started, entered, completed = run_events(run_id)
    key = patient_key("test-secret", "patient-secret-42").encode()
    client = producer(bootstrap, transactional_id=f"example-test-{uuid.uuid4()}")

    async def send(event: ev.Event) -> None:
        headers = CloudEvent(
            event_id(event.run_id, event.seq), event.type, "/journeys/executor",
            str(event.run_id), event.occurred_at,
        ).headers()  # fmt: skip
        await client.send_and_wait(topics.events, event.to_json(), key=key, headers=headers)

    await client.start()
    try:
        async with client.transaction():
            await send(started)
            await send(entered)
        await client.begin_transaction()
        await send(completed)
        await client.abort_transaction()
        async with client.transaction():
            await send(entered)
    finally:
        await client.stop()


async def test_prints_committed_events_once_and_flags_the_replayed_one(
    kafka_bootstrap: str, topics: Topics
) -> None:
    run_id = uuid.uuid4()
    await write_like_the_executor(kafka_bootstrap, topics, run_id)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--bootstrap", kafka_bootstrap,
        "--topic-prefix", topics.prefix, "--from-beginning",
        "--group-id", f"example-{uuid.uuid4()}", "--max-events", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    time = NOW.isoformat()
    assert stdout.decode().splitlines() == [
        f"journeys.run.started.v1 runId={run_id} seq=1 time={time}",
        f"journeys.node.entered.v1 runId={run_id} seq=2 time={time}",
        f"duplicate journeys.node.entered.v1 runId={run_id} seq=2 skipped",
    ]
    assert b"patient-secret-42" not in stdout + stderr


def test_seq_tracker_tells_new_duplicate_and_gap() -> None:
    tracker = load_example().SeqTracker()
    assert tracker.check("run", 1) == ("new", 0)
    assert tracker.check("run", 2) == ("new", 1)
    assert tracker.check("run", 2) == ("duplicate", 2)
    assert tracker.check("run", 1) == ("duplicate", 2)
    assert tracker.check("run", 5) == ("gap", 2)
    assert tracker.check("other-run", 1) == ("new", 0)


def test_prints_a_gap_before_the_event_that_follows_it() -> None:
    example = load_example()
    tracker, out = example.SeqTracker(), io.StringIO()
    run_id = uuid.uuid4()
    for event in (run_events(run_id)[0], run_events(run_id)[2]):
        record = example.ConsumerRecord(
            topic="t", partition=0, offset=event.seq, timestamp=0, timestamp_type=0,
            key=None, value=event.to_json(), checksum=None, serialized_key_size=0,
            serialized_value_size=0, headers=[("ce_type", event.type.encode())],
        )  # fmt: skip
        example.handle(record, tracker, out)
    assert out.getvalue().splitlines() == [
        f"journeys.run.started.v1 runId={run_id} seq=1 time=None",
        f"gap runId={run_id} missing seq 2..2",
        f"journeys.run.completed.v1 runId={run_id} seq=3 time=None",
    ]


def test_an_erasure_is_told_apart_from_run_events_and_forgets_their_seqs() -> None:
    example = load_example()
    tracker, out = example.SeqTracker(), io.StringIO()
    run_id, erasure_id = uuid.uuid4(), uuid.uuid4()
    tracker.check(str(run_id), 1)
    erased = ev.PatientErased(erasure_id=erasure_id, patient_key="ab" * 32, erased_at=NOW,
                              run_ids=[run_id])  # fmt: skip
    record = example.ConsumerRecord(
        topic="t", partition=0, offset=9, timestamp=0, timestamp_type=0, key=None,
        value=erased.to_json(), checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=[("ce_type", erased.type.encode())],
    )  # fmt: skip
    example.handle(record, tracker, out)
    assert out.getvalue().splitlines() == [
        f"journeys.patient.erased.v1 erasureId={erasure_id} runs=1"
    ]
    assert str(run_id) not in tracker.last


def records_of(example: ModuleType, *events: WireModel | dict[str, object]) -> list[object]:
    """Records as the executor writes them (ce_type header, JSON value), offsets 1, 2, …"""
    values = [e.to_json() if isinstance(e, WireModel) else json.dumps(e).encode() for e in events]
    return [
        example.ConsumerRecord(
            topic="t", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=None,
            value=value, checksum=None, serialized_key_size=0, serialized_value_size=0,
            headers=[("ce_type", json.loads(value)["type"].encode())],
        )
        for offset, value in enumerate(values, start=1)
    ]  # fmt: skip


def test_patient_events_say_what_started_a_run_what_it_waits_for_and_how_the_wait_ended() -> None:
    example = load_example()
    tracker, out = example.SeqTracker(), io.StringIO()
    run_id, receipt, timer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fields = {"run_id": run_id, "journey_id": uuid.uuid4(), "patient_id": "patient-secret-42",
              "occurred_at": NOW}  # fmt: skip
    due = datetime(2025, 3, 16, 9, 26, 53, tzinfo=UTC)
    events = [
        ev.RunStarted(
            **fields, seq=1, journey_name="Example", start_node_id="hello",
            patient_context={"id": "patient-secret-42"}, definition=DEFINITION,
            trigger_event_id="ehr-7781", trigger_event_type="appointment.booked",
            trigger_receipt_id=receipt,
        ),
        ev.EventWaiting(**fields, seq=2, node_id="intake", event_type="intake_form.submitted",
                        timer_id=timer, timeout_seconds=172800, due_at=due),
        ev.EventMatched(**fields, seq=3, node_id="intake", event_id="form-1",
                        event_type="intake_form.submitted", receipt_id=receipt,
                        event_occurred_at=NOW, event_data={"answer": "secret-answer"},
                        cancelled_timer_id=timer),
        ev.EventMatched(**fields, seq=4, node_id="again", event_id="form-1",
                        event_type="intake_form.submitted", receipt_id=receipt,
                        event_occurred_at=NOW, event_data={}, lookback=True),
        ev.EventTimedOut(**fields, seq=5, node_id="later", timer_id=timer, due_at=due,
                         fired_at=due),
    ]  # fmt: skip

    for record in records_of(example, *events):
        example.handle(record, tracker, out)

    assert out.getvalue().splitlines() == [
        f"journeys.run.started.v1 runId={run_id} seq=1 time=None trigger=appointment.booked",
        f"journeys.event.waiting.v1 runId={run_id} seq=2 time=None "
        "waitsFor=intake_form.submitted until=2025-03-16T09:26:53Z",
        f"journeys.event.matched.v1 runId={run_id} seq=3 time=None matched=intake_form.submitted",
        f"journeys.event.matched.v1 runId={run_id} seq=4 time=None "
        "matched=intake_form.submitted lookback=true",
        f"journeys.event.timed_out.v1 runId={run_id} seq=5 time=None "
        "timedOutAt=2025-03-16T09:26:53Z",
    ]
    assert "secret" not in out.getvalue()


def test_an_exit_prints_run_exited_then_the_run_cancelled_that_ends_the_run() -> None:
    example = load_example()
    tracker, out = example.SeqTracker(), io.StringIO()
    run_id = uuid.uuid4()
    fields = {"run_id": run_id, "journey_id": uuid.uuid4(), "patient_id": "patient-secret-42",
              "occurred_at": NOW}  # fmt: skip
    exited = ev.RunExited(
        **fields,
        seq=2,
        node_id="wait",
        event_id="ehr-9",
        event_type="appointment.cancelled",
        receipt_id=uuid.uuid4(),
    )
    cancelled = ev.RunCancelled(**fields, seq=3, node_id="wait", exit_event_id="ehr-9",
                                exit_event_type="appointment.cancelled")  # fmt: skip
    tracker.check(str(run_id), 1)

    for record in records_of(example, exited, cancelled):
        example.handle(record, tracker, out)

    assert out.getvalue().splitlines() == [
        f"journeys.run.exited.v1 runId={run_id} seq=2 time=None exitOn=appointment.cancelled",
        f"journeys.run.cancelled.v1 runId={run_id} seq=3 time=None exitOn=appointment.cancelled",
    ]


def test_an_event_of_a_type_it_does_not_know_keeps_the_seqs_gapless() -> None:
    """A newer producer's type: printed plainly and counted in the run's seqs, not a gap."""
    example = load_example()
    tracker, out = example.SeqTracker(), io.StringIO()
    run_id = uuid.uuid4()
    started, _, completed = run_events(run_id)
    newer = {"type": "journeys.run.paused.v1", "runId": str(run_id), "seq": 2, "patientId": "p",
             "journeyId": str(uuid.uuid4()), "occurredAt": NOW.isoformat()}  # fmt: skip

    for record in records_of(example, started, newer, completed):
        example.handle(record, tracker, out)

    assert out.getvalue().splitlines() == [
        f"journeys.run.started.v1 runId={run_id} seq=1 time=None",
        f"journeys.run.paused.v1 runId={run_id} seq=2 time=None",
        f"journeys.run.completed.v1 runId={run_id} seq=3 time=None",
    ]
