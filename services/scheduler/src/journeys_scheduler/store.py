"""The timers and offsets in PostgreSQL: a batch's changes and its offsets commit together."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from journeys_scheduler.planning import Plan
from journeys_scheduler.timers import Key, Timer

LOAD_SLICE = 1000

# Failures of PostgreSQL (down, restarting, pool exhausted) that callers retry.
PG_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, OSError)

_INSERT = """
INSERT INTO scheduler_timers
    (timer_id, run_id, patient_key, source_partition, due_at, created_at)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::int[],
                     %s::timestamptz[], %s::timestamptz[])
ON CONFLICT (timer_id) DO NOTHING
"""
# GREATEST: a replica that lost the partition mid-batch never moves the position back.
_SAVE_OFFSETS = """
INSERT INTO scheduler_offsets (topic, partition, next_offset)
SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[])
ON CONFLICT (topic, partition)
DO UPDATE SET next_offset = GREATEST(scheduler_offsets.next_offset, EXCLUDED.next_offset)
"""
# Per partition an index range scan that stops at the limit, then the earliest overall;
# keyset paging on (due_at, timer_id), so slices progress even through equal due times.
_WINDOW = """
SELECT t.timer_id, t.run_id, t.patient_key, t.source_partition, t.due_at
FROM unnest(%(partitions)s::int[]) AS p(part)
CROSS JOIN LATERAL (
    SELECT * FROM scheduler_timers s
    WHERE s.source_partition = p.part AND s.due_at >= %(after_due)s AND s.due_at < %(until)s
      AND (s.due_at, s.timer_id) > (%(after_due)s, %(after_id)s)
    ORDER BY s.due_at, s.timer_id LIMIT %(limit)s
) t
ORDER BY t.due_at, t.timer_id
LIMIT %(limit)s
"""


async def configure_session(conn: psycopg.AsyncConnection[Any]) -> None:
    """Timestamps come back in UTC, as the wire wants them."""
    await conn.execute("SET TIME ZONE 'UTC'")


class TimerStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def offsets(self, topic: str, partitions: Collection[int]) -> dict[int, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT partition, next_offset FROM scheduler_offsets "
                "WHERE topic = %s AND partition = ANY(%s::int[])",
                [topic, list(partitions)],
            )
            return {int(p): int(o) for p, o in await cur.fetchall()}

    async def apply(self, plan: Plan) -> set[UUID]:
        """Store a batch's net changes and offsets atomically; returns the deleted timer ids."""
        deleted: set[UUID] = set()
        async with self._pool.connection() as conn, conn.transaction():
            if plan.delete_timer_ids:
                cur = await conn.execute(
                    "DELETE FROM scheduler_timers WHERE timer_id = ANY(%s::uuid[]) "
                    "RETURNING timer_id",
                    [list(plan.delete_timer_ids)],
                )
                deleted.update(row[0] for row in await cur.fetchall())
            if plan.delete_run_ids:
                cur = await conn.execute(
                    "DELETE FROM scheduler_timers WHERE run_id = ANY(%s::uuid[]) "
                    "RETURNING timer_id",
                    [list(plan.delete_run_ids)],
                )
                deleted.update(row[0] for row in await cur.fetchall())
            if plan.inserts:
                rows = list(plan.inserts.values())
                await conn.execute(
                    _INSERT,
                    [[t.timer_id for t, _ in rows], [t.run_id for t, _ in rows],
                     [t.patient_key for t, _ in rows], [t.partition for t, _ in rows],
                     [t.due_at for t, _ in rows], [created for _, created in rows]],
                )  # fmt: skip
            if plan.offsets:
                positions = sorted(plan.offsets)
                await conn.execute(_SAVE_OFFSETS, [
                    [t for t, _ in positions], [p for _, p in positions],
                    [plan.offsets[tp] for tp in positions],
                ])  # fmt: skip
        return deleted

    async def load_window(
        self, partitions: Collection[int], after: Key, until: datetime, limit: int
    ) -> list[Timer]:
        """The first pending timers of `partitions` after `after` and due before `until`."""
        if not partitions:
            return []
        timers: list[Timer] = []
        async with self._pool.connection() as conn:
            cur = conn.cursor(binary=True)
            params = {"partitions": sorted(partitions), "after_due": after[0],
                      "after_id": after[1], "until": until, "limit": limit}  # fmt: skip
            await cur.execute(_WINDOW, params)
            # Converting 50,000 rows takes ~0.1 s: do it in slices so timers fire in between.
            while rows := await cur.fetchmany(LOAD_SLICE):
                timers += [
                    Timer(timer_id, run_id, key, partition, due_at.astimezone(UTC))
                    for timer_id, run_id, key, partition, due_at in rows
                ]
                await asyncio.sleep(0)
        return timers

    async def delete_timers(self, timer_ids: Sequence[UUID]) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM scheduler_timers WHERE timer_id = ANY(%s::uuid[])", [list(timer_ids)]
            )

    async def ping(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")
