"""The firing loop: sleep until the earliest due timer, fire it, then have it deleted.

One task, no polling: it sleeps until the next due time or window reload, and the consumer
wakes it when a nearer timer arrives. A timer is deleted only after its FireTimer is acked,
so a crash in between fires it twice (the executor rejects the second), never zero times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from journeys_runtime.backoff import Backoff
from journeys_runtime.crash import crash_point
from journeys_runtime.logs import describe_error
from journeys_scheduler.clock import Alarm, Clock, Sleep
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.forgetting import Forgetter
from journeys_scheduler.metrics import (
    EARLY_FIRES,
    FIRE_FAILURES,
    FIRE_LATENESS,
    TIMERS_FIRED,
    TIMERS_IN_WINDOW,
    WINDOW_LOADS,
)
from journeys_scheduler.publisher import KAFKA_ERRORS
from journeys_scheduler.store import PG_ERRORS
from journeys_scheduler.timers import Key, Timer
from journeys_scheduler.window import DueWindow

log = logging.getLogger(__name__)


class FiringStore(Protocol):
    async def load_window(
        self, partitions: Collection[int], after: Key, until: datetime, limit: int
    ) -> list[Timer]: ...

    async def delete_timers(self, timer_ids: Sequence[UUID]) -> None: ...


class Publisher(Protocol):
    async def fire(self, timers: Sequence[Timer], fired_at: datetime) -> list[Timer]: ...


class Firer:
    def __init__(
        self, *, window: DueWindow, alarm: Alarm, store: FiringStore, publisher: Publisher,
        clock: Clock, sleep: Sleep, locks: Locks, health: Health, batch_size: int,
    ) -> None:  # fmt: skip
        self._window, self._alarm, self._store = window, alarm, store
        self._publisher, self._clock, self._locks = publisher, clock, locks
        self._health, self._batch_size = health, batch_size
        self._backoff = Backoff(sleep)
        self._load_backoff = Backoff(sleep)
        self._forgetter = Forgetter(store=store, window=window, health=health, sleep=sleep)
        self._loading: asyncio.Task[None] | None = None
        self._stopping = False

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self._stopping = True
        self._alarm.wake()

    async def run(self) -> None:
        forgetting = asyncio.create_task(self._forgetter.run(), name="scheduler-forget")
        try:
            await self._loop()
        finally:
            for task in (self._loading, forgetting):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await self._forgetter.flush()

    async def _loop(self) -> None:
        while not self._stopping:
            now = self._clock()
            async with self._locks.fire:
                due = self._window.pop_due(now, self._batch_size)
                failed = await self._fire(due, now) if due else []
            if failed:
                await self._backoff.wait()
                continue
            if due:
                continue
            if self._window.needs_refresh(now) and self._loading is None:
                # Loading takes a while with a full window: fire meanwhile, merge when read.
                self._loading = asyncio.create_task(self._refresh(), name="scheduler-window-load")
            TIMERS_IN_WINDOW.set(len(self._window))
            wake = self._window.next_fire() if self._loading else self._window.next_wake()
            seconds = (wake - now).total_seconds() if wake else self._window.span.total_seconds()
            await self._alarm.wait(seconds)

    async def _fire(self, due: list[Timer], now: datetime) -> list[Timer]:
        early = [t for t in due if t.due_at > now]
        if early:  # pop_due never returns these; refuse rather than fire early
            EARLY_FIRES.inc(len(early))
            log.error("timers popped before due; kept", extra={"count": len(early)})
            self._window.restore(early)
            due = [t for t in due if t.due_at <= now]
        try:
            failed = await self._publisher.fire(due, now)
        except KAFKA_ERRORS as exc:
            log.warning("FireTimer batch failed", extra={"error": describe_error(exc)})
            failed = list(due)
        if failed:
            FIRE_FAILURES.inc(len(failed))
            self._health.kafka = False
            self._window.restore(failed)  # revoke waits on the fire lock: still ours
        else:
            self._health.kafka = True
            self._backoff.reset()
        crash_point("scheduler.after_fire")
        failed_ids = {t.timer_id for t in failed}
        fired = [t for t in due if t.timer_id not in failed_ids]
        for timer in fired:
            TIMERS_FIRED.inc()
            FIRE_LATENESS.observe((now - timer.due_at).total_seconds())
            log.debug("timer fired", extra={"run_id": str(timer.run_id)})
        self._forgetter.add(t.timer_id for t in fired)
        return failed

    async def _refresh(self) -> None:
        """Reload the window (a task of its own), then wake the loop; back off on failure."""
        try:
            if await self._load():
                WINDOW_LOADS.inc()
                TIMERS_IN_WINDOW.set(len(self._window))
            else:
                await self._load_backoff.wait()
        finally:
            self._loading = None
            self._alarm.wake()

    async def _load(self) -> bool:
        async with self._locks.window:
            now = self._clock()
            until = now + self._window.span
            after, limit = self._window.begin_load()
            try:
                timers = await self._store.load_window(
                    self._window.partitions, after, until, limit
                ) if limit else []  # fmt: skip
            except BaseException as exc:
                self._window.abort_load()
                if not isinstance(exc, PG_ERRORS):
                    raise
                log.warning(
                    "could not load the timer window; retrying",
                    extra={"error": describe_error(exc)},
                )
                self._health.postgres = False
                return False
            self._window.load(now, after, until, timers, limit)
        self._health.postgres = True
        self._load_backoff.reset()
        return True
