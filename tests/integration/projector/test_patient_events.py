"""Patient events through the real projector: receipts and their effects, runs waiting for an
event (clear and sealed) and what they wait for, as the API lists them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from journeys_api import migrations as api_migrations
from journeys_contracts.commands import REPLIED, RecordPatientEvent, RecordPatientEventSealed
from journeys_contracts.envelope import CloudEvent, Headers
from journeys_projector import store
from journeys_projector.plan import ErasureRow, plan
from journeys_runtime.shredding import DataKey, KeyEncryptionKey, open_sealed
from journeys_runtime.topics import Topics
from tests.integration.api.conftest import api_settings, serving
from tests.integration.projector.helpers import (
    Record,
    caught_up,
    event_record,
    produce,
    projector_settings,
    query,
    run_row,
    running,
    sealed_event_record,
    twin_record,
)
from tests.unit.projector.facts import SECRET, Story, patient_event, sealed_patient_event

pytestmark = pytest.mark.integration

KEK = KeyEncryptionKey("test-kek", bytes(32))


def patient_event_record(
    topics: Topics, command: RecordPatientEvent | RecordPatientEventSealed
) -> Record:
    """As a way in writes it: keyed by the patient key, the receipt id as id and subject."""
    envelope = CloudEvent(str(command.receipt_id), command.type, "/journeys/api",
                          str(command.receipt_id), command.received_at)  # fmt: skip
    headers: Headers = envelope.headers()
    return topics.commands, command.patient_key.encode(), command.to_json(), headers


async def test_receipts_effects_and_waits_are_projected_and_listed_by_status(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    booked = patient_event(event_id="appt-1", event_type="appointment.booked")
    form = patient_event(event_id="form-1", source="hook:ehr")
    cancel = patient_event(event_id="appt-1-x", event_type="appointment.cancelled")
    journey_id = uuid.uuid4()
    started = Story(journey_id=journey_id).triggered(booked).wait_for("form")
    resumed = Story(journey_id=journey_id).started().wait_for("form").matched("form", form)
    exited = Story(journey_id=journey_id).started().wait_for("form").exited("form", cancel)
    waiting_sealed = Story(patient_id="patient-sealed").started().wait_for("form")
    key = DataKey.generate()
    records = [
        patient_event_record(topics, booked),
        patient_event_record(topics, sealed_patient_event(form, key, KEK)),
        patient_event_record(topics, cancel), patient_event_record(topics, booked),
        *(event_record(topics, e) for s in (started, resumed, exited) for e in s.events),
        *(r for e in waiting_sealed.events
          for r in (twin_record(topics, e), sealed_event_record(topics, e, key))),
    ]  # fmt: skip
    await produce(kafka_bootstrap, records)

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    receipts = await query(read_models, "SELECT * FROM event_receipts ORDER BY event_id")
    assert [(r["event_id"], r["event_type"], r["source"], r["patient_key"]) for r in receipts] == [
        ("appt-1", "appointment.booked", "api", booked.patient_key),
        ("appt-1-x", "appointment.cancelled", "api", cancel.patient_key),
        ("form-1", "intake_form.submitted", "hook:ehr", form.patient_key),
    ]  # fmt: skip
    assert set(receipts[0]) == {"receipt_id", "event_id", "patient_key", "event_type", "source",
                                "occurred_at", "received_at", "recorded_at", "data",
                                "data_sealed"}  # fmt: skip
    # Not a reply: no data kept, clear or sealed.
    assert {(r["data"], r["data_sealed"]) for r in receipts} == {(None, None)}
    assert (receipts[0]["occurred_at"], receipts[0]["received_at"]) == (
        booked.occurred_at, booked.received_at,
    )  # fmt: skip
    effects = await query(read_models, "SELECT * FROM event_effects ORDER BY effect")
    assert [(e["receipt_id"], e["run_id"], e["journey_id"], e["effect"]) for e in effects] == [
        (cancel.receipt_id, exited.run_id, journey_id, "exited"),
        (form.receipt_id, resumed.run_id, journey_id, "resumed"),
        (booked.receipt_id, started.run_id, journey_id, "started"),
    ]  # fmt: skip

    rows = {s.run_id: await run_row(read_models, s.run_id) for s in (started, resumed, exited)}
    due = started.events[-1].due_at  # type: ignore[union-attr]
    assert [(r["status"], r["waiting_event_type"], r["waiting_until"])  # type: ignore[index]
            for r in rows.values()] == [
        ("waiting_event", "intake_form.submitted", due),
        ("in_progress", None, None),
        ("cancelled", None, None),
    ]  # fmt: skip
    sealed_row = await run_row(read_models, waiting_sealed.run_id)
    assert sealed_row is not None
    assert (sealed_row["status"], sealed_row["waiting_event_type"], sealed_row["patient_id"]) == (
        "waiting_event", "intake_form.submitted", None,
    )  # fmt: skip
    timeline = await query(read_models, "SELECT type FROM run_events WHERE run_id = %s "
                           "ORDER BY seq", exited.run_id)  # fmt: skip
    assert [t["type"] for t in timeline][-2:] == [
        "journeys.run.exited.v1", "journeys.run.cancelled.v1",
    ]  # fmt: skip

    api_migrations.apply(read_models)
    async with serving(api_settings(kafka_bootstrap, read_models, topics)) as client:
        response = await client.get(
            "/journeys/runs", params={"status": "waiting_event", "journeyId": str(journey_id)}
        )
        booked_read = await client.get("/events/appt-1")
        form_read = await client.get("/events/form-1")
        unknown = await client.get("/events/never-sent")
    # What an integration engineer asks: did my event arrive, and what did it do?
    assert booked_read.status_code == 200, booked_read.text
    (receipt,) = booked_read.json()["receipts"]
    assert (receipt["receiptId"], receipt["type"], receipt["source"]) == (
        str(booked.receipt_id), "appointment.booked", "api",
    )  # fmt: skip
    assert [(e["effect"], e["runId"], e["journeyId"]) for e in receipt["effects"]] == [
        ("started", str(started.run_id), str(journey_id)),
    ]  # fmt: skip
    (form_receipt,) = form_read.json()["receipts"]
    assert [(e["effect"], e["runId"], e["nodeId"]) for e in form_receipt["effects"]] == [
        ("resumed", str(resumed.run_id), "form"),
    ]  # fmt: skip
    assert "patientId" not in booked_read.text
    assert booked.patient_id not in booked_read.text
    assert unknown.status_code == 404
    assert response.status_code == 200, response.text
    (listed,) = response.json()["items"]
    assert (listed["runId"], listed["status"]) == (str(started.run_id), "waiting_event")
    assert (listed["waitingFor"], listed["waitingUntil"]) == (
        "intake_form.submitted", due.isoformat().replace("+00:00", "Z"),
    )  # fmt: skip


async def test_erasure_deletes_the_patients_receipts_and_effects_and_no_replay_brings_them_back(
    read_models: str,
) -> None:
    mine, theirs = patient_event(event_id="appt-1"), patient_event("patient-456", "appt-1")
    run = Story().triggered(mine)
    facts = [mine, theirs, *run.events]
    erased_at = mine.received_at + timedelta(minutes=1)
    rows = plan(facts, SECRET)
    erasure = ErasureRow(uuid.uuid4(), mine.patient_key, erased_at, (run.run_id,))
    rows.erasures[erasure.erasure_id] = erasure
    later = patient_event(event_id="appt-2", at=erased_at + timedelta(seconds=1))
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        async with conn.transaction():
            await store.write(conn, plan(facts, SECRET), {("commands", 0): 1})
        async with conn.transaction():
            await store.write(conn, rows, {("commands", 0): 2})
        async with conn.transaction():  # a replay, and the patient back with a new event
            await store.write(conn, plan([*facts, later], SECRET), {("commands", 0): 3})

    receipts = await query(read_models, "SELECT receipt_id FROM event_receipts")
    assert {r["receipt_id"] for r in receipts} == {theirs.receipt_id, later.receipt_id}
    assert await query(read_models, "SELECT * FROM event_effects") == []


async def test_replies_keep_their_data_sealed_or_clear_and_go_with_an_erasure(
    read_models: str,
) -> None:
    text = {"channel": "sms", "body": "Yes, Tuesday works", "keyword": None}
    clear = patient_event(event_id="sms:1", event_type=REPLIED).model_copy(
        update={"event_data": text}
    )
    sealed = sealed_patient_event(
        patient_event("patient-456", "sms:2", REPLIED).model_copy(update={"event_data": text}),
        key := DataKey.generate(), KEK,
    )  # fmt: skip
    erased = plan([], SECRET)
    erasure = ErasureRow(uuid.uuid4(), sealed.patient_key,
                         sealed.received_at + timedelta(minutes=1), ())  # fmt: skip
    erased.erasures[erasure.erasure_id] = erasure
    stored = "SELECT event_id, data, data_sealed FROM event_receipts ORDER BY event_id"
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        async with conn.transaction():
            batch = plan([clear, sealed, patient_event(event_id="form-1")], SECRET)
            await store.write(conn, batch, {("commands", 0): 3})
        rows = {r["event_id"]: r for r in await query(read_models, stored)}
        async with conn.transaction():
            await store.write(conn, erased, {("commands", 0): 4})

    assert (rows["sms:1"]["data"], rows["sms:1"]["data_sealed"]) == (text, None)
    assert rows["sms:2"]["data"] is None
    assert open_sealed(key, sealed.patient_key, "eventData", rows["sms:2"]["data_sealed"]) == text
    assert (rows["form-1"]["data"], rows["form-1"]["data_sealed"]) == (None, None)
    assert [r["event_id"] for r in await query(read_models, stored)] == ["form-1", "sms:1"]
