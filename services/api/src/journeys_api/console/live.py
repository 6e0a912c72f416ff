"""Live timelines: one watcher per run watched in this API process, however many pages show
it. The watcher asks PostgreSQL for the run's status and its last event's seq (one indexed
row) every poll, reads the events themselves only when there are new ones, and hands them to
every page following the run. A run nobody follows any more has no watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from starlette.exceptions import HTTPException

from journeys_api.resources import Resources
from journeys_api.routers import runs
from journeys_api.views import TERMINAL_STATUSES, RunEvent

log = logging.getLogger(__name__)

_PROGRESS = (
    "SELECT r.status, r.current_node_id, "
    "(SELECT max(seq) FROM run_events e WHERE e.run_id = r.run_id) AS last_seq "
    "FROM runs r WHERE r.run_id = %s"
)


@dataclass(frozen=True)
class Update:
    """New events (in seq order), the run's status and node, and whether it is over: ended
    and every event out, or gone (erased)."""

    events: list[RunEvent]
    status: str | None
    node: str | None
    over: bool


@dataclass
class _Watcher:
    followers: set[asyncio.Queue[Update]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class Timelines:
    def __init__(self, resources: Resources, poll_seconds: float) -> None:
        self._resources, self._poll = resources, poll_seconds
        self._watchers: dict[UUID, _Watcher] = {}

    @property
    def watched(self) -> int:
        return len(self._watchers)

    @contextlib.asynccontextmanager
    async def follow(self, run_id: UUID) -> AsyncIterator[asyncio.Queue[Update]]:
        watcher = self._watchers.get(run_id)
        if watcher is None or (watcher.task is not None and watcher.task.done()):
            watcher = self._watchers[run_id] = _Watcher()
            watcher.task = asyncio.create_task(self._watch(run_id, watcher))
        queue: asyncio.Queue[Update] = asyncio.Queue()
        watcher.followers.add(queue)
        try:
            yield queue
        finally:
            watcher.followers.discard(queue)
            if not watcher.followers and self._watchers.get(run_id) is watcher:
                del self._watchers[run_id]
                if watcher.task is not None:
                    watcher.task.cancel()

    async def _progress(self, run_id: UUID) -> tuple[Any, ...] | None:
        async with self._resources.pool.connection() as conn:
            return await (await conn.execute(_PROGRESS, (run_id,))).fetchone()

    async def _watch(self, run_id: UUID, watcher: _Watcher) -> None:
        seen, status, node = -1, None, None
        while True:
            try:
                progress = await self._progress(run_id)
                update = None
                if progress is None:
                    update = Update([], None, None, over=True)
                else:
                    now_status, now_node, last = progress
                    fresh: list[RunEvent] = []
                    if last is not None and last > seen:
                        timeline = await runs.get_run_events(run_id, self._resources)
                        fresh = [e for e in timeline.events if e.seq > seen]
                        seen = max([seen, *(e.seq for e in fresh)])
                    over = now_status in TERMINAL_STATUSES and (last is None or seen >= last)
                    if fresh or (now_status, now_node) != (status, node) or over:
                        status, node = now_status, now_node
                        update = Update(fresh, status, node, over)
            except HTTPException:  # the patient was erased meanwhile
                update = Update([], None, None, over=True)
            except Exception as exc:  # PostgreSQL away: the pages keep what they have
                log.warning("live timeline not refreshed", extra={"error": type(exc).__name__})
            if update is not None:
                for queue in list(watcher.followers):
                    queue.put_nowait(update)
                if update.over:
                    return
            await asyncio.sleep(self._poll)
