"""The imports' ledger in PostgreSQL (`api_imports`, `api_import_chunks`, `api_import_errors`,
`api_import_event_ids`): an upload stored chunk by chunk, claimed by one importer at a time,
its figures, errors and event ids checkpointed as it goes.

A claim is a lease: the importer holding it beats its heart with every checkpoint, and an
import whose importer has not done so for the lease's length is claimed again by another,
which reads the file from the start and skips the rows already counted (their events were
sent before the checkpoint; the rows after it may be sent twice, and the executor takes a
patient's event id once).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from journeys_api.imports.rows import Duplicate, RowError

UPLOADING, QUEUED, PROCESSING, COMPLETED, FAILED = (
    "uploading", "queued", "processing", "completed", "failed",
)  # fmt: skip
FIRST_ERRORS = 100

Row = dict[str, Any]


def key_hash(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


@dataclass(frozen=True)
class Begun:
    import_id: UUID
    existing: bool
    """An import of this caller's Idempotency-Key was begun before: nothing to upload."""


async def begin(
    pool: AsyncConnectionPool[Any], subject: str, file_name: str | None,
    idempotency_key: str | None, notify: str | None = None,
) -> Begun:  # fmt: skip
    import_id = uuid.uuid4()
    hashed = key_hash(idempotency_key) if idempotency_key is not None else None
    async with pool.connection() as conn:
        if hashed is not None:  # a failed upload's key is free again: the retry is a new import
            await conn.execute(
                "UPDATE api_imports SET idempotency_key = NULL WHERE subject = %s "
                "AND idempotency_key = %s AND status = %s",
                (subject, hashed, FAILED),
            )
        cursor = await conn.execute(
            "INSERT INTO api_imports (import_id, subject, status, file_name, idempotency_key, "
            "notify) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING import_id",
            (import_id, subject, UPLOADING, file_name, hashed, notify),
        )  # fmt: skip
        if await cursor.fetchone() is not None:
            return Begun(import_id, existing=False)
        cursor = await conn.execute(
            "SELECT import_id FROM api_imports WHERE subject = %s AND idempotency_key = %s",
            (subject, hashed),
        )
        row = await cursor.fetchone()
    assert row is not None  # the conflict was on this caller's key
    return Begun(row[0], existing=True)


async def add_chunk(pool: AsyncConnectionPool[Any], import_id: UUID, seq: int, data: bytes) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO api_import_chunks (import_id, seq, data) VALUES (%s, %s, %s)",
            (import_id, seq, data),
        )


async def uploaded(
    pool: AsyncConnectionPool[Any], import_id: UUID, sha256: str, size: int, lines: int,
    chunks: int, *, columns: list[str], file_name: str | None = None,
) -> UUID:  # fmt: skip
    """Queue the import (named `file_name` unless it has a name); or, when an import not
    failed already has these bytes, drop this one and answer that one's id."""
    async with pool.connection() as conn:
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE api_imports SET status = %s, content_sha256 = %s, bytes = %s, "
                    "lines = %s, chunks = %s, columns = %s, file_name = coalesce(file_name, %s) "
                    "WHERE import_id = %s",
                    (QUEUED, sha256, size, lines, chunks, columns, file_name, import_id),
                )
                await conn.execute("NOTIFY journeys_imports")
            return import_id
        except psycopg.errors.UniqueViolation:
            pass
        cursor = await conn.execute(
            "SELECT import_id FROM api_imports WHERE content_sha256 = %s AND status <> %s",
            (sha256, FAILED),
        )
        row = await cursor.fetchone()
        await conn.execute("DELETE FROM api_imports WHERE import_id = %s", (import_id,))
    if row is None:  # the other upload failed meanwhile: queue this one after all
        return await uploaded(pool, import_id, sha256, size, lines, chunks, columns=columns,
                              file_name=file_name)  # fmt: skip
    return UUID(str(row[0]))


async def forget(pool: AsyncConnectionPool[Any], import_id: UUID) -> None:
    """An upload refused as a whole: nothing of it stays."""
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM api_imports WHERE import_id = %s", (import_id,))


async def fail_upload(pool: AsyncConnectionPool[Any], import_id: UUID, reason: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE api_imports SET status = %s, reason = %s, finished_at = now() "
            "WHERE import_id = %s",
            (FAILED, reason, import_id),
        )
        await conn.execute("DELETE FROM api_import_chunks WHERE import_id = %s", (import_id,))


async def claim(pool: AsyncConnectionPool[Any], worker: str, lease_seconds: float) -> Row | None:
    """The oldest import waiting for an importer (queued, or processing under a lease that ran
    out), now this worker's."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE api_imports SET status = %(processing)s, worker = %(worker)s, "
            "heartbeat_at = now(), started_at = coalesce(started_at, now()) "
            "WHERE import_id = (SELECT import_id FROM api_imports "
            "  WHERE status = %(queued)s OR (status = %(processing)s "
            "    AND heartbeat_at < now() - make_interval(secs => %(lease)s)) "
            "  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING import_id, file_name, rows_read, accepted, rejected, duplicates, revenue, "
            "started_at, chat_delivered, chat_failed_attempts, chat_given_up, notify",
            {"processing": PROCESSING, "queued": QUEUED, "worker": worker,
             "lease": lease_seconds},
        )  # fmt: skip
        return await cur.fetchone()


async def list_webhooks(pool: AsyncConnectionPool[Any], names: Iterable[str]) -> None:
    """The names of the importer's webhooks, for the API to check an upload's `notify`
    against (the URLs stay with the importer)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM api_import_webhook_names")
        for name in sorted(names):
            await conn.execute("INSERT INTO api_import_webhook_names (name) VALUES (%s)", (name,))


async def webhook_listed(pool: AsyncConnectionPool[Any], name: str) -> bool:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM api_import_webhook_names WHERE name = %s", (name,)
        )
        return await cursor.fetchone() is not None


def id_digest(event_id: str) -> str:
    """What `api_import_event_ids` keeps of an event id (hex)."""
    return hashlib.blake2b(event_id.encode(), digest_size=16).hexdigest()


async def first_rows(
    pool: AsyncConnectionPool[Any], import_id: UUID, digests: Iterable[str]
) -> dict[str, int]:
    """The row of the import that had each of these event ids (by `id_digest`) first, for
    those an earlier batch had."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT encode(digest, 'hex'), first_row FROM api_import_event_ids "
            "WHERE import_id = %s AND digest IN "
            "(SELECT decode(d, 'hex') FROM unnest(string_to_array(%s, ',')) AS d)",
            (import_id, ",".join(digests)),
        )
        return {digest: int(row) for digest, row in await cursor.fetchall()}


async def checkpoint(
    pool: AsyncConnectionPool[Any], import_id: UUID, worker: str, counts: dict[str, Any],
    problems: Iterable[RowError | Duplicate], ids: Iterable[tuple[str, int]] = (),
    patient_key: Callable[[str], str] | None = None,
) -> bool:  # fmt: skip
    """Record the figures so far, the rows not imported and the event ids of the batch (by
    `id_digest`, with their rows); False when another importer holds the import now (this
    one must stop)."""
    errors = [_error_row(import_id, p, patient_key) for p in problems]
    digests, rows = zip(*ids, strict=True) if ids else ((), ())
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "UPDATE api_imports SET rows_read = %(rows)s, accepted = %(accepted)s, "
            "rejected = %(rejected)s, duplicates = %(duplicates)s, revenue = %(revenue)s, "
            "chat_delivered = %(chat_delivered)s, "
            "chat_failed_attempts = %(chat_failed_attempts)s, chat_given_up = %(chat_given_up)s, "
            "chat_last_error = coalesce(%(chat_last_error)s, chat_last_error), "
            "heartbeat_at = now() "
            "WHERE import_id = %(id)s AND worker = %(worker)s AND status = 'processing'",
            {**counts, "id": import_id, "worker": worker},
        )
        if cursor.rowcount != 1:
            return False
        if digests:
            await conn.execute(
                "INSERT INTO api_import_event_ids (import_id, digest, first_row) "
                "SELECT %s, decode(d, 'hex'), r::bigint FROM unnest(string_to_array(%s, ','), "
                "string_to_array(%s, ',')) AS t(d, r) ON CONFLICT DO NOTHING",
                (import_id, ",".join(digests), ",".join(map(str, rows))),
            )
        if errors:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO api_import_errors (import_id, row_number, line, column_name, "
                    "reason, duplicate, cells, patient_key) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    errors,
                )
    return True


async def record_chat(
    pool: AsyncConnectionPool[Any], import_id: UUID, worker: str, chat: dict[str, Any]
) -> None:
    """The chat's figures once its last message is sent or given up (the import has ended)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE api_imports SET chat_delivered = %(chat_delivered)s, "
            "chat_failed_attempts = %(chat_failed_attempts)s, chat_given_up = %(chat_given_up)s, "
            "chat_last_error = coalesce(%(chat_last_error)s, chat_last_error) "
            "WHERE import_id = %(id)s AND worker = %(worker)s",
            {**chat, "id": import_id, "worker": worker},
        )


def _error_row(
    import_id: UUID, problem: RowError | Duplicate, patient_key: Callable[[str], str] | None
) -> tuple[Any, ...]:
    if isinstance(problem, Duplicate):
        return (import_id, problem.row, problem.line or None, "event_id",
                f"repeats the event id of row {problem.first}: not imported twice", True, None,
                None)  # fmt: skip
    cells = None if problem.cells is None else Jsonb([_text(c) for c in problem.cells])
    key = patient_key(problem.patient_id) if patient_key and problem.patient_id else None
    return (import_id, problem.row, problem.line, problem.column, problem.reason, False, cells,
            key)  # fmt: skip


def _text(cell: str) -> str:
    """A cell as JSON can hold it: bytes that were not UTF-8 (kept as surrogates by the
    reader) become U+FFFD, which the clinic sees and fixes."""
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


async def columns_of(pool: AsyncConnectionPool[Any], import_id: UUID) -> list[str] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT columns FROM api_imports WHERE import_id = %s", (import_id,)
        )
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def forget_cells(pool: AsyncConnectionPool[Any], days: int) -> int:
    """Drop the cells of rejected rows of imports that ended `days` ago; how many rows."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE api_import_errors e SET cells = NULL, patient_key = NULL FROM api_imports i "
            "WHERE e.import_id = i.import_id AND e.cells IS NOT NULL "
            "AND i.finished_at < now() - make_interval(days => %s)",
            (days,),
        )
        return cursor.rowcount


async def finish(
    pool: AsyncConnectionPool[Any], import_id: UUID, worker: str, status: str,
    reason: str | None = None,
) -> None:  # fmt: skip
    """End the import; its bytes go."""
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "UPDATE api_imports SET status = %s, reason = %s, finished_at = now() "
            "WHERE import_id = %s AND worker = %s AND status = %s",
            (status, reason, import_id, worker, PROCESSING),
        )
        if cursor.rowcount == 1:
            await conn.execute("DELETE FROM api_import_chunks WHERE import_id = %s", (import_id,))
            await conn.execute(
                "DELETE FROM api_import_event_ids WHERE import_id = %s", (import_id,)
            )


async def status_of(pool: AsyncConnectionPool[Any], import_id: UUID) -> str | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status FROM api_imports WHERE import_id = %s", (import_id,)
        )
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def get(pool: AsyncConnectionPool[Any], import_id: UUID) -> tuple[Row, list[Row]] | None:
    """The import and its first errors, by row."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM api_imports WHERE import_id = %s", (import_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    return row, await errors(pool, import_id, 0, FIRST_ERRORS)


def revenue_of(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


_LISTINGS = {
    False: "SELECT * FROM api_imports WHERE (created_at, import_id) > (%s, %s) "
    "ORDER BY created_at, import_id LIMIT %s",
    True: "SELECT * FROM api_imports WHERE (created_at, import_id) < (%s, %s) "
    "ORDER BY created_at DESC, import_id DESC LIMIT %s",
}


async def list_imports(
    pool: AsyncConnectionPool[Any],
    after: tuple[Any, UUID] | None,
    limit: int,
    newest_first: bool = False,
) -> list[Row]:
    """Up to `limit` imports past the cursor's (created_at, import_id), oldest first, or
    newest first (a history: then the cursor is the last one shown, and those before it)."""
    edge = (datetime.max.replace(tzinfo=UTC), UUID(int=2**128 - 1)) if newest_first \
        else (datetime.min.replace(tzinfo=UTC), UUID(int=0))  # fmt: skip
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LISTINGS[newest_first], (*(after or edge), limit))
        return await cur.fetchall()


async def errors(
    pool: AsyncConnectionPool[Any], import_id: UUID, after_row: int, limit: int | None
) -> list[Row]:
    """The rows not imported after row `after_row`, by row; all of them without `limit`."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT row_number, line, column_name, reason, duplicate, cells FROM api_import_errors "
            "WHERE import_id = %s AND row_number > %s ORDER BY row_number LIMIT %s",
            (import_id, after_row, limit),
        )
        return await cur.fetchall()
