"""Erasing a patient, end to end: no store yields the patient's data in clear afterwards.

A stack of its own seals patient data and publishes only the sealed events
(`EXECUTOR_EMIT_EVENTS_V1=false`: the end of the transition, when no team reads the clear v1
events any more). Patient P has a run waiting on a long delay, a run that completed and a run
cancelled with a reason, all triggered with Idempotency-Keys; patient Q has a waiting run.

Before the erasure nothing in Kafka is clear: every topic, read to its end with aborted
transactions included, lacks every marker, while Q's and P's sealed values open under their
keys (so the scan looks where the data is). After P's erasure reads `done`: P is gone from the
API, from every table of the stack's database and from the executor's run table; P's data key
is deleted, so every sealed value of P's in any topic names a key that no store holds; a retry of
P's keys starts nothing; Q is untouched and still opens. What is left of P's key is stated and
checked: the commands that carried P's wrapped key are trimmed once read, and the only
wrapped copies left are in changelog values that tombstones supersede (until compaction).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from journeys_contracts.envelope import header
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring
from journeys_runtime.shredding import DataKey, WrappedKey, open_sealed
from tests.e2e.conftest import Stack, api_client, running_stack
from tests.e2e.helpers import create_journey, message_journey, read_to_end, wait_for_status

pytestmark = pytest.mark.e2e

ERASURE_WITHIN = 30.0
# Column types whose text a patient id or context could be stored in; bytea read as escaped
# text shows any ASCII it holds verbatim.
SCANNED_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")
# The stack's database has 18 tables (read models, erasure records, audit, API keys, claims and
# data keys, timers, offsets, migrations).
MIN_TABLES = 12
# Where P's id, context or keys would be if an erasure missed them.
PATIENT_TABLES = {"runs", "run_events", "api_idempotency_claims", "api_patient_data_keys",
                  "scheduler_timers", "audit_log"}  # fmt: skip
MIN_ROWS = 20
MIN_RECORDS = {"events.v2": 20, "executor.runs.changelog": 5}
TRIMMED_WITHIN = 30.0


@pytest.fixture(scope="module")
def sealed_stack(
    kafka_bootstrap: str, admin_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"JOURNEYS_PATIENT_DATA_SEALING": "true", "EXECUTOR_EMIT_EVENTS_V1": "false",
           "EXECUTOR_COMMANDS_TRIM_SECONDS": "1"}  # fmt: skip
    with running_stack(kafka_bootstrap, admin_database_url, tmp_path_factory, env) as running:
        yield running


@pytest.fixture
async def sealed_client(sealed_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sealed_stack) as c:
        yield c


async def test_after_erasure_no_store_yields_the_patients_data_in_clear(
    sealed_stack: Stack, sealed_client: httpx.AsyncClient, admin_database_url: str
) -> None:
    stack, client = sealed_stack, sealed_client
    tag = uuid.uuid4().hex
    p_context = {"id": f"erase-me-{tag}", "note": f"canary-{tag}"}
    q_context = {"id": f"keep-me-{tag}", "note": f"control-{tag}"}
    p_reason = f"moved away {tag}"
    p_event = {"eventId": f"p-form-{tag}", "patientId": p_context["id"],
               "type": "intake_form.submitted",
               "data": {"answer": f"event-canary-{tag}"}}  # fmt: skip
    p_markers = [p_context["id"], p_context["note"], p_reason, p_event["data"]["answer"]]
    q_markers = [q_context["id"], q_context["note"]]
    waits = await create_journey(
        client,
        message_journey(
            f"erasure waits {tag}",
            {"type": "MESSAGE", "message": "Hello"},
            {"type": "DELAY", "duration_seconds": 3600},
            {"type": "MESSAGE", "message": "Later"},
        ),
    )
    ends = await create_journey(client, message_journey(
        "erasure ends", {"type": "MESSAGE", "message": "Only"}))  # fmt: skip
    p_triggers = [(waits, f"p-wait-{tag}"), (ends, f"p-end-{tag}"), (waits, f"p-cancel-{tag}")]
    p_waiting, p_completed, p_cancelled = [
        await _trigger(client, journey, p_context, key) for journey, key in p_triggers
    ]
    p_runs = {p_waiting, p_completed, p_cancelled}
    q_waiting = await _trigger(client, waits, q_context, f"q-wait-{tag}")
    await wait_for_status(client, p_cancelled, {"waiting_delay"})
    cancel = await client.post(f"/journeys/runs/{p_cancelled}/cancel", json={"reason": p_reason})
    assert cancel.status_code == 202, cancel.text
    # A patient event of P's, kept by the executor (sealed) and received by the read model.
    recorded = await client.post("/events", json=p_event)
    assert recorded.status_code == 202, recorded.text
    await wait_for_status(client, p_waiting, {"waiting_delay"})
    await wait_for_status(client, p_completed, {"completed"})
    await wait_for_status(client, p_cancelled, {"cancelled"})
    await wait_for_status(client, q_waiting, {"waiting_delay"})
    assert {r["runId"] for r in await _search(client, p_context["id"])} == p_runs
    # The API opens what the read model keeps sealed: the caller's reason reads back in clear.
    cancelled = await client.get(f"/journeys/runs/{p_cancelled}/events")
    assert p_reason in cancelled.text, cancelled.text

    deadline = time.monotonic() + 20
    while (await client.get(f"/events/{p_event['eventId']}")).status_code != 200:
        assert time.monotonic() < deadline, "P's event was never received"
        await asyncio.sleep(0.2)
    database_url = _stack_database_url(stack, admin_database_url)
    keys_before = await asyncio.to_thread(_data_keys, database_url)
    before = await _scan_topics(stack, keys_before, p_markers + q_markers)
    assert before.clear == {}, before.clear  # sealed from the start: nothing clear to erase
    assert before.opened_markers >= set(p_markers + q_markers), before.opened_markers
    p_key = before.patient_key_of(p_runs)
    q_key = before.patient_key_of({q_waiting})
    p_kid = keys_before[p_key].kid

    await _erase(client, p_context["id"])

    for run_id in p_runs:
        response = await client.get(f"/journeys/runs/{run_id}")
        assert response.status_code == 404, response.text
    assert (await client.get(f"/events/{p_event['eventId']}")).status_code == 404
    assert await _search(client, p_context["id"]) == []
    q_runs = await _search(client, q_context["id"])
    assert [(r["runId"], r["status"]) for r in q_runs] == [(q_waiting, "waiting_delay")]
    q_run = (await client.get(f"/journeys/runs/{q_waiting}")).json()
    assert q_run["status"] == "waiting_delay"
    assert q_run["patientContext"] == q_context

    for journey, key in p_triggers:
        retry = await client.post(
            f"/journeys/{journey}/trigger", json=p_context, headers={"Idempotency-Key": key}
        )
        assert retry.status_code == 409, retry.text
    assert await _search(client, p_context["id"]) == []

    # Tables: nothing of P in clear, and P's data key is gone while Q's stays.
    scan = await asyncio.to_thread(
        _scan_database, database_url, [*p_markers, *q_markers, f"erasure waits {tag}"]
    )
    assert scan.tables >= MIN_TABLES, scan
    assert scan.scanned >= PATIENT_TABLES, scan
    assert scan.rows >= MIN_ROWS, scan
    # The scan finds what is stored in clear: the journey's name is.
    assert "journeys" in scan.found[f"erasure waits {tag}"], scan.found
    for marker in p_markers + q_markers:  # sealed in every table, Q's included
        assert scan.found[marker] == set(), (marker, scan.found)
    keys_after = await asyncio.to_thread(_data_keys, database_url)
    assert p_key not in keys_after
    assert q_key in keys_after
    assert p_kid not in {k.kid for k in keys_after.values()}

    # Topics: nothing clear; P's sealed values name only P's deleted key, which nothing
    # the platform stores can open; Q's still open. The commands that carried P's wrapped key
    # are trimmed once the executor and the projector have read them, the delivery requests
    # once the delivery service has sent and reported them.
    deadline = time.monotonic() + TRIMMED_WITHIN
    while True:
        after = await _scan_topics(stack, keys_after, p_markers + q_markers)
        if not {"commands", "deliveries"} & after.wrapped_copies.get(p_kid, set()):
            break
        assert time.monotonic() < deadline, f"P's records not trimmed: {after.wrapped_copies}"
        await asyncio.sleep(1.0)
    assert after.clear == {}, after.clear
    assert after.opened_markers >= set(q_markers), after.opened_markers
    assert after.opened_markers.isdisjoint(p_markers), after.opened_markers
    assert after.kids_of(p_key) == {p_kid}, after.kids_of(p_key)
    assert after.unopened[p_key] >= 10, after.unopened
    for topic, minimum in MIN_RECORDS.items():
        assert after.records[topic] >= minimum, after.records

    # The executor forgot P's runs; the wrapped copies of P's key that remain are in records
    # whose removal is bounded by configuration, and in no live state.
    changelog = await read_to_end(stack.kafka_bootstrap, stack.topics.executor_runs)
    last = {r.key: r.value for r in changelog}
    assert last[q_waiting.encode()] is not None, "Q's run was forgotten by the executor"
    for run_id in p_runs:
        assert run_id.encode() in last, f"no changelog record of P's run {run_id}"
        assert last[run_id.encode()] is None, f"P's run {run_id} still in the executor's table"
    # And P's kept events: their record is tombstoned too.
    assert f"patient:{p_key}".encode() in last, "P's event was never kept by the executor"
    assert last[f"patient:{p_key}".encode()] is None, "P's kept events survived the erasure"
    assert not any(p_kid.encode() in (value or b"") for value in last.values())
    # Left: the states the tombstones supersede, until compaction removes them.
    assert after.wrapped_copies[p_kid] == {"executor.runs.changelog"}, after.wrapped_copies

    # No clear events were published at all, so no copy to chase: only patient.erased.
    clear_events = await read_to_end(stack.kafka_bootstrap, stack.topics.events)
    assert {header(r.headers, "ce_type") for r in clear_events} <= {"journeys.patient.erased.v1"}
    assert _logged(stack.log_dir, p_markers) == [], "a log line carries P's data"


async def _trigger(
    client: httpx.AsyncClient, journey_id: str, context: dict[str, Any], key: str
) -> str:
    response = await client.post(
        f"/journeys/{journey_id}/trigger", json=context, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


async def _search(client: httpx.AsyncClient, patient_id: str) -> list[dict[str, Any]]:
    response = await client.post("/journeys/runs/search", json={"patientId": patient_id})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _erase(client: httpx.AsyncClient, patient_id: str) -> None:
    accepted = await client.post("/patients/erasures", json={"patientId": patient_id})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "pending"
    location = accepted.headers["location"]
    assert location == f"/patients/erasures/{accepted.json()['erasureId']}"
    deadline = time.monotonic() + ERASURE_WITHIN
    while True:
        state = await client.get(location)
        assert state.status_code == 200, state.text
        if state.json()["status"] == "done":
            assert state.json()["doneAt"] is not None
            return
        assert time.monotonic() < deadline, f"erasure not done in {ERASURE_WITHIN} s: {state.text}"
        await asyncio.sleep(0.1)


def _stack_database_url(stack: Stack, admin_database_url: str) -> str:
    # The e2e stack names its database as its topic prefix, less the trailing dot.
    return psycopg.conninfo.make_conninfo(admin_database_url, dbname=stack.topics.prefix[:-1])


@dataclass
class Scan:
    tables: int = 0
    scanned: set[str] = field(default_factory=set)
    rows: int = 0
    found: dict[str, set[str]] = field(default_factory=dict)


def _scan_database(url: str, needles: list[str]) -> Scan:
    """Every table of every schema but the system ones, each stored-text column read whole."""
    scan = Scan(found={n: set() for n in needles})
    with psycopg.connect(url, autocommit=True) as conn:
        columns: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, column, data_type in conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
            " FROM information_schema.columns c JOIN information_schema.tables t"
            " USING (table_schema, table_name)"
            " WHERE t.table_type = 'BASE TABLE'"
            " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1, 2, c.ordinal_position"
        ):
            columns.setdefault((schema, table), [])
            if data_type in SCANNED_TYPES:
                columns[(schema, table)].append((column, data_type))
        for (schema, table), cols in columns.items():
            scan.tables += 1
            scan.scanned.add(table)
            texts = [
                sql.SQL("encode({}, 'escape')" if t == "bytea" else "{}::text").format(
                    sql.Identifier(c)
                )
                for c, t in cols
            ]
            query = sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(texts) if texts else sql.SQL("NULL::text"),
                sql.Identifier(schema, table),
            )
            for row in conn.execute(query):
                scan.rows += 1
                blob = "\x00".join(v for v in row if v is not None)
                for needle in needles:
                    if needle in blob:
                        scan.found[needle].add(table)
    return scan


@dataclass
class TopicScan:
    """What every topic of a stack holds, read to its end with aborted transactions included."""

    records: dict[str, int] = field(default_factory=dict)
    clear: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Marker -> (topic, offset) of each record holding it in clear: key, value or header."""
    opened_markers: set[str] = field(default_factory=set)
    """Markers found inside sealed values opened with the keys given."""
    unopened: dict[str, int] = field(default_factory=dict)
    """Patient key -> how many of its sealed values name a key that was not given."""
    kids: dict[str, set[str]] = field(default_factory=dict)
    """Patient key -> the ids of the keys its sealed values name."""
    runs: dict[str, str] = field(default_factory=dict)
    """Run id -> patient key, from every sealed record naming both."""
    wrapped_copies: dict[str, set[str]] = field(default_factory=dict)
    """Key id -> the topics holding a wrapped copy of that key."""

    def patient_key_of(self, run_ids: set[str]) -> str:
        keys = {self.runs[r] for r in run_ids}
        assert len(keys) == 1, keys
        return keys.pop()

    def kids_of(self, patient_key: str) -> set[str]:
        return self.kids.get(patient_key, set())


async def _scan_topics(stack: Stack, keys: dict[str, DataKey], markers: list[str]) -> TopicScan:
    scan = TopicScan()
    for topic in stack.topics.names:
        name = topic.removeprefix(stack.topics.prefix).removeprefix("journeys.")
        name = name.removesuffix(".v1")
        records = await read_to_end(stack.kafka_bootstrap, topic, committed=False)
        scan.records[name] = len(records)
        for r in records:
            raw = [r.key or b"", r.value or b"", *(v for _, v in r.headers)]
            for marker in markers:
                if any(marker.encode() in part for part in raw):
                    scan.clear.setdefault(marker, []).append((name, r.offset))
            if r.value and r.value.startswith(b"{"):
                _walk_record(scan, name, json.loads(r.value), keys, markers)
    return scan


def _walk_record(
    scan: TopicScan, topic: str, record: dict[str, Any], keys: dict[str, DataKey],
    markers: list[str],
) -> None:  # fmt: skip
    patient_key = record.get("patientKey") or record.get("patient_key")
    run_id = record.get("runId") or record.get("run_id")
    if patient_key and run_id:
        scan.runs[str(run_id)] = patient_key

    def walk(value: Any, field_name: str) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, field_name)
            return
        if not isinstance(value, dict):
            return
        if set(value) == {"kid", "kek", "wrapped"}:
            scan.wrapped_copies.setdefault(value["kid"], set()).add(topic)
            return
        if set(value) == {"enc", "kid", "ct"}:
            assert patient_key, f"a sealed value without a patient key on {topic}"
            scan.kids.setdefault(patient_key, set()).add(value["kid"])
            key = keys.get(patient_key)
            if key is None or key.kid != value["kid"]:
                scan.unopened[patient_key] = scan.unopened.get(patient_key, 0) + 1
                return
            opened = json.dumps(open_sealed(key, patient_key, field_name, value))
            scan.opened_markers |= {m for m in markers if m in opened}
            return
        for name, item in value.items():
            walk(item, _camel(name))

    walk(record, "")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _data_keys(url: str) -> dict[str, DataKey]:
    """Every data key the API stores, unwrapped: what the platform can still open."""
    keyring = Keyring.parse(DEV_KEKS, DEV_KEK_ID)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT patient_key, kid, kek_id, wrapped FROM api_patient_data_keys"
        ).fetchall()
    return {pk: keyring.unwrap(pk, WrappedKey(kid, kek, bytes(wrapped)))
            for pk, kid, kek, wrapped in rows}  # fmt: skip


def _logged(log_dir: Path, markers: list[str]) -> list[tuple[str, str]]:
    found = []
    files = [p for p in log_dir.rglob("*") if p.is_file()]
    assert files, f"no logs under {log_dir}"
    for path in files:
        text = path.read_text(errors="replace")
        found += [(path.name, m) for m in markers if m in text]
    return found
