"""The near-future window of timers held in memory: a heap ordered by due time."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from journeys_scheduler.timers import Key, Timer

NEVER = datetime.min.replace(tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamp resolution
START: Key = (NEVER, UUID(int=0))
EVICT_TO = 0.9  # after overflowing, keep 90% so the next overflow is many inserts away


class DueWindow:
    """Every pending timer of the assigned partitions up to `read_to` is held here.

    Loads read PostgreSQL in slices of (due_at, timer_id) order: after `read_to`, before
    `now + span`, at most as many rows as fit under `max_entries`. A slice cut by that limit
    (`truncated`: more are due before `now + span`) moves `read_to` to its last row only;
    the next slice is read once half the window has fired, or when the clock nears the
    horizon (`refresh_at`). Nothing due after the horizon fires, so a timer still unread
    never fires after one due later.

    After an assignment, firing may be held (`held_until`) while the consumer catches up
    with the events written meanwhile, so timers that came due while no one owned the
    partition fire in due order whether they were stored already or not.

    Loads run while timers keep firing: a timer popped but not yet deleted from PostgreSQL
    (`unconfirmed`), or popped while a load was under way, is never taken back from a load.
    """

    def __init__(self, span: timedelta, max_entries: int) -> None:
        self.span, self.max_entries = span, max_entries
        self.partitions: frozenset[int] = frozenset()
        self.read_to, self.refresh_at = START, NEVER
        self.truncated = False
        self.held_until: datetime | None = None
        self.unconfirmed: set[UUID] = set()
        self._loading_excluded: set[UUID] | None = None
        self._heap: list[tuple[datetime, UUID]] = []
        self._live: dict[UUID, Timer] = {}

    @property
    def horizon(self) -> datetime:
        return self.read_to[0]

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, timer_id: object) -> bool:
        return timer_id in self._live

    def assign(self, partitions: Iterable[int], hold_until: datetime | None = None) -> None:
        """Own exactly these partitions from now on; the window must be loaded again."""
        self.partitions, self.held_until = frozenset(partitions), hold_until
        self._live.clear()
        self._heap.clear()
        self.read_to, self.refresh_at = START, NEVER
        self.truncated = False

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget the timers of partitions another replica may own from now on."""
        gone = frozenset(partitions)
        self.partitions -= gone
        self._live = {k: t for k, t in self._live.items() if t.partition not in gone}
        self._rebuild()

    def release(self) -> None:
        """The consumer caught up: fire without waiting for `held_until`."""
        self.held_until = None

    def needs_refresh(self, now: datetime) -> bool:
        if len(self._live) >= self.max_entries:
            return False  # nothing would fit: fire first
        drained = self.truncated and len(self._live) <= self.max_entries // 2
        return now >= self.refresh_at or drained

    def begin_load(self) -> tuple[Key, int]:
        """A load's snapshot starts now: read after which key, and how many rows fit."""
        self._loading_excluded = set(self.unconfirmed)
        return self.read_to, max(self.max_entries - len(self._live), 0)

    def load(
        self, now: datetime, after: Key, until: datetime, timers: list[Timer], limit: int
    ) -> None:
        """Merge PostgreSQL's pending timers after `after` and due before `until`, in
        (due_at, timer_id) order, at most `limit`, read since `begin_load`."""
        excluded = self._loading_excluded or set()
        self._loading_excluded = None
        for t in timers:
            if t.partition in self.partitions and t.timer_id not in excluded:
                self._live.setdefault(t.timer_id, t)
        self._rebuild()
        if timers and len(timers) >= limit:
            self.read_to = (timers[-1].due_at, timers[-1].timer_id)
            self.refresh_at, self.truncated = self.horizon, True
        elif len(timers) < limit:
            # Everything due before `until` is read: up to its last possible key.
            self.read_to = (until - MICROSECOND, UUID(int=(1 << 128) - 1))
            self.refresh_at, self.truncated = now + self.span / 2, False
        if len(self._live) > self.max_entries:
            self._evict()

    def abort_load(self) -> None:
        self._loading_excluded = None

    def offer(self, timer: Timer) -> bool:
        """Hold a newly stored timer if it falls in the window; True if it is now the earliest."""
        if timer.partition not in self.partitions or (timer.due_at, timer.timer_id) > self.read_to:
            return False
        return timer.timer_id not in self.unconfirmed and self._push(timer)  # fired already

    def restore(self, timers: Iterable[Timer]) -> None:
        """Put back timers whose fire failed; they stay pending and fire on the next try."""
        for timer in timers:
            self.unconfirmed.discard(timer.timer_id)
            if timer.partition in self.partitions:
                self._push(timer)

    def confirm(self, timer_ids: Iterable[UUID]) -> None:
        """These fired timers are deleted from PostgreSQL: no load can return them."""
        self.unconfirmed.difference_update(timer_ids)

    def remove(self, timer_ids: Iterable[UUID]) -> None:
        for timer_id in timer_ids:
            self._live.pop(timer_id, None)
        if len(self._heap) > 2 * len(self._live) + 64:
            self._rebuild()  # cancelled entries linger in the heap until popped; bound them

    def pop_due(self, now: datetime, limit: int) -> list[Timer]:
        """The earliest timers with `due_at <= now` and not past the horizon, in due order."""
        if self.held_until is not None and now < self.held_until:
            return []
        until = min(now, self.horizon)
        due: list[Timer] = []
        while self._heap and len(due) < limit and self._heap[0][0] <= until:
            due_at, timer_id = heapq.heappop(self._heap)
            timer = self._live.get(timer_id)
            if timer is not None and timer.due_at == due_at:
                del self._live[timer_id]
                due.append(timer)
                self.unconfirmed.add(timer_id)
                if self._loading_excluded is not None:
                    self._loading_excluded.add(timer_id)
        return due

    def earliest(self) -> datetime | None:
        while self._heap:
            due_at, timer_id = self._heap[0]
            timer = self._live.get(timer_id)
            if timer is not None and timer.due_at == due_at:
                return due_at
            heapq.heappop(self._heap)  # removed or fired: drop the stale entry
        return None

    def next_fire(self) -> datetime | None:
        """When the earliest timer may fire (None: nothing held), whatever the reloads."""
        earliest = self.earliest()
        if earliest is None or self.held_until is None:
            return earliest
        return max(earliest, self.held_until)

    def next_wake(self) -> datetime:
        """When the firing loop has work next: the next fire or the next reload."""
        fire = self.next_fire()
        if fire is None:
            return self.refresh_at
        return fire if len(self._live) >= self.max_entries else min(fire, self.refresh_at)

    def _push(self, timer: Timer) -> bool:
        if timer.timer_id in self._live:
            return False
        before = self.earliest()
        self._live[timer.timer_id] = timer
        heapq.heappush(self._heap, (timer.due_at, timer.timer_id))
        if len(self._live) > self.max_entries:
            self._evict()
        return timer.timer_id in self._live and (before is None or timer.due_at < before)

    def _evict(self) -> None:
        """Keep the earliest entries only; `read_to` moves back to the last one kept."""
        ordered = sorted(self._live.values(), key=lambda t: (t.due_at, t.timer_id))
        kept = ordered[: max(1, int(self.max_entries * EVICT_TO))]
        self.read_to = (kept[-1].due_at, kept[-1].timer_id)
        self.refresh_at = min(self.refresh_at, self.horizon)
        self.truncated = True
        self._live = {t.timer_id: t for t in kept}
        self._rebuild()

    def _rebuild(self) -> None:
        self._heap = [(t.due_at, t.timer_id) for t in self._live.values()]
        heapq.heapify(self._heap)
