"""The plan's SQL: one set-based statement per table, all sent in one pipeline.

Columns travel as arrays in binary (`%b`): text arrays in text format cost more to quote
and parse than the inserts themselves.

The caller owns the transaction; the offsets and the NOTIFY ride in it with the rows, so a
batch is either wholly projected and recorded, or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import AsyncConnection

from journeys_contracts.statuses import QUEUED
from journeys_projector.plan import AuditRow, ErasureRow, Plan

Position = tuple[str, int]  # (topic, partition)

CHANNEL = "journeys_projected"

_JOURNEYS = """
INSERT INTO journeys (journey_id, name, definition, created_at)
SELECT j.id, j.name, j.definition::jsonb, j.created_at
FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::timestamptz[])
    AS j(id, name, definition, created_at)
ON CONFLICT (journey_id) DO NOTHING
"""

# A run is first known from its start command or its run.started, whichever is projected
# first; the other changes nothing but may move created_at earlier, so the row never depends
# on order. A sealed run's patient_id is NULL and its envelopes go to patient_id_sealed and
# patient_context (see projector_0004_sealed_runs.sql).
_RUNS = """
INSERT INTO runs (run_id, journey_id, patient_id, patient_id_sealed, patient_key, status,
                  patient_context, created_at, updated_at)
SELECT r.id, r.journey_id, r.patient_id, r.patient_id_sealed::jsonb, r.patient_key, r.status,
       r.context::jsonb, r.created_at, r.created_at
FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
            %b::timestamptz[])
    AS r(id, journey_id, patient_id, patient_id_sealed, patient_key, status, context, created_at)
WHERE NOT EXISTS (SELECT FROM erased_runs x WHERE x.run_id = r.id)
ORDER BY r.id
ON CONFLICT (run_id) DO UPDATE SET created_at = excluded.created_at
    WHERE excluded.created_at < runs.created_at
"""

_EVENTS = """
INSERT INTO run_events (run_id, seq, type, occurred_at, data)
SELECT e.run_id, e.seq, e.type, e.occurred_at, e.data::jsonb
FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::timestamptz[], %b::text[])
    AS e(run_id, seq, type, occurred_at, data)
WHERE NOT EXISTS (SELECT FROM erased_runs x WHERE x.run_id = e.run_id)
ON CONFLICT (run_id, seq) DO NOTHING
"""

# Each field carries the seq of the event that set it (0: not set by this batch); only
# events newer than the row's last_seq count, as if applied one by one, in order.
_CHANGES = """
UPDATE runs AS r SET
    status = CASE WHEN c.status_seq > r.last_seq THEN c.status ELSE r.status END,
    current_node_id = CASE WHEN c.node_seq > r.last_seq THEN c.node ELSE r.current_node_id END,
    wake_at = CASE WHEN c.wake_seq > r.last_seq THEN c.wake_at ELSE r.wake_at END,
    error = CASE WHEN c.error_seq > r.last_seq THEN c.error ELSE r.error END,
    error_sealed = CASE WHEN c.error_sealed_seq > r.last_seq THEN c.error_sealed::jsonb
                        ELSE r.error_sealed END,
    waiting_event_type = CASE WHEN c.waiting_type_seq > r.last_seq THEN c.waiting_type
                              ELSE r.waiting_event_type END,
    waiting_until = CASE WHEN c.waiting_until_seq > r.last_seq THEN c.waiting_until
                         ELSE r.waiting_until END,
    last_seq = c.last_seq,
    updated_at = c.updated_at
FROM unnest(%b::uuid[], %b::int[], %b::timestamptz[], %b::text[], %b::int[], %b::text[],
            %b::int[], %b::timestamptz[], %b::int[], %b::text[], %b::int[], %b::text[],
            %b::int[], %b::text[], %b::int[], %b::timestamptz[], %b::int[])
    AS c(run_id, last_seq, updated_at, status, status_seq, node, node_seq, wake_at, wake_seq,
         error, error_seq, error_sealed, error_sealed_seq, waiting_type, waiting_type_seq,
         waiting_until, waiting_until_seq)
WHERE r.run_id = c.run_id AND c.last_seq > r.last_seq
"""

# A receipt received before its patient was erased is not brought back by a replay; one
# received after (the patient came back) is kept.
_RECEIPTS = """
INSERT INTO event_receipts (receipt_id, event_id, patient_key, event_type, source,
                            occurred_at, received_at, data, data_sealed)
SELECT r.receipt_id, r.event_id, r.patient_key, r.event_type, r.source, r.occurred_at,
       r.received_at, r.data::jsonb, r.data_sealed::jsonb
FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[],
            %b::timestamptz[], %b::text[], %b::text[])
    AS r(receipt_id, event_id, patient_key, event_type, source, occurred_at, received_at, data,
         data_sealed)
WHERE NOT EXISTS (SELECT FROM erased_patients x
                  WHERE x.patient_key = r.patient_key AND x.erased_at >= r.received_at)
ON CONFLICT (receipt_id) DO NOTHING
"""

_EFFECTS = """
INSERT INTO event_effects (run_id, seq, receipt_id, journey_id, effect, node_id, occurred_at)
SELECT * FROM unnest(%b::uuid[], %b::int[], %b::uuid[], %b::uuid[], %b::text[], %b::text[],
                     %b::timestamptz[])
    AS e(run_id, seq, receipt_id, journey_id, effect, node_id, occurred_at)
WHERE NOT EXISTS (SELECT FROM erased_runs x WHERE x.run_id = e.run_id)
ON CONFLICT (run_id, seq) DO NOTHING
"""

# A later command of the patient's (higher offset on their partition) replaces a row; a
# change set before the patient's erasure is not brought back by a replay.
_CONSENTS = """
INSERT INTO patient_consent (patient_key, channel, granted, source, consent_id, changed_at,
                             command_offset)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bool[], %b::text[], %b::uuid[],
                     %b::timestamptz[], %b::bigint[])
    AS c(patient_key, channel, granted, source, consent_id, changed_at, command_offset)
WHERE NOT EXISTS (SELECT FROM erased_patients x
                  WHERE x.patient_key = c.patient_key AND x.erased_at >= c.changed_at)
ON CONFLICT (patient_key, channel) DO UPDATE SET
    granted = excluded.granted, source = excluded.source, consent_id = excluded.consent_id,
    changed_at = excluded.changed_at, command_offset = excluded.command_offset
    WHERE excluded.command_offset > patient_consent.command_offset
"""

# A clinic's event, once (its id is keyed on the receipt): a replay or a re-import adds nothing.
_CLINIC_EVENTS = """
INSERT INTO clinic_events (fact_id, clinic_id, event_type, occurred_at, revenue, treatment_type)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::numeric[],
                     %b::text[])
ON CONFLICT (fact_id) DO NOTHING
"""

# An operator's retry, once per message; its run erased: never.
_RETRIES = """
INSERT INTO delivery_retries (message_id, attempt, run_id, requested_at)
SELECT * FROM unnest(%b::uuid[], %b::int[], %b::uuid[], %b::timestamptz[])
    AS t(message_id, attempt, run_id, requested_at)
WHERE NOT EXISTS (SELECT FROM erased_runs x WHERE x.run_id = t.run_id)
ON CONFLICT (message_id) DO NOTHING
"""

# Every delivery report is read; only one answering a retry (same message and attempt) is
# kept, the first (a resend after a crash reports the same attempt again). The retries of the
# batch are inserted before this runs, and a retry precedes its report on their partition.
_REPORTS = """
UPDATE delivery_retries AS t SET delivered = r.delivered, channel = r.channel,
    reason = r.reason, reported_at = r.reported_at
FROM unnest(%b::uuid[], %b::int[], %b::bool[], %b::text[], %b::text[], %b::timestamptz[])
    AS r(message_id, attempt, delivered, channel, reason, reported_at)
WHERE t.message_id = r.message_id AND t.attempt = r.attempt AND t.reported_at IS NULL
"""

# Append-only (the table's triggers refuse UPDATE, DELETE and TRUNCATE); a replay's records
# are already there and skipped.
_AUDIT = """
INSERT INTO audit_log (audit_id, occurred_at, subject, action, method, route, status, outcome,
                       request_id, journey_id, run_ids, patient_keys)
SELECT a.id, a.occurred_at, a.subject, a.action, a.method, a.route, a.status, a.outcome,
       a.request_id, a.journey_id, a.run_ids::uuid[], a.patient_keys::text[]
FROM unnest(%b::uuid[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[],
            %b::int[], %b::text[], %b::text[], %b::uuid[], %b::text[], %b::text[])
    AS a(id, occurred_at, subject, action, method, route, status, outcome, request_id,
         journey_id, run_ids, patient_keys)
ON CONFLICT (audit_id) DO NOTHING
"""

# Runs after every insert of the batch, so a run's rows projected in the same batch go too.
# The data-modifying CTEs run once each on one snapshot; they touch different tables. A second
# delivery deletes nothing and keeps the first row (and its count).
_ERASE = """
WITH gone AS (
    DELETE FROM runs WHERE run_id = ANY(%(run_ids)s::uuid[]) RETURNING run_id
), events AS (
    DELETE FROM run_events WHERE run_id = ANY(%(run_ids)s::uuid[])
), effects AS (
    DELETE FROM event_effects WHERE run_id = ANY(%(run_ids)s::uuid[])
), receipts AS (
    DELETE FROM event_receipts
    WHERE patient_key = %(patient_key)s AND received_at <= %(erased_at)s
), retries AS (
    DELETE FROM delivery_retries WHERE run_id = ANY(%(run_ids)s::uuid[])
), consents AS (
    DELETE FROM patient_consent
    WHERE patient_key = %(patient_key)s AND changed_at <= %(erased_at)s
), remembered AS (
    INSERT INTO erased_runs (run_id, erasure_id)
    SELECT unnest(%(run_ids)s::uuid[]), %(erasure_id)s
    ON CONFLICT (run_id) DO NOTHING
)
INSERT INTO erased_patients (erasure_id, patient_key, erased_at, runs_deleted)
SELECT %(erasure_id)s, %(patient_key)s, %(erased_at)s, count(*) FROM gone
ON CONFLICT (erasure_id) DO NOTHING
"""

# GREATEST: a replica that lost its partitions mid-batch may commit late; never go back.
_OFFSETS = """
INSERT INTO projector_offsets (topic, partition, next_offset)
SELECT * FROM unnest(%b::text[], %b::int[], %b::bigint[])
ON CONFLICT (topic, partition) DO UPDATE
    SET next_offset = GREATEST(projector_offsets.next_offset, excluded.next_offset)
"""

_STORED = """
SELECT topic, partition, next_offset FROM projector_offsets
WHERE (topic, partition) IN (SELECT * FROM unnest(%b::text[], %b::int[]))
"""


async def write(conn: AsyncConnection[Any], plan: Plan, offsets: Mapping[Position, int]) -> None:
    """Apply `plan` and record `offsets` (next offset per partition) on the caller's transaction."""
    statements = [
        (_JOURNEYS, _columns(
            (j.journey_id, j.name, j.definition, j.created_at) for j in plan.journeys.values())),
        (_RUNS, _columns(
            (r.run_id, r.journey_id, r.patient_id, r.patient_id_sealed, r.patient_key, QUEUED,
             r.patient_context, r.created_at)
            for r in sorted(plan.runs.values(), key=lambda r: r.run_id))),
        (_EVENTS, _columns(
            (e.run_id, e.seq, e.type, e.occurred_at, e.data) for e in plan.events.values())),
        (_CHANGES, _columns(_change_row(c.run_id, c.last_seq, c.updated_at, c.values, c.seqs)
                            for c in sorted(plan.changes.values(), key=lambda c: c.run_id))),
        (_AUDIT, _columns(_audit_row(a) for a in plan.audits.values())),
        (_RECEIPTS, _columns(
            (r.receipt_id, r.event_id, r.patient_key, r.event_type, r.source, r.occurred_at,
             r.received_at, r.data, r.data_sealed) for r in plan.receipts.values())),
        (_EFFECTS, _columns(
            (e.run_id, e.seq, e.receipt_id, e.journey_id, e.effect, e.node_id, e.occurred_at)
            for e in plan.effects.values())),
        (_CONSENTS, _columns(
            (c.patient_key, c.channel, c.granted, c.source, c.consent_id, c.changed_at,
             c.command_offset) for c in sorted(plan.consents.values(),
                                                key=lambda c: (c.patient_key, c.channel)))),
        (_CLINIC_EVENTS, _columns(
            (c.fact_id, c.clinic_id, c.event_type, c.occurred_at, c.revenue, c.treatment_type)
            for c in plan.clinic_events.values())),
        (_RETRIES, _columns(
            (t.message_id, t.attempt, t.run_id, t.requested_at) for t in plan.retries.values())),
        (_REPORTS, _columns(
            (r.message_id, r.attempt, r.delivered, r.channel, r.reason, r.reported_at)
            for r in plan.reports.values())),
        (_OFFSETS, _columns((topic, part, nxt) for (topic, part), nxt in offsets.items())),
    ]  # fmt: skip
    async with conn.pipeline(), conn.cursor() as cur:
        for sql, params in statements:
            if params:
                await cur.execute(sql, params)
        for erasure in plan.erasures.values():
            await cur.execute(_ERASE, _erasure_params(erasure))
        await cur.execute(f"NOTIFY {CHANNEL}")


async def stored_offsets(
    conn: AsyncConnection[Any], positions: Iterable[Position]
) -> dict[Position, int]:
    """The next offset to project of each position that has one."""
    wanted = list(positions)
    topics, partitions = [t for t, _ in wanted], [p for _, p in wanted]
    cur = await conn.execute(_STORED, (topics, partitions))
    return {(topic, part): nxt for topic, part, nxt in await cur.fetchall()}


def _change_row(
    run_id: Any, last_seq: int, updated_at: Any, values: dict[str, Any], seqs: dict[str, int]
) -> tuple[Any, ...]:
    def pair(name: str) -> tuple[Any, int]:
        return values.get(name), seqs.get(name, 0)

    return (run_id, last_seq, updated_at, *pair("status"), *pair("current_node_id"),
            *pair("wake_at"), *pair("error"), *pair("error_sealed"),
            *pair("waiting_event_type"), *pair("waiting_until"))  # fmt: skip


def _erasure_params(e: ErasureRow) -> dict[str, Any]:
    return {"erasure_id": e.erasure_id, "patient_key": e.patient_key, "erased_at": e.erased_at,
            "run_ids": list(e.run_ids)}  # fmt: skip


def _audit_row(a: AuditRow) -> tuple[Any, ...]:
    # unnest flattens arrays of arrays: each row's arrays travel as their text literal.
    return (a.audit_id, a.occurred_at, a.subject, a.action, a.method, a.route, a.status,
            a.outcome, a.request_id, a.journey_id, _array_literal(map(str, a.run_ids)),
            _array_literal(a.patient_keys))  # fmt: skip


def _array_literal(items: Iterable[str]) -> str:
    """PostgreSQL's text form of a one-dimensional array of plain tokens (uuids, hex)."""
    return "{" + ",".join(items) + "}"


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows to one list per column, the shape `unnest` takes; empty when there are no rows."""
    return [list(column) for column in zip(*rows, strict=True)]
