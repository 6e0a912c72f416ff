"""Patient events: `POST /events` throughput, a waiting run's resume latency, and what the
executor holds per patient.

- `events-ingest`: the API alone (an event's answer waits for nothing but Kafka and the
  patients' data keys in PostgreSQL) under vegeta, batches of 500 events of distinct new
  patients, open-ended; once with the API's default sealing, once with it off. Beside it,
  aiokafka alone producing the same records (acks=all, idempotent): the ceiling under it.
- `event-resume-latency`: runs of a journey defined through the API, started straight on the
  commands topic, wait at a WAIT_FOR_EVENT node; then
  one event per run through `POST /events` at a paced rate; per event, from its 202 to its
  run's `event.matched` readable (read_committed) on the events topic.
- `patient-memory`: the changelog filled directly with `patient:<key>` records written as the
  executor writes them (`patients.patient_json`, sealed), then a fresh executor restores them:
  its restore time and RSS. And a check on the real path that a patient's record stays
  bounded however many events the patient had.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from journeys_bench.api import attack
from journeys_bench.harness import PATIENT_KEY_SECRET, Deployment, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import (
    Record,
    Watch,
    ce_type,
    count_records,
    producer,
    send,
    start_runs,
    wait_until,
)
from journeys_bench.memory import MB, RssSampler, settled
from journeys_bench.tools import vegeta
from journeys_contracts.commands import RecordPatientEvent, RecordPatientEventSealed, receipt_id
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.keys import patient_key
from journeys_executor.core import EventPolicy, PatientEvent, PatientState
from journeys_executor.patients import patient_json, patient_record_key
from journeys_executor.sealed_runs import Sealing
from journeys_runtime import kafka
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.sealing import seal_value, to_wire
from journeys_runtime.shredding import DataKey

log = logging.getLogger(__name__)

EVENT_TYPE = "appointment.booked"
BATCH = 500
INGEST_CEILING = 80  # batches/s the targets are written for (40,000 events/s)
WAITING = "journeys.event.waiting.v1"
MATCHED = "journeys.event.matched.v1"
KEYRING = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
CLINICS = ("north", "south", "east", "west")

# One wait, then a message: the run resumes at `event.matched`.
WAIT_THEN_MESSAGE: dict[str, Any] = {
    "name": "bench: wait for a booking",
    "start_node_id": "wait",
    "nodes": [
        {"id": "wait", "type": "WAIT_FOR_EVENT", "event": EVENT_TYPE, "timeout_seconds": 86400,
         "lookback_seconds": 0, "on_event_next_node_id": "thanks",
         "on_timeout_next_node_id": None},
        {"id": "thanks", "type": "MESSAGE", "message": "See you soon", "next_node_id": None},
    ],
}  # fmt: skip


def event_body(patient: str, n: int, at: datetime) -> dict[str, Any]:
    """One event as an upstream system sends it: small data, its own id."""
    return {
        "eventId": f"evt-{uuid.uuid4().hex}",
        "patientId": patient,
        "type": EVENT_TYPE,
        "occurredAt": at.isoformat().replace("+00:00", "Z"),
        "data": {"clinic": CLINICS[n % 4], "slot": "2026-12-04T09:30:00Z", "visit": n % 7},
    }


def _headers(api_key: str) -> dict[str, list[str]]:
    return {"Content-Type": ["application/json"], "X-API-Key": [api_key]}


def ingest_targets(path: Path, urls: list[str], api_key: str, batches: int, batch: int,
                   prefix: str, population: int | None = None) -> None:  # fmt: skip
    """`batches` requests of `batch` events, every event for a patient of its own, or, with a
    `population`, for its patients in turn (distinct within a request while `batch` is at most
    the population); the requests go to the `urls` in turn (API replicas, as a Service
    spreads them)."""
    now = datetime.now(UTC)
    with path.open("w") as out:
        for b in range(batches):
            numbers = [b * batch + i for i in range(batch)]
            if population is not None:
                numbers = [n % population for n in numbers]
            events = [event_body(f"{prefix}-{n}", i, now) for i, n in enumerate(numbers)]
            body = json.dumps({"events": events}, separators=(",", ":")).encode()
            target = {"method": "POST", "url": urls[b % len(urls)], "header": _headers(api_key),
                      "body": base64.b64encode(body).decode()}  # fmt: skip
            out.write(json.dumps(target) + "\n")


# -- events-ingest ------------------------------------------------------------------------


def events_ingest(infra: Infra, work_dir: Path, seconds: int, workers: int,
                  reference_records: int, batch: int = BATCH,
                  sealing: tuple[bool, ...] = (True, False), replicas: tuple[int, ...] = (1, 2),
                  returning: int = 50_000, warm_up: bool = True) -> dict[str, Any]:  # fmt: skip
    """Once per `sealing` (the API's JOURNEYS_PATIENT_DATA_SEALING) and number of API
    `replicas` (results `sealed`, `sealed-2`, ...); with sealing, once more with events of
    `returning` patients whose keys the API made before the clock starts (`sealed-returning`,
    one replica; 0 for none); then the reference."""
    tool = vegeta(work_dir / "bin")
    out = work_dir / "events-ingest"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for sealed, count in ((s, n) for s in sealing for n in replicas):
        name = ("sealed" if sealed else "clear") + ("" if count == 1 else f"-{count}")
        env = {} if sealed else {"JOURNEYS_PATIENT_DATA_SEALING": "false"}
        with deployment(infra, "events-ingest", {"api": count}, env) as dep:
            results[name] = _ingest(dep, tool, out, name, seconds, workers, batch, warm_up)
            results[name]["api_replicas"] = count
            log.info("events-ingest %s: %s", name, results[name])
    if True in sealing and returning:
        name = "sealed-returning"
        with deployment(infra, "events-ingest", {"api": 1}) as dep:
            results[name] = _ingest(dep, tool, out, name, seconds, workers, batch, warm_up,
                                    returning)  # fmt: skip
            results[name]["api_replicas"] = 1
            log.info("events-ingest %s: %s", name, results[name])
    results["reference"] = asyncio.run(produce_reference(infra, reference_records, batch))
    log.info("events-ingest reference: %s", results["reference"])
    return results


def _ingest(dep: Deployment, tool: Path, out: Path, name: str, seconds: int, workers: int,
            batch: int, warm_up: bool, returning: int = 0) -> dict[str, Any]:  # fmt: skip
    """With `returning`, the events are for that many patients, each of whom had one event
    (and so got a data key) before the clock started."""
    key = dep.stack.api_key
    urls = [f"{url}/events" for url in dep.api_urls]
    warm, main = out / f"{name}-warmup.targets.jsonl", out / f"{name}.targets.jsonl"
    prefix, population = f"bench-ingest-{name}", returning or None
    ingest_targets(warm, urls, key, 10, batch, f"bench-warm-{name}")
    ingest_targets(main, urls, key, INGEST_CEILING * seconds + 20, batch, prefix, population)
    seeded = 0
    if returning:
        seed = out / f"{name}-seed.targets.jsonl"
        ingest_targets(seed, urls, key, -(-returning // batch), batch, prefix, population)
        seeded = asyncio.run(_post_all(seed.read_text().splitlines(), workers))
        log.info("events-ingest %s: %d patients with a data key", name, seeded)
    with RssSampler(dep.pids()) as rss:
        if warm_up:
            attack(tool, warm, out / f"{name}-warmup.bin", 2, 5, 0)
        log.info("events-ingest %s: open-ended, %d connections for %d s", name, workers, seconds)
        result = attack(tool, main, out / f"{name}.bin", seconds, 0, workers)
    in_kafka = asyncio.run(count_records(dep.kafka_bootstrap, dep.topics.commands,
                                         dep.partitions))  # fmt: skip
    accepted = result["status"].get("202", 0)
    return {
        **result,
        "batch": batch,
        "sealing": name == "sealed",
        "requests_per_s": result["accepted_per_s"],
        "events_per_s": round(result["accepted_per_s"] * batch, 1),
        "events_accepted": accepted * batch,
        # Warm-up included; a request that timed out may still have been produced.
        "commands_in_kafka": in_kafka,
        "warmup_events": (10 * batch if warm_up else 0) + seeded,
        "returning_patients": returning,
        "rss": rss.summary(),
    }


async def _post_all(targets: list[str], concurrency: int) -> int:
    """Every request of a targets file's lines, answered 202, `concurrency` at a time; the
    events they carried."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for line in targets:
        queue.put_nowait(json.loads(line))
    events = 0

    async def post(client: httpx.AsyncClient) -> None:
        nonlocal events
        while not queue.empty():
            target = queue.get_nowait()
            headers = {k: v[0] for k, v in target["header"].items()}
            body = base64.b64decode(target["body"])
            answer = await client.post(target["url"], content=body, headers=headers)
            answer.raise_for_status()
            events += len(json.loads(body)["events"])

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(post(client) for _ in range(concurrency)))
    return events


def event_records(count: int, batch: int, sealed: bool) -> list[Record]:
    """The commands the API writes for `count` events of distinct patients, `batch` to a
    request: sealed as the API seals them (each patient's id and the event's data under a new
    data key, wrapped under the development keyring), or in clear."""
    now = datetime.now(UTC)
    records = []
    for n in range(count):
        body = event_body(f"bench-reference-{n}", n % batch, now)
        key = patient_key(PATIENT_KEY_SECRET, body["patientId"])
        receipt = receipt_id(key, body["eventId"])
        fields: dict[str, Any] = {
            "receipt_id": receipt, "event_id": body["eventId"], "patient_key": key,
            "event_type": EVENT_TYPE, "occurred_at": now, "received_at": now, "source": "api",
        }  # fmt: skip
        command: RecordPatientEvent | RecordPatientEventSealed
        if sealed:
            data_key = DataKey.generate()
            command = RecordPatientEventSealed(
                **fields, patient_id=seal_value(data_key, key, "patientId", body["patientId"]),
                event_data=seal_value(data_key, key, "eventData", body["data"]),
                data_key=to_wire(KEYRING.wrap(key, data_key)),
            )  # fmt: skip
        else:
            command = RecordPatientEvent(**fields, patient_id=body["patientId"],
                                         event_data=body["data"])  # fmt: skip
        ce = CloudEvent(str(receipt), command.type, "/bench", str(receipt), now)
        records.append(Record(str(receipt), key.encode(), command.to_json(), ce.headers()))
    return records


async def produce_reference(infra: Infra, count: int, batch: int) -> dict[str, Any]:
    """aiokafka alone producing the API's records, `batch` at a time as a request sends them,
    16 batches in flight (the API's connections): the ceiling of the API's rate."""
    topic = f"bench_reference_events_{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    result: dict[str, Any] = {"records": count, "batch": batch}
    try:
        await admin.create_topics([NewTopic(topic, infra.partitions, 1)])
        for sealed in (True, False):
            records = event_records(count, batch, sealed)
            async with producer(infra.kafka_bootstrap, linger_ms=0) as p:
                began = time.monotonic()
                in_flight = 16 * batch
                for chunk in range(0, count, in_flight):
                    futures = [await send(p, topic, r) for r in records[chunk : chunk + in_flight]]
                    await asyncio.gather(*futures)
                seconds = time.monotonic() - began
            name = "sealed" if sealed else "clear"
            result[name] = {
                "records_per_s": round(count / seconds, 1),
                "record_bytes": round(sum(len(r.value) for r in records) / count),
            }
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    result["producer"] = "aiokafka, acks=all, idempotent, linger 0 ms, 16 batches in flight"
    return result


# -- event-resume-latency -----------------------------------------------------------------


def event_resume_latency(infra: Infra, runs: int, rate: int, per_request: int) -> dict[str, Any]:
    services = {"executor": 1, "scheduler": 1, "projector": 1, "api": 1}
    with deployment(infra, "event-resume", services) as dep:
        result = asyncio.run(_resume(dep, runs, rate, per_request))
        log.info("event-resume-latency: %s", result)
        return result


async def _resume(dep: Deployment, runs: int, rate: int, per_request: int) -> dict[str, Any]:
    """The journey is defined through the API; its runs are StartRun commands (unsealed)
    written straight to the commands topic, for the patients the events then name: the API
    sheds triggers it cannot carry on this machine, and the wait is what is measured."""
    waiting = 0
    matched: dict[str, float] = {}

    def seen(tp: TopicPartition, record: Any, now: float) -> None:
        nonlocal waiting
        kind = ce_type(record)
        if kind == WAITING:
            waiting += 1
        elif kind == MATCHED:
            matched[json.loads(record.value)["receiptId"]] = now

    headers = {"X-API-Key": dep.stack.api_key}
    async with httpx.AsyncClient(base_url=dep.api_url, headers=headers, timeout=30) as client, \
            Watch(dep.kafka_bootstrap, dep.topics.events, dep.partitions, seen), \
            producer(dep.kafka_bootstrap) as p:  # fmt: skip
        answer = await client.post("/journeys", json=WAIT_THEN_MESSAGE)
        answer.raise_for_status()
        journey_id = uuid.UUID(answer.json()["journeyId"])
        log.info("event-resume-latency: %d runs straight onto the commands topic", runs)
        records = start_runs(runs, WAIT_THEN_MESSAGE, journey_id=journey_id)
        began = time.monotonic()
        await asyncio.gather(*[await send(p, dep.topics.commands, r) for r in records])
        all_waiting = await wait_until(lambda: waiting >= runs, patience=max(120, runs / 20))
        to_waiting = time.monotonic() - began
        # The runs' own events are still being projected and their timers planned: the
        # events are sent to runs that wait, not into that backlog.
        settle = await settled(dep.pids())
        log.info("event-resume-latency: %d runs waiting in %.1f s, services idle %s s later; "
                 "events at %d/s", waiting, to_waiting, settle, rate)  # fmt: skip
        patients = [f"bench-patient-{i}" for i in range(runs)]  # start_runs' patients
        with RssSampler(dep.pids()) as rss:
            paced = await _paced_events(client, patients, rate, per_request)
            accepted = paced.accepted
            await wait_until(lambda: all(r in matched for r in accepted), patience=60)
    latency, from_send = Latencies(), Latencies()
    for receipt, at in accepted.items():
        if receipt in matched:
            latency.record(matched[receipt] - at)
            from_send.record(matched[receipt] - paced.sent[receipt])
    return {
        "runs": runs,
        "runs_started": "StartRun v1 straight onto the commands topic",
        "all_waiting": all_waiting,
        "seconds_to_waiting": round(to_waiting, 1),
        "seconds_to_idle": settle,
        "rate": rate,
        "events_per_request": per_request,
        "events": len(patients),
        "requests_skipped": paced.skipped,
        "requests_failed": paced.failed,
        "accepted": len(accepted),
        "matched": sum(r in matched for r in accepted),
        "missing": sum(r not in matched for r in accepted),
        "latency": latency.summary(),
        "matched_before_answer": latency.negative,
        "latency_from_send": from_send.summary(),
        "answer_latency": paced.answers.summary(),
        "rss": rss.summary(),
    }


@dataclass
class Paced:
    """What the paced sender saw: per receipt id, when its request was sent and when its 202
    came (monotonic); the answers' latencies; requests not sent or failed."""

    sent: dict[str, float]
    accepted: dict[str, float]
    answers: Latencies
    skipped: int = 0
    failed: int = 0


async def _paced_events(client: httpx.AsyncClient, patients: list[str], rate: int,
                        per_request: int = 1, max_outstanding: int = 200) -> Paced:  # fmt: skip
    """One event per patient, `per_request` to a request, sent on a fixed schedule whatever
    the answers do. A send due while `max_outstanding` requests are unanswered is skipped
    and counted: a client queueing thousands of requests would measure itself."""
    paced = Paced({}, {}, Latencies())
    outstanding = 0

    async def one(group: list[str], n: int) -> None:
        nonlocal outstanding
        now = datetime.now(UTC)
        bodies = [event_body(patient, n + i, now) for i, patient in enumerate(group)]
        receipts = [str(receipt_id(patient_key(PATIENT_KEY_SECRET, b["patientId"]),
                                   b["eventId"])) for b in bodies]  # fmt: skip
        sent = time.monotonic()
        for receipt in receipts:
            paced.sent[receipt] = sent
        outstanding += 1
        try:
            answer = await client.post("/events", json={"events": bodies}, timeout=10)
        except httpx.HTTPError:
            paced.failed += 1
            return
        finally:
            outstanding -= 1
        at = time.monotonic()
        if answer.status_code != 202:
            paced.failed += 1
            return
        paced.answers.record(at - sent)
        for receipt in receipts:
            paced.accepted[receipt] = at

    began = time.monotonic()
    tasks = []
    for k, first in enumerate(range(0, len(patients), per_request)):
        delay = began + k * per_request / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if outstanding >= max_outstanding:
            paced.skipped += 1
            continue
        group = patients[first : first + per_request]
        tasks.append(asyncio.create_task(one(group, first)))
    await asyncio.gather(*tasks)
    return paced


# -- patient-memory -----------------------------------------------------------------------


def patient_memory(infra: Infra, patients: int, per_patient: int = 5, check_patients: int = 100,
                   check_events: int = 50) -> dict[str, Any]:  # fmt: skip
    with deployment(infra, "patient-memory", {}) as dep:
        written, data_keys = asyncio.run(
            _write_patients(dep, patients, per_patient, check_patients)
        )
        log.info("patient-memory: %s", written)
        began = time.monotonic()
        dep.start({"executor": 1})
        ready = time.monotonic() - began
        supervisor = dep.supervisors[-1]
        log_path = supervisor.services["executor"].log_path
        asyncio.run(wait_until(lambda: _restored_partitions(log_path) >= dep.partitions,
                               patience=1800, poll=0.5))  # fmt: skip
        done = _restores(log_path)
        pid = supervisor.pid("executor")
        restore = {
            "seconds": round(sum(r["seconds"] for r in done), 2),
            "start_to_ready_seconds": round(ready, 2),
            "rss_mb": round(psutil.Process(pid).memory_info().rss / MB, 1) if pid else 0.0,
        }
        log.info("patient-memory: restore %s", restore)
        bounded = asyncio.run(_bounded(dep, data_keys, per_patient, check_events))
        log.info("patient-memory: bounded %s", bounded)
    return {"patients": patients, "events_per_patient": per_patient, **written,
            "restore": restore, "bounded": bounded, "cap": cap_record_bytes()}  # fmt: skip


def _restores(log_path: Path) -> list[dict[str, Any]]:
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    return [json.loads(line) for line in lines if '"run table restored"' in line]


def _restored_partitions(log_path: Path) -> int:
    return len({p for r in _restores(log_path) for p in r["partitions"]})


def partition_of(key: str, partitions: int) -> int:
    """The commands topic's partition of a patient key (the producers' default partitioner),
    which is also the changelog partition that holds the patient's record."""
    return kafka.partition_of(key.encode(), partitions)


def patient_state(key: str, events: int, now: datetime, seen: int | None = None) -> PatientState:
    """A patient's state as the executor keeps it after `events` events (and `seen` receipt
    ids, default as many), the last ones a minute apart."""
    kept = []
    for i in range(events):
        at = now - timedelta(minutes=events - i)
        event_id = f"evt-{uuid.uuid4().hex}"
        kept.append(PatientEvent(receipt_id(key, event_id), event_id, EVENT_TYPE, at, at,
                                 {"clinic": CLINICS[i % 4], "slot": "2026-12-04T09:30:00Z",
                                  "visit": i % 7}))  # fmt: skip
    receipts = [(e.receipt_id, e.received_at) for e in kept]
    receipts += [(uuid.uuid4(), now) for _ in range(max((seen or 0) - events, 0))]
    return PatientState(key, seen=tuple(receipts), recent=tuple(kept))


def sealed_patient_record(key: str, state: PatientState, data_key: DataKey | None = None) -> bytes:
    """The changelog value the executor writes for a patient whose events came sealed (under
    `data_key`, or a new one)."""
    data_key = data_key or DataKey.generate()
    return patient_json(state, Sealing(key, to_wire(KEYRING.wrap(key, data_key)), data_key))


def cap_record_bytes() -> dict[str, int]:
    """The largest patient record the executor's defaults allow: every kept event and every
    remembered receipt id, sealed."""
    policy = EventPolicy()
    key = patient_key(PATIENT_KEY_SECRET, "bench-cap")
    state = patient_state(key, policy.keep_max, datetime.now(UTC), seen=policy.dedup_max)
    return {"events_kept_max": policy.keep_max, "event_dedup_max": policy.dedup_max,
            "bytes": len(sealed_patient_record(key, state))}  # fmt: skip


def memory_patient(i: int) -> tuple[str, str]:
    """Patient `i` of `patient-memory`: its id and key."""
    patient = f"bench-memory-{i}"
    return patient, patient_key(PATIENT_KEY_SECRET, patient)


async def _write_patients(dep: Deployment, patients: int, per_patient: int,
                          keep_keys: int) -> tuple[dict[str, Any], dict[str, DataKey]]:  # fmt: skip
    """The records go straight to the changelog partition of each patient's commands; the
    data keys of the first `keep_keys` patients are kept, to send them real events later."""
    topic = dep.topics.executor_runs
    total_bytes = 0
    build = produce = 0.0
    chunk = 20_000
    kept: dict[str, DataKey] = {}
    now = datetime.now(UTC)
    async with producer(dep.kafka_bootstrap, linger_ms=5) as p:
        for first in range(0, patients, chunk):
            began = time.monotonic()
            batch = []
            for i in range(first, min(first + chunk, patients)):
                _, key = memory_patient(i)
                data_key = DataKey.generate()
                if i < keep_keys:
                    kept[key] = data_key
                state = patient_state(key, per_patient, now)
                value = sealed_patient_record(key, state, data_key)
                batch.append((partition_of(key, dep.partitions), patient_record_key(key), value))
            build += time.monotonic() - began
            began = time.monotonic()
            futures = []
            for partition, record_key, value in batch:
                total_bytes += len(value)
                futures.append(await p.send(topic, value, record_key, partition=partition))
            await asyncio.gather(*futures)
            produce += time.monotonic() - began
    written = {"changelog_records": patients, "record_bytes_mean": round(total_bytes / patients),
               "changelog_mb": round(total_bytes / MB, 1), "build_seconds": round(build, 1),
               "produce_seconds": round(produce, 1)}  # fmt: skip
    return written, kept


@dataclass
class _Written:
    bytes: int
    recent: int
    seen: int


async def _bounded(dep: Deployment, data_keys: dict[str, DataKey], before: int,
                   events: int) -> dict[str, Any]:  # fmt: skip
    """`events` sealed RecordPatientEvent commands for each of the first patients (whose
    records hold `before` events, sealed under `data_keys`) through the executor, one round
    at a time (event n of every patient, until each has its record written, then n + 1);
    every record the executor writes for them, read back from its changelog."""
    patients = len(data_keys)
    ids = {memory_patient(i)[1]: memory_patient(i)[0] for i in range(patients)}
    wanted = {patient_record_key(k) for k in data_keys}
    writes: dict[bytes, list[_Written]] = defaultdict(list)

    def seen(tp: TopicPartition, record: Any, now: float) -> None:
        if record.key in wanted and record.value is not None:
            fields = json.loads(record.value)
            writes[record.key].append(
                _Written(len(record.value), len(fields["recent"]), len(fields["seen"]))
            )

    pid = dep.supervisors[-1].pid("executor")
    process = psutil.Process(pid) if pid else None
    rss_before = process.memory_info().rss / MB if process else 0.0
    began = time.monotonic()
    done = True
    async with Watch(dep.kafka_bootstrap, dep.topics.executor_runs, dep.partitions, seen), \
            producer(dep.kafka_bootstrap) as p:  # fmt: skip
        for n in range(events):
            now = datetime.now(UTC)
            round_ = [_event_command(ids[key], key, data_key, n, now)
                      for key, data_key in data_keys.items()]  # fmt: skip
            await asyncio.gather(*[await send(p, dep.topics.commands, r) for r in round_])
            expected = before + n + 1

            def all_in(expected: int = expected) -> bool:
                return all(writes[k] and writes[k][-1].seen >= expected for k in wanted)

            done = done and await wait_until(all_in, patience=60, poll=0.01)
    seconds = time.monotonic() - began
    rss_after = process.memory_info().rss / MB if process else 0.0
    finals = [w[-1] for w in writes.values() if w]
    every = [x for w in writes.values() for x in w]
    # Per patient, the first record holding as many events as are kept.
    full = [next((x.bytes for x in w if x.recent >= EventPolicy().keep_max), 0)
            for w in writes.values()]  # fmt: skip
    return {
        "patients": patients,
        "events_before": before,
        "events_per_patient": events,
        "all_recorded": done,
        "seconds": round(seconds, 1),
        "records_written": len(every),
        "recent_max": max((x.recent for x in every), default=0),
        "seen_final": sorted({x.seen for x in finals}),
        "bytes_first_full_max": max(full, default=0),
        "bytes_final_min": min((x.bytes for x in finals), default=0),
        "bytes_final_max": max((x.bytes for x in finals), default=0),
        "bytes_max": max((x.bytes for x in every), default=0),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
    }


def _event_command(patient: str, key: str, data_key: DataKey, n: int, now: datetime) -> Record:
    """A patient event's sealed command, as the API writes it."""
    body = event_body(patient, n, now)
    receipt = receipt_id(key, body["eventId"])
    command = RecordPatientEventSealed(
        receipt_id=receipt, event_id=body["eventId"], patient_key=key, event_type=EVENT_TYPE,
        occurred_at=now, received_at=now, source="api",
        patient_id=seal_value(data_key, key, "patientId", patient),
        event_data=seal_value(data_key, key, "eventData", body["data"]),
        data_key=to_wire(KEYRING.wrap(key, data_key)),
    )  # fmt: skip
    ce = CloudEvent(str(receipt), command.type, "/bench", str(receipt), now)
    return Record(str(receipt), key.encode(), command.to_json(), ce.headers())
