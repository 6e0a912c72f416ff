"""Read-your-writes: after a 201/202, the caller's next GET finds what it just wrote.

The API never writes the read models; the projector does, and it records, in the same
transaction as the rows, `projector_offsets.next_offset` per (topic, partition): the offset
of the last projected record + 1. Producing tells the API the (partition, offset) of its
record, so the write is readable as soon as `next_offset > offset` for that partition.

One task per process owns one dedicated PostgreSQL connection that `LISTEN`s on
`journeys_projected` (the projector NOTIFYs in each batch's transaction). While any request
waits, the task re-reads the offsets of the waited-on topics on that same connection after
every notification, and every `poll_seconds` in case a notification was missed (a dropped
connection, a projector that does not notify). One cheap query serves every waiter of the
process, so the cost does not grow with the request rate. Offsets only move forward, so the
last value read also answers new waiters at once when it is already past their record.

The wait is bounded: on timeout the API still answers 201/202, because the record is
durable in Kafka and a retry with the same Idempotency-Key is safe; the timeout is counted
(`journeys_api_read_your_writes_timeouts_total`) and logged by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from journeys_runtime.backoff import Backoff
from journeys_runtime.logs import describe_error

log = logging.getLogger(__name__)

Position = tuple[str, int]  # (topic, partition)

_OFFSETS = "SELECT topic, partition, next_offset FROM projector_offsets WHERE topic = ANY(%s)"


class ProjectionWaiter:
    """`start()`, then `await wait(topic, partition, offset, max_wait)`; `stop()` at shutdown."""

    def __init__(
        self, database_url: str, poll_seconds: float = 0.05, connect_timeout: int = 5
    ) -> None:
        self._url = database_url
        self._poll = poll_seconds
        self._connect_timeout = connect_timeout
        self._known: dict[Position, int] = {}
        self._waiters: dict[Position, list[tuple[int, asyncio.Future[None]]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="read-your-writes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def projected(self, topic: str, partition: int, offset: int) -> bool:
        return self._known.get((topic, partition), 0) > offset

    async def wait(self, topic: str, partition: int, offset: int, max_wait: float) -> bool:
        """True once the projector is past `offset`; False if `max_wait` seconds pass first."""
        if self.projected(topic, partition, offset):
            return True
        waiter = (offset, asyncio.get_running_loop().create_future())
        waiting = self._waiters.setdefault((topic, partition), [])
        waiting.append(waiter)
        try:
            async with asyncio.timeout(max_wait):
                await waiter[1]
            return True
        except TimeoutError:
            return False
        finally:
            waiting.remove(waiter)
            if not waiting and self._waiters.get((topic, partition)) is waiting:
                del self._waiters[(topic, partition)]

    async def _run(self) -> None:
        backoff = Backoff(initial=self._poll, maximum=2.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=self._connect_timeout
                ) as conn:
                    await conn.execute("LISTEN journeys_projected")
                    backoff.reset()
                    await self._serve(conn)
            except Exception as exc:  # keep listening whatever broke; waiters only time out
                delay = backoff.next_delay()
                log.warning(
                    "read-your-writes listener lost its connection",
                    extra={"error": describe_error(exc), "retry_in_seconds": round(delay, 3)},
                )
                await asyncio.sleep(delay)

    async def _serve(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            if self._waiters:
                await self._refresh(conn)
            # Waking every poll interval is nearly free when idle (a socket wait), and it
            # bounds how long a waiter can miss a notification by.
            async for _ in conn.notifies(timeout=self._poll, stop_after=1):
                pass

    async def _refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        topics = sorted({topic for topic, _ in self._waiters})
        cursor = await conn.execute(_OFFSETS, (topics,))
        for topic, partition, next_offset in await cursor.fetchall():
            position = (topic, partition)
            self._known[position] = max(next_offset, self._known.get(position, 0))
        for position, waiting in self._waiters.items():
            reached = self._known.get(position, 0)
            for offset, future in waiting:
                if reached > offset and not future.done():
                    future.set_result(None)
