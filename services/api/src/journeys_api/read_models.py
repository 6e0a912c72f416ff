"""Queries over the projector's read models (`journeys`, `runs`, `run_events`, and
`event_receipts` and `event_effects` of patient events); read only. Messages given up are
read off `run_events` (`message.failed`), by an index of their own, and so are the patients a
number was texted for (`message.sent` with a `recipientKey`). A patient's consent is in
`patient_consent`.

Rows of sealed runs come as stored (`journeys_api.sealed_rows` opens them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from journeys_api.pagination import Key

Row = dict[str, Any]

_JOURNEYS = sql.SQL("SELECT journey_id, definition, created_at FROM journeys")
_RUNS = sql.SQL(
    "SELECT run_id, journey_id, patient_id, status, current_node_id, patient_context, "
    "created_at, updated_at, wake_at, error, patient_key, patient_id_sealed, error_sealed, "
    "waiting_event_type AS waiting_for, waiting_until FROM runs"
)

# One round trip: the run's row (unknown run: no rows) and its events, if any yet.
_RUN_COLUMNS = ("patient_id", "patient_key", "patient_id_sealed")
_RUN_EVENTS = sql.SQL(
    "SELECT r.patient_id, r.patient_key, r.patient_id_sealed, "
    "e.seq, e.type, e.occurred_at, e.data FROM runs r "
    "LEFT JOIN run_events e ON e.run_id = r.run_id WHERE r.run_id = %s ORDER BY e.seq"
)


# A patient event's receipts (one per patient who had an event with this id) and what each
# did, in one round trip; an unknown event id: no rows.
_EVENT = sql.SQL(
    "SELECT r.receipt_id, r.patient_key, r.event_type, r.source, r.occurred_at, r.received_at, "
    "e.effect, e.run_id, e.journey_id, e.node_id, e.occurred_at AS effect_at "
    "FROM event_receipts r LEFT JOIN event_effects e ON e.receipt_id = r.receipt_id "
    "WHERE r.event_id = %s ORDER BY r.received_at, r.receipt_id, e.occurred_at, e.seq"
)


# Messages given up, oldest first, with their run's patient columns (to open a sealed one),
# and an operator's retry of each: when it was asked for, and what became of it.
_FAILED_MESSAGES = sql.SQL(
    "SELECT e.run_id, e.seq, e.type, e.occurred_at, e.data, r.journey_id, r.patient_id, "
    "r.patient_key, r.patient_id_sealed, d.requested_at AS retried_at, "
    "t.attempt AS retry_attempt, t.delivered AS retry_delivered, t.reason AS retry_reason, "
    "t.reported_at AS retry_reported_at FROM run_events e "
    "JOIN runs r ON r.run_id = e.run_id "
    "LEFT JOIN api_delivery_replays d ON d.message_id = (e.data ->> 'messageId')::uuid "
    "LEFT JOIN delivery_retries t ON t.message_id = (e.data ->> 'messageId')::uuid "
    "WHERE e.type IN ('journeys.message.failed.v1', 'journeys.message.failed.v2')"
)
# One message's events, in seq order (its run's: a message id is derived from its run).
_MESSAGE_EVENTS = sql.SQL(
    "SELECT run_id, seq, type, occurred_at, data FROM run_events "
    "WHERE type LIKE 'journeys.message.%%' AND data ->> 'messageId' = %s ORDER BY seq"
)

# The patients texted at a number (by its recipient key), each once, most recently texted
# first, with their run's patient columns (to open a sealed one).
_SMS_RECIPIENTS = sql.SQL(
    "SELECT * FROM (SELECT DISTINCT ON (r.patient_key) r.patient_key, r.patient_id, "
    "r.patient_id_sealed, e.occurred_at FROM run_events e JOIN runs r ON r.run_id = e.run_id "
    "WHERE e.type IN ('journeys.message.sent.v1', 'journeys.message.sent.v2') "
    "AND e.data ? 'recipientKey' AND e.data ->> 'recipientKey' = %s "
    "ORDER BY r.patient_key, e.occurred_at DESC) texted ORDER BY occurred_at DESC LIMIT %s"
)

# A patient's last `limit` messages out (by when each was first decided: requested, or
# suppressed or deferred at once), every event of each (requested, retrying, sent, failed,
# ...) in seq order, with their run's patient columns
# (to open a sealed one). A message id is derived from its run: one run holds all its events.
_CONVERSATION_OUT = sql.SQL(
    "WITH wanted AS (SELECT DISTINCT ON (e.data ->> 'messageId') e.run_id, "
    "e.data ->> 'messageId' AS message_id, e.occurred_at FROM runs r "
    "JOIN run_events e ON e.run_id = r.run_id WHERE r.patient_key = %(key)s "
    "AND e.type IN ('journeys.message.requested.v1', 'journeys.message.requested.v2', "
    "'journeys.message.suppressed.v1', 'journeys.message.suppressed.v2', "
    "'journeys.message.deferred.v1', 'journeys.message.deferred.v2') "
    "ORDER BY e.data ->> 'messageId', e.seq), "
    "latest AS (SELECT * FROM wanted ORDER BY occurred_at DESC LIMIT %(limit)s) "
    "SELECT e.run_id, e.seq, e.type, e.occurred_at, e.data, r.journey_id, r.patient_id, "
    "r.patient_key, r.patient_id_sealed FROM latest l JOIN runs r ON r.run_id = l.run_id "
    "JOIN run_events e ON e.run_id = l.run_id AND e.type LIKE 'journeys.message.%%' "
    "AND e.data ->> 'messageId' = l.message_id ORDER BY e.run_id, e.seq"
)
# A patient's last `limit` replies (see projector_0011_replies.sql), newest first.
_REPLIES = sql.SQL(
    "SELECT receipt_id, event_id, occurred_at, received_at, data, data_sealed "
    "FROM event_receipts WHERE patient_key = %s AND event_type = 'message.replied' "
    "ORDER BY received_at DESC, receipt_id LIMIT %s"
)

_CONSENT = sql.SQL(
    "SELECT channel, granted, source, changed_at, consent_id FROM patient_consent "
    "WHERE patient_key = %s"
)


@dataclass(frozen=True)
class RunFilter:
    """With `patient_id`, `patient_key` must be its patient key."""

    journey_id: UUID | None = None
    patient_id: str | None = None
    patient_key: str | None = None
    status: str | None = None
    started_from: datetime | None = None  # created at or after
    started_before: datetime | None = None


class ReadModels:
    """Every query takes one pooled connection for one statement (autocommit reads)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def _all(self, query: sql.Composable, params: Any) -> list[Row]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def _one(self, query: sql.Composable, params: Any) -> Row | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None

    async def journey(self, journey_id: UUID) -> Row | None:
        return await self._one(sql.SQL("{} WHERE journey_id = %s").format(_JOURNEYS), (journey_id,))

    async def journeys(self, after: Key | None, limit: int, named: str | None = None) -> list[Row]:
        """Up to `limit` journeys after the cursor key, oldest first; with `named`, those whose
        name contains it (any case)."""
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        if named:
            escaped = named.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(sql.SQL("name ILIKE %s"))
            params.append(f"%{escaped}%")
        where, params = _after(after, "journey_id", conditions, params)
        return await self._all(
            sql.SQL("{} {} ORDER BY created_at, journey_id LIMIT %s").format(_JOURNEYS, where),
            [*params, limit],
        )

    async def run_counts(self, journey_id: UUID) -> dict[str, int]:
        """How many of the journey's runs are in each status."""
        rows = await self._all(
            sql.SQL("SELECT status, count(*) AS n FROM runs WHERE journey_id = %s GROUP BY status"),
            (journey_id,),
        )
        return {row["status"]: row["n"] for row in rows}

    async def run(self, run_id: UUID) -> Row | None:
        return await self._one(sql.SQL("{} WHERE run_id = %s").format(_RUNS), (run_id,))

    async def runs(self, filters: RunFilter, after: Key | None, limit: int) -> list[Row]:
        """Up to `limit` runs matching every given filter, after the cursor key, oldest first."""
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        for column, value in (("journey_id", filters.journey_id), ("status", filters.status)):
            if value is not None:
                conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if filters.patient_id is not None:
            # A sealed run's row holds no patient id: its patient key finds it.
            conditions.append(sql.SQL("(patient_key = %s OR patient_id = %s)"))
            params.extend([filters.patient_key, filters.patient_id])
        elif filters.patient_key is not None:
            conditions.append(sql.SQL("patient_key = %s"))
            params.append(filters.patient_key)
        if filters.started_from is not None:
            conditions.append(sql.SQL("created_at >= %s"))
            params.append(filters.started_from)
        if filters.started_before is not None:
            conditions.append(sql.SQL("created_at < %s"))
            params.append(filters.started_before)
        where, params = _after(after, "run_id", conditions, params)
        return await self._all(
            sql.SQL("{} {} ORDER BY created_at, run_id LIMIT %s").format(_RUNS, where),
            [*params, limit],
        )

    async def run_events(self, run_id: UUID) -> tuple[Row, list[Row]] | None:
        """The run's patient columns (`patient_id`, `patient_key`, `patient_id_sealed`) and
        its events in seq order; None when the run is unknown."""
        rows = await self._all(_RUN_EVENTS, (run_id,))
        if not rows:
            return None
        run = {k: rows[0][k] for k in _RUN_COLUMNS}
        events = [{k: v for k, v in row.items() if k not in _RUN_COLUMNS} for row in rows]
        return run, [e for e in events if e["seq"] is not None]

    async def failed_messages(
        self, journey_id: UUID | None, after: Key | None, limit: int
    ) -> list[Row]:
        """Up to `limit` messages given up, in the order they failed (then by message id),
        after the cursor key (its id is a message id)."""
        query: sql.Composable = _FAILED_MESSAGES
        params: list[Any] = []
        if journey_id is not None:
            query += sql.SQL(" AND r.journey_id = %s")
            params.append(journey_id)
        if after is not None:
            query += sql.SQL(" AND (e.occurred_at, e.data ->> 'messageId') > (%s, %s)")
            params += [after.created_at, str(after.id)]
        query += sql.SQL(" ORDER BY e.occurred_at, e.data ->> 'messageId' LIMIT %s")
        return await self._all(query, [*params, limit])

    async def message_events(self, message_id: UUID) -> list[Row]:
        """The events of one message (requested, retrying, sent, failed, ...), in order."""
        return await self._all(_MESSAGE_EVENTS, (str(message_id),))

    async def sms_recipients(self, recipient_key: str, limit: int) -> list[Row]:
        """Up to `limit` patients an SMS was sent to at the number `recipient_key` names, the
        most recently texted first: `patient_key`, `patient_id` (None when sealed),
        `patient_id_sealed`."""
        return await self._all(_SMS_RECIPIENTS, (recipient_key, limit))

    async def consent(self, patient_key: str) -> list[Row]:
        """The patient's channels whose consent was ever set, each as last set."""
        return await self._all(_CONSENT, (patient_key,))

    async def conversation(self, patient_key: str, limit: int) -> tuple[list[Row], list[Row]]:
        """The patient's last `limit` messages out (their events, by run and seq) and last
        `limit` replies (newest first); the caller merges them."""
        out = await self._all(_CONVERSATION_OUT, {"key": patient_key, "limit": limit})
        return out, await self._all(_REPLIES, (patient_key, limit))

    async def event(self, event_id: str) -> list[Row]:
        """The receipts of patient events with this id, each joined with its effects (one
        row per effect, or one with null effect columns), oldest receipt first."""
        return await self._all(_EVENT, (event_id,))


def _after(
    key: Key | None, id_column: str, conditions: list[sql.Composable], params: list[Any]
) -> tuple[sql.Composable, list[Any]]:
    if key is not None:
        conditions = [
            *conditions,
            sql.SQL("(created_at, {}) > (%s, %s)").format(sql.Identifier(id_column)),
        ]
        params = [*params, key.created_at, key.id]
    if not conditions:
        return sql.SQL(""), params
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions), params
