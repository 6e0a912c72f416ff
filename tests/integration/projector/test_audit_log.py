"""The audit topic projected into `audit_log`: each record once, and nothing ever changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from journeys_contracts.audit import AccessRecorded, AuditAction, AuditOutcome
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.keys import patient_key
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    Record,
    eventually,
    produce,
    projector_settings,
    query,
    running,
)


def access(n: int, **overrides: object) -> AccessRecorded:
    values: dict[str, object] = {
        "audit_id": uuid.uuid4(), "occurred_at": datetime.now(UTC), "subject": f"key:ehr-{n}",
        "action": AuditAction.RUN_READ, "method": "GET", "route": "/journeys/runs/{runId}",
        "status": 200, "outcome": AuditOutcome.SUCCEEDED, "request_id": f"req-{n}",
        "run_ids": [uuid.uuid4()], "patient_keys": [patient_key("secret", f"p-{n}")],
    }  # fmt: skip
    return AccessRecorded.model_validate({**values, **overrides})


def audit_record(topics: Topics, record: AccessRecorded) -> Record:
    audit_id = str(record.audit_id)
    envelope = CloudEvent(audit_id, record.type, "/journeys/api", audit_id, record.occurred_at)
    return topics.audit, None, record.to_json(), envelope.headers()


async def test_each_record_lands_once_as_it_was_written(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    records = [access(n) for n in range(20)]
    denied = access(20, subject=None, status=401, outcome=AuditOutcome.DENIED, run_ids=[],
                    patient_keys=[], journey_id=uuid.uuid4())  # fmt: skip
    records.append(denied)
    # Written twice, as a producer retry or a replay could: still one row each.
    await produce(kafka_bootstrap, [audit_record(topics, r) for r in records * 2])
    settings = projector_settings(kafka_bootstrap, read_models, topics)
    async with running(settings):

        async def landed() -> list[dict[str, object]] | None:
            rows = await query(read_models, "SELECT * FROM audit_log ORDER BY request_id")
            return rows if len(rows) >= len(records) else None

        rows = await eventually(landed)
    assert len(rows) == len(records)
    by_id = {row["audit_id"]: row for row in rows}
    for record in records:
        row = by_id[record.audit_id]
        assert row["subject"] == record.subject
        assert row["action"] == record.action.value
        assert row["status"] == record.status
        assert row["outcome"] == record.outcome.value
        assert row["run_ids"] == record.run_ids
        assert row["patient_keys"] == record.patient_keys
        assert row["journey_id"] == record.journey_id
        assert row["occurred_at"] == record.occurred_at
    # Who reached patient p-3: their key finds the row, through the GIN index's operator.
    found = await query(
        read_models, "SELECT request_id FROM audit_log WHERE patient_keys @> ARRAY[%s]",
        patient_key("secret", "p-3"),
    )  # fmt: skip
    assert found == [{"request_id": "req-3"}]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET subject = 'key:someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_log_is_append_only(read_models: str, statement: str) -> None:
    record = access(1)
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO audit_log (audit_id, occurred_at, subject, action, method, route, "
            "status, outcome, request_id, run_ids, patient_keys) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (record.audit_id, record.occurred_at, record.subject, record.action.value,
             record.method, record.route, record.status, record.outcome.value,
             record.request_id, record.run_ids, record.patient_keys),
        )  # fmt: skip
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute(statement)
        rows = await (await conn.execute("SELECT subject FROM audit_log")).fetchall()
    assert rows == [("key:ehr-1",)]
