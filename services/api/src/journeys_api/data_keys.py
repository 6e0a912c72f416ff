"""Patients' data keys (`api_patient_data_keys`): made at a patient's first sealed trigger,
read and unwrapped for every answer that opens sealed data, deleted when the patient is erased.

No key is cached here: every request reads the row (unwrapping costs microseconds), so an
erasure is effective the moment its transaction commits.

A trigger seals its StartRun while it holds the patient's row `FOR SHARE`, and keeps holding
it until Kafka has acknowledged the command (`held`). An erasure deletes the row in its own
transaction before it produces the ErasePatient command (`delete`), and that delete waits for
every trigger holding the row: so every command sealed under a key is on the patient's
partition before the erasure that ends the key.

A row lock cannot cover a patient's first key, which no other transaction sees until its
trigger commits, nor a trigger that comes after the delete but before the ErasePatient is in
Kafka (its StartRun, under a new key, would reach the executor first and be erased with a key
that lives on). So `held` also takes the erasure's per-patient advisory lock, shared, and an
erasure holds it exclusively until its command is in Kafka (`journeys_api.erasures`): each
trigger is wholly before or wholly after each erasure, in the tables and on the partition.

A batch of patient events holds the keys of all its patients at once (`held_many`): one
transaction takes every patient's shared advisory lock and row lock in a few statements, so
the same guarantee holds for each of them without a round trip per patient. The locks are
taken in patient-key order, so two batches, or a batch and an erasure waiting behind another,
can never wait on each other in a circle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from journeys_api.errors import SealingFaultError, UndeliveredError
from journeys_runtime.keyring import Keyring, KeyringError
from journeys_runtime.shredding import DataKey, ShreddingError, WrappedKey

log = logging.getLogger(__name__)

_CREATE = """
INSERT INTO api_patient_data_keys (patient_key, kid, kek_id, wrapped) VALUES (%s, %s, %s, %s)
ON CONFLICT (patient_key) DO NOTHING
"""
# Shared with other triggers; the erasure of the patient takes it alone (journeys_api.erasures).
_SHARE_ERASURE_LOCK = (
    "SELECT pg_advisory_xact_lock_shared(hashtextextended('patient-erasure:' || %s, 0))"
)
_HOLD = "SELECT kid, kek_id, wrapped FROM api_patient_data_keys WHERE patient_key = %s FOR SHARE"
_MANY = (
    "SELECT patient_key, kid, kek_id, wrapped FROM api_patient_data_keys "
    "WHERE patient_key = ANY(%s)"
)
_DELETE = "DELETE FROM api_patient_data_keys WHERE patient_key = %s"
# The batch forms: the list is sorted, and a function scan takes the locks in its order. Lists
# go as one text each, split by PostgreSQL: psycopg writes an array parameter element by
# element in Python, which cost more than the statements themselves for a batch of thousands.
# Patient keys are hex, key ids and KEK ids have no comma (`shredding._ID`), wrapped keys go
# as hex.
_SHARE_ERASURE_LOCKS = (
    "SELECT pg_advisory_xact_lock_shared(hashtextextended('patient-erasure:' || k, 0)) "
    "FROM unnest(string_to_array(%s, ',')) AS k"
)
_HOLD_MANY = (
    "SELECT patient_key, kid, kek_id, wrapped FROM api_patient_data_keys "
    "WHERE patient_key = ANY(string_to_array(%s, ',')) ORDER BY patient_key FOR SHARE"
)
_CREATE_MANY = """
INSERT INTO api_patient_data_keys (patient_key, kid, kek_id, wrapped)
SELECT k, kid, kek, decode(w, 'hex')
FROM unnest(string_to_array(%s, ','), string_to_array(%s, ','), string_to_array(%s, ','),
            string_to_array(%s, ',')) AS t(k, kid, kek, w)
ON CONFLICT (patient_key) DO NOTHING
RETURNING patient_key
"""


Check = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]


@dataclass(frozen=True)
class HeldKey:
    """A patient's data key, and the same key wrapped, as a StartRun carries it."""

    patient_key: str
    key: DataKey
    wrapped: WrappedKey


class PatientDataKeys:
    """Each call takes one pooled connection; `held` keeps it for the caller's block."""

    def __init__(self, pool: AsyncConnectionPool[Any], keyring: Keyring) -> None:
        self._pool = pool
        self.keyring = keyring
        self._holding: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def held(
        self, patient_key: str, *, create: bool, check: Check | None = None
    ) -> AsyncIterator[HeldKey | None]:
        """The patient's key, held `FOR SHARE` until the block ends; with `create`, made
        first if the patient has none, else None when they have none. `check` runs first,
        once no erasure of the patient is under way, in the same transaction; what it raises
        ends the transaction with nothing made.

        The transaction commits even when the block raises: a produce that timed out may still
        have put a record sealed under a new key in Kafka, and that key must stay findable (and
        erasable). The block's error is raised after the commit. When it is `UndeliveredError`
        (the record is still on its way), the commit, and the release of the locks, wait in
        the background until Kafka has the record or the producer gave it up, while the
        error is raised at once."""
        failure: Exception | None = None
        async with AsyncExitStack() as stack:
            conn = await stack.enter_async_context(self._pool.connection())
            await stack.enter_async_context(conn.transaction())
            await conn.execute(_SHARE_ERASURE_LOCK, (patient_key,))
            if check is not None:
                await check(conn)
            if create:
                fresh = DataKey.generate()
                wrapped = _wrap(self.keyring, patient_key, fresh)
                await conn.execute(
                    _CREATE, (patient_key, wrapped.kid, wrapped.kek_id, wrapped.wrapped)
                )
            cursor = await conn.execute(_HOLD, (patient_key,))
            row = await cursor.fetchone()
            held = None if row is None else self._open(patient_key, *row)
            try:
                yield held
            except Exception as exc:
                failure = exc
            if isinstance(failure, UndeliveredError):
                self._hold_until(failure.delivery, stack.pop_all())
        if failure is not None:
            raise failure

    @asynccontextmanager
    async def held_many(self, patient_keys: Iterable[str]) -> AsyncIterator[dict[str, HeldKey]]:
        """The keys of these patients, each made first if the patient has none, all held
        `FOR SHARE` (and each patient's erasure lock shared) until the block ends: `held`
        with `create` for many patients in one transaction, three or four statements
        whatever their number. Commits, and holds on past an `UndeliveredError`, as `held`."""
        wanted = sorted(set(patient_keys))
        failure: Exception | None = None
        async with AsyncExitStack() as stack:
            conn = await stack.enter_async_context(self._pool.connection())
            await stack.enter_async_context(conn.transaction())
            await conn.execute(_SHARE_ERASURE_LOCKS, (",".join(wanted),))
            held = await self._hold_many(conn, wanted)
            missing = [k for k in wanted if k not in held]
            if missing:
                held.update(await self._create_many(conn, missing))
            assert len(held) == len(wanted)  # none can be deleted: their erasures wait
            try:
                yield held
            except Exception as exc:
                failure = exc
            if isinstance(failure, UndeliveredError):
                self._hold_until(failure.delivery, stack.pop_all())
        if failure is not None:
            raise failure

    async def _create_many(
        self, conn: psycopg.AsyncConnection[Any], patient_keys: list[str]
    ) -> dict[str, HeldKey]:
        """A new key for each of these patients, held: the rows this transaction inserts are
        its own until it commits, and their keys are in hand (no unwrapping them again).
        A request that made a patient's key first and has committed since wins: that key
        is read, held `FOR SHARE`, instead."""
        made = {k: DataKey.generate() for k in patient_keys}
        wrapped = {k: _wrap(self.keyring, k, key) for k, key in made.items()}
        cursor = await conn.execute(_CREATE_MANY, (
            ",".join(patient_keys), ",".join(wrapped[k].kid for k in patient_keys),
            ",".join(wrapped[k].kek_id for k in patient_keys),
            ",".join(wrapped[k].wrapped.hex() for k in patient_keys),
        ))  # fmt: skip
        inserted = {row[0] for row in await cursor.fetchall()}
        held = {k: HeldKey(k, made[k], wrapped[k]) for k in inserted}
        beaten = [k for k in patient_keys if k not in inserted]
        if beaten:
            held.update(await self._hold_many(conn, beaten))
        return held

    async def _hold_many(
        self, conn: psycopg.AsyncConnection[Any], patient_keys: list[str]
    ) -> dict[str, HeldKey]:
        cursor = await conn.execute(_HOLD_MANY, (",".join(patient_keys),))
        return {row[0]: self._open(*row) for row in await cursor.fetchall()}

    def _hold_until(self, delivery: asyncio.Future[Any], transaction: AsyncExitStack) -> None:
        """Keep the transaction, and so the patient's locks, until `delivery` resolves: the
        record may still reach Kafka, and an erasure let through before it would put its
        ErasePatient ahead of it. The request answers meanwhile."""
        log.warning(
            "a command sealed under a patient's data key is still on its way to Kafka; "
            "holding the key until Kafka answers"
        )

        async def hold() -> None:
            try:
                await asyncio.wait([delivery])
            finally:
                await transaction.aclose()

        task = asyncio.create_task(hold(), name="data-key-held-until-delivered")
        self._holding.add(task)
        task.add_done_callback(self._holding.discard)

    async def let_go(self) -> None:
        """Wait for the keys still held for records on their way (at shutdown, after the
        producer has stopped: each has then been delivered or given up)."""
        if self._holding:
            await asyncio.gather(*self._holding, return_exceptions=True)

    async def open_many(self, patient_keys: Iterable[str]) -> dict[str, DataKey]:
        """The keys of these patients that still exist (an erased patient's is missing)."""
        wanted = sorted(set(patient_keys))
        if not wanted:
            return {}
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_MANY, (wanted,))
            rows = await cursor.fetchall()
        return {row[0]: self._open(*row).key for row in rows}

    async def get(self, patient_key: str) -> DataKey | None:
        return (await self.open_many([patient_key])).get(patient_key)

    def _open(self, patient_key: str, kid: str, kek_id: str, wrapped: bytes) -> HeldKey:
        stored = WrappedKey(kid, kek_id, bytes(wrapped))
        try:
            key = self.keyring.unwrap(patient_key, stored)
        except (ShreddingError, KeyringError) as exc:
            raise SealingFaultError(type(exc).__name__) from None
        return HeldKey(patient_key, key, stored)


async def delete(conn: psycopg.AsyncConnection[Any], patient_key: str) -> bool:
    """Within the caller's transaction: waits for every trigger holding the row; whether the
    patient had a key."""
    cursor = await conn.execute(_DELETE, (patient_key,))
    return cursor.rowcount > 0


def _wrap(keyring: Keyring, patient_key: str, key: DataKey) -> WrappedKey:
    try:
        return keyring.wrap(patient_key, key)
    except (ShreddingError, KeyringError) as exc:
        raise SealingFaultError(type(exc).__name__) from None
