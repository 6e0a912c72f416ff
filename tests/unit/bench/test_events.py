"""What the patient-event benchmarks send and store: the API's body, the executor's own
patient records (they must restore as the executor's), and events paced on a schedule."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka.partitioner import DefaultPartitioner

from journeys_bench import events
from journeys_bench.harness import PATIENT_KEY_SECRET
from journeys_contracts.commands import (
    RecordPatientEvent,
    RecordPatientEventSealed,
    decode_command,
    receipt_id,
)
from journeys_contracts.keys import patient_key
from journeys_executor.patients import patient_from_json, wrapped_key_of
from journeys_runtime.keyring import DataKeys


def test_ingest_targets_are_batches_of_distinct_patients(tmp_path: Path) -> None:
    path = tmp_path / "targets.jsonl"

    urls = ["http://api-1/events", "http://api-2/events"]
    events.ingest_targets(path, urls, "key", batches=3, batch=4, prefix="p")

    targets = [json.loads(line) for line in path.read_text().splitlines()]
    bodies = [json.loads(base64.b64decode(t["body"]))["events"] for t in targets]
    assert [len(b) for b in bodies] == [4, 4, 4]
    patients = [e["patientId"] for body in bodies for e in body]
    assert len(set(patients)) == 12
    assert all(t["header"]["X-API-Key"] == ["key"] for t in targets)
    assert [t["url"] for t in targets] == [*urls, urls[0]]  # the replicas in turn


def test_reference_records_are_the_commands_the_api_writes() -> None:
    sealed = [decode_command(r.value) for r in events.event_records(3, 500, sealed=True)]
    clear = [decode_command(r.value) for r in events.event_records(3, 500, sealed=False)]

    assert all(isinstance(c, RecordPatientEventSealed) for c in sealed)
    assert all(isinstance(c, RecordPatientEvent) for c in clear)
    assert all(c.receipt_id == receipt_id(c.patient_key, c.event_id) for c in sealed + clear)


def test_patients_go_to_the_partition_the_producers_choose() -> None:
    partitioner = DefaultPartitioner()
    keys = [patient_key(PATIENT_KEY_SECRET, f"p-{i}") for i in range(200)]

    ours = [events.partition_of(k, 4) for k in keys]

    assert ours == [partitioner(k.encode(), [0, 1, 2, 3], [0, 1, 2, 3]) for k in keys]


def test_a_written_patient_record_restores_as_the_executors_own() -> None:
    key = patient_key(PATIENT_KEY_SECRET, "p")
    state = events.patient_state(key, 5, datetime.now(UTC))

    raw = events.sealed_patient_record(key, state)

    assert wrapped_key_of(raw) is not None
    assert b"clinic" not in raw  # the data is sealed
    assert patient_from_json(raw, DataKeys(events.KEYRING)) == state


def test_the_largest_record_the_defaults_allow_is_measured_with_every_field_full() -> None:
    cap = events.cap_record_bytes()
    five = events.sealed_patient_record(
        "0" * 64, events.patient_state("0" * 64, 5, datetime.now(UTC))
    )

    assert (cap["events_kept_max"], cap["event_dedup_max"]) == (20, 1000)
    assert cap["bytes"] > 10 * len(five)


def test_paced_events_keep_their_schedule_and_note_each_202() -> None:
    sent: list[dict[str, object]] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        (event,) = json.loads(request.content)["events"]
        sent.append(event)
        await asyncio.sleep(0.2)  # slower than the schedule: the sends must not wait for it
        return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

    async def run() -> tuple[dict[str, float], float]:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            began = asyncio.get_running_loop().time()
            paced = await events._paced_events(client, ["a", "b", "c", "d"], rate=20)
            return paced.accepted, asyncio.get_running_loop().time() - began

    accepted, took = asyncio.run(run())

    assert took < 0.6  # 4 at 20/s is 0.15 s of sends, then one 0.2 s answer
    receipts = {str(receipt_id(patient_key(PATIENT_KEY_SECRET, str(e["patientId"])),
                               str(e["eventId"]))) for e in sent}  # fmt: skip
    assert set(accepted) == receipts


def test_paced_events_batch_and_skip_sends_while_too_many_are_unanswered() -> None:
    sizes: list[int] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        sizes.append(len(json.loads(request.content)["events"]))
        await asyncio.sleep(0.3)
        return httpx.Response(202, json={"accepted": sizes[-1], "duplicates": 0})

    async def run(per_request: int, max_outstanding: int) -> events.Paced:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await events._paced_events(client, list("abcdef"), rate=20,
                                              per_request=per_request,
                                              max_outstanding=max_outstanding)  # fmt: skip

    batched = asyncio.run(run(per_request=3, max_outstanding=10))
    assert sizes == [3, 3]
    assert (len(batched.accepted), batched.skipped) == (6, 0)

    sizes.clear()
    one_at_a_time = asyncio.run(run(per_request=1, max_outstanding=1))
    assert sizes == [1]  # the other five were due while the first was unanswered
    assert (len(one_at_a_time.accepted), one_at_a_time.skipped) == (1, 5)
