"""A clock the test moves by hand, and in-memory stand-ins for PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from journeys_scheduler.timers import Key, Timer

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def timer(due_in: float, partition: int = 0, run_id: uuid.UUID | None = None) -> Timer:
    return Timer(uuid.uuid4(), run_id or uuid.uuid4(), "key", partition, at(due_in))


async def settle() -> None:
    """Let every ready task run until none has anything left to do."""
    for _ in range(50):
        await asyncio.sleep(0)


class FakeClock:
    """`now()` moves only by `advance`; `sleep` returns when the clock passes its deadline."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self.current + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        self._wake_due()
        await future

    async def advance(self, seconds: float) -> None:
        await settle()
        self.current += timedelta(seconds=seconds)
        self._wake_due()
        await settle()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.current:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


def read_slice(
    timers: Iterable[Timer], partitions: Collection[int], after: Key, until: datetime, limit: int
) -> list[Timer]:
    """What the window query returns."""
    rows = [t for t in timers if t.partition in partitions
            and (t.due_at, t.timer_id) > after and t.due_at < until]  # fmt: skip
    return sorted(rows, key=lambda t: (t.due_at, t.timer_id))[:limit]


class FakeStore:
    """The timers table; `down` makes every call fail like a lost connection."""

    def __init__(self, timers: Sequence[Timer] = ()) -> None:
        self.timers = {t.timer_id: t for t in timers}
        self.down = False
        self.loads = 0
        self.load_gate: asyncio.Event | None = None  # when set up, loads wait for it
        self.delete_gate: asyncio.Event | None = None  # when set up, deletes wait for it

    def _check(self) -> None:
        if self.down:
            raise psycopg.OperationalError("connection refused")

    async def load_window(
        self, partitions: Collection[int], after: Key, until: datetime, limit: int
    ) -> list[Timer]:
        self._check()
        self.loads += 1
        snapshot = read_slice(self.timers.values(), partitions, after, until, limit)
        if self.load_gate is not None:
            await self.load_gate.wait()  # the snapshot is taken; the answer arrives later
        return snapshot

    async def delete_timers(self, timer_ids: Sequence[uuid.UUID]) -> None:
        self._check()
        if self.delete_gate is not None:
            await self.delete_gate.wait()
        for timer_id in timer_ids:
            self.timers.pop(timer_id, None)


class FakePublisher:
    """Records every acknowledged fire; `fail_next` refuses that many whole batches."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fired: list[tuple[Timer, datetime]] = []
        self.fail_next = 0

    async def fire(self, timers: Sequence[Timer], fired_at: datetime) -> list[Timer]:
        if self.fail_next:
            self.fail_next -= 1
            return list(timers)
        self.fired += [(t, fired_at) for t in timers]
        return []

    @property
    def fired_ids(self) -> list[uuid.UUID]:
        return [t.timer_id for t, _ in self.fired]
