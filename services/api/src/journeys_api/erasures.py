"""Erasure requests: the API's record of each one (`api_patient_erasures`), and whether the
projector has applied it (its read model `erased_patients`).

A request is stored before its ErasePatient command is produced, so an erasure whose produce
failed is still on record, and the outbox (`journeys_api.outbox`) sends it later. Erasing a
patient again while an erasure of theirs is pending returns that one (one advisory lock per
patient key makes two concurrent requests agree on it), unless its command is out and the
patient has been triggered since, under a new data key: then a new erasure follows that run.

The patient's data key goes first, in the same transaction (`journeys_api.data_keys`): its
delete waits for the triggers holding the key, so every command sealed under it is in Kafka
before this erasure's command, and once this commits nothing the API answers opens the
patient's sealed data again. The transaction, and with it the per-patient lock, lasts until
the ErasePatient command is in Kafka (or its produce failed): a trigger meanwhile waits, and
its StartRun comes after the erasure's command.

The API's own rows that could tie a caller's request to the patient change in the same
transaction: the Idempotency-Key claims of the patient's runs lose their body's hash (keyed
now, but rows from before hold a plain one, which would confirm a guessed patient context)
and stay as markers (a retry of
such a key is refused with 409, where it would otherwise start the erased run again under the
same run id), and unscoped keys from before claims were scoped go. Claims name their patient
key; claims from before they did are found through the runs of the read model `runs`, read
by patient key or id before the projector deletes them. The same run ids
are stored with the erasure and named in its command: the executor adds them to the runs it
holds, so a run it forgot (ended longer ago than its grace window) still leaves the read
models.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from journeys_api import data_keys

# Serializes erasure requests of one patient across replicas, until the transaction ends; the
# patient's triggers take it shared while they hold the patient's data key.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('patient-erasure:' || %s, 0))"
_DONE = sql.SQL("(SELECT d.erased_at FROM erased_patients d WHERE d.erasure_id = e.erasure_id)")
_NOT_YET = sql.SQL("NULL::timestamptz")
_SELECT = sql.SQL(
    "SELECT e.erasure_id, e.patient_key, e.requested_at, e.published_at IS NOT NULL AS published, "
    "e.run_ids, {done} AS done_at FROM api_patient_erasures e "
)
_INSERT = """
INSERT INTO api_patient_erasures (erasure_id, patient_key, subject, requested_at, run_ids)
VALUES (%s, %s, %s, now(), ARRAY(
    SELECT run_id FROM runs WHERE patient_key = %s OR patient_id = %s ORDER BY run_id))
RETURNING erasure_id, patient_key, requested_at, false AS published, run_ids,
    NULL::timestamptz AS done_at
"""
# The patient's runs in the read model are named by patient key or id: a sealed run's row
# has no patient id.
_FORGET_CLAIMS = [
    # A claim stays as a marker without the body's hash, so a retry of the key is refused
    # (journeys_api.idempotency) instead of starting the erased run again.
    "UPDATE api_idempotency_claims SET body_hash = NULL, erased_at = now() "
    "WHERE erased_at IS NULL AND (patient_key = %(key)s OR run_id IN ("
    "SELECT run_id FROM runs WHERE patient_key = %(key)s OR patient_id = %(id)s))",
    # Keys from before claims were scoped: their caller is unknown, so they go.
    "DELETE FROM api_idempotency_keys WHERE run_id IN ("
    "SELECT run_id FROM runs WHERE patient_key = %(key)s OR patient_id = %(id)s)",
    # The patient's rows an import rejected, kept for the clinic to fix: their cells go.
    "UPDATE api_import_errors SET cells = NULL, patient_key = NULL WHERE patient_key = %(key)s",
]
# Read again under the patient's lock: another sender may have published it meanwhile.
_PUBLISHED_AT = "SELECT published_at FROM api_patient_erasures WHERE erasure_id = %s FOR UPDATE"
_MARK_PUBLISHED = (
    "UPDATE api_patient_erasures SET published_at = now() "
    "WHERE erasure_id = %s AND published_at IS NULL"
)


@dataclass(frozen=True)
class Erasure:
    erasure_id: UUID
    patient_key: str
    requested_at: datetime
    published: bool
    run_ids: list[UUID]
    done_at: datetime | None

    @property
    def status(self) -> str:
        return "pending" if self.done_at is None else "done"


Produce = Callable[[Erasure], Awaitable[None]]


class Erasures:
    """Each call takes one pooled connection; `request` holds it for one transaction, which
    lasts as long as its `produce`."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._read_model_exists = False  # once there, the projector's table stays

    async def request(
        self, patient_key: str, patient_id: str, subject: str, produce: Produce | None = None
    ) -> Erasure:
        """The patient's pending erasure, or a new one; either way the API's own traces of the
        patient's requests, and their data key, are gone when this returns.

        With `produce`, an erasure not yet published is produced before the transaction ends
        and recorded as published; should `produce` raise, the erasure is stored unpublished
        (the outbox sends it later) and the error raised after the commit."""
        failure: Exception | None = None
        async with self._pool.connection() as conn, conn.transaction():
            erasure = await self._store(conn, patient_key, patient_id, subject)
            if produce is not None and not erasure.published:
                try:
                    await produce(erasure)
                except Exception as exc:
                    failure = exc
                else:
                    await conn.execute(_MARK_PUBLISHED, (erasure.erasure_id,))
                    erasure = dataclasses.replace(erasure, published=True)
        if failure is not None:
            raise failure
        return erasure

    async def _store(
        self, conn: psycopg.AsyncConnection[Any], patient_key: str, patient_id: str, subject: str
    ) -> Erasure:
        """Within the caller's transaction: the patient's key and claims forgotten, and their
        pending erasure or a new one."""
        await conn.execute(_LOCK, (patient_key,))
        had_key = await data_keys.delete(conn, patient_key)
        for statement in _FORGET_CLAIMS:
            await conn.execute(statement, {"key": patient_key, "id": patient_id})
        pending = await self._one(
            conn, "WHERE e.patient_key = %s AND {done} IS NULL "
            "ORDER BY e.requested_at DESC LIMIT 1", (patient_key,),
        )  # fmt: skip
        # A pending erasure whose command is out does not reach a run started since (the
        # patient came back: a new key): that run needs a command of its own, after it.
        if pending is not None and not (pending.published and had_key):
            return pending
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                _INSERT, (uuid.uuid4(), patient_key, subject, patient_key, patient_id)
            )
            row = await cur.fetchone()
        assert row is not None
        return Erasure(**row)

    async def get(self, erasure_id: UUID) -> Erasure | None:
        async with self._pool.connection() as conn:
            return await self._one(conn, "WHERE e.erasure_id = %s", (erasure_id,))

    async def publish(self, erasure: Erasure, produce: Produce) -> None:
        """Produce a stored erasure and record it as published, under the patient's lock and
        with their data key deleted again: a trigger that came between the erasure's request
        and this (its first produce failed) put its command before this one, and is erased
        with the patient. Nothing is done when the erasure was published since `erasure` was
        read (by another replica's outbox, or a repeat of the request): a trigger accepted
        after that publish is not erased by this one, and keeps its key. Raises what
        `produce` raised; the erasure then stays unpublished."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(_LOCK, (erasure.patient_key,))
            cursor = await conn.execute(_PUBLISHED_AT, (erasure.erasure_id,))
            row = await cursor.fetchone()
            if row is None or row[0] is not None:
                return  # published since it was read (or deleted by an operator): not again
            await data_keys.delete(conn, erasure.patient_key)
            await produce(erasure)
            await conn.execute(_MARK_PUBLISHED, (erasure.erasure_id,))

    async def unpublished(self, older_than_seconds: float, limit: int) -> list[Erasure]:
        """Erasures whose command the broker has not acknowledged, oldest first; only those
        requested at least `older_than_seconds` ago, which no request is still sending."""
        async with self._pool.connection() as conn:
            return await self._all(
                conn, "WHERE e.published_at IS NULL "
                "AND e.requested_at < now() - make_interval(secs => %s) "
                "ORDER BY e.requested_at LIMIT %s",
                (older_than_seconds, limit),
            )  # fmt: skip

    async def _one(
        self, conn: psycopg.AsyncConnection[Any], where: LiteralString, params: tuple[Any, ...]
    ) -> Erasure | None:
        found = await self._all(conn, where, params)
        return found[0] if found else None

    async def _all(
        self, conn: psycopg.AsyncConnection[Any], where: LiteralString, params: tuple[Any, ...]
    ) -> list[Erasure]:
        """`where` may name `{done}`: when the erasure was done, or NULL. Until the projector
        has created `erased_patients`, no erasure is done."""
        done = _DONE if await self._erased_patients_exists(conn) else _NOT_YET
        query = _SELECT.format(done=done) + sql.SQL(where).format(done=done)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return [Erasure(**row) for row in await cur.fetchall()]

    async def _erased_patients_exists(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        if not self._read_model_exists:
            cursor = await conn.execute("SELECT to_regclass('erased_patients') IS NOT NULL")
            row = await cursor.fetchone()
            self._read_model_exists = bool(row and row[0])
        return self._read_model_exists
