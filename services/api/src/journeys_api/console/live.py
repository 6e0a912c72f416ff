"""Live timelines: one poller in each API process for every run its pages follow.

Every poll, one statement reads the status and the last event's seq of all the runs followed
(whether 1 or 500 pages are open); the events themselves are read only for a run that has
new ones, and handed to every page following it. Pages on the same run share its watcher; a
run nobody follows any more is dropped, and with no run followed the poller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

from starlette.exceptions import HTTPException

from journeys_api.resources import Resources
from journeys_api.routers import runs
from journeys_api.views import TERMINAL_STATUSES, RunEvent

log = logging.getLogger(__name__)

_PROGRESS = (
    "SELECT r.run_id, r.status, r.current_node_id, "
    "(SELECT max(seq) FROM run_events e WHERE e.run_id = r.run_id) AS last_seq "
    "FROM runs r WHERE r.run_id = ANY(%s)"
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
    seen: int = -1
    status: str | None = None
    node: str | None = None


class Timelines:
    def __init__(self, resources: Resources, poll_seconds: float) -> None:
        self._resources, self._poll = resources, poll_seconds
        self._watchers: dict[UUID, _Watcher] = {}
        self._poller: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        return len(self._watchers)

    @contextlib.asynccontextmanager
    async def follow(self, run_id: UUID) -> AsyncIterator[asyncio.Queue[Update]]:
        watcher = self._watchers.setdefault(run_id, _Watcher())
        queue: asyncio.Queue[Update] = asyncio.Queue()
        watcher.followers.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._run())
        try:
            yield queue
        finally:
            watcher.followers.discard(queue)
            if not watcher.followers and self._watchers.get(run_id) is watcher:
                del self._watchers[run_id]

    async def _run(self) -> None:
        while self._watchers:
            try:
                await self._once()
            except Exception as exc:  # PostgreSQL away: the pages keep what they have
                log.warning("live timelines not refreshed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._poll)

    async def _once(self) -> None:
        followed = dict(self._watchers)
        async with self._resources.pool.connection() as conn:
            rows = await (await conn.execute(_PROGRESS, (list(followed),))).fetchall()
        progress = {row[0]: row[1:] for row in rows}
        for run_id, watcher in followed.items():
            update = await self._update(run_id, watcher, progress.get(run_id))
            if update is None:
                continue
            for queue in list(watcher.followers):
                queue.put_nowait(update)
            if update.over and self._watchers.get(run_id) is watcher:
                del self._watchers[run_id]  # a page that comes later starts a new watcher

    async def _update(
        self, run_id: UUID, watcher: _Watcher, progress: tuple[str, str | None, int | None] | None
    ) -> Update | None:
        if progress is None:
            return Update([], None, None, over=True)
        status, node, last = progress
        fresh: list[RunEvent] = []
        if last is not None and last > watcher.seen:
            try:
                timeline = await runs.get_run_events(run_id, self._resources)
            except HTTPException:  # the patient was erased meanwhile
                return Update([], None, None, over=True)
            fresh = [e for e in timeline.events if e.seq > watcher.seen]
            watcher.seen = max([watcher.seen, *(e.seq for e in fresh)])
        over = status in TERMINAL_STATUSES and (last is None or watcher.seen >= last)
        if not fresh and (status, node) == (watcher.status, watcher.node) and not over:
            return None
        watcher.status, watcher.node = status, node
        return Update(fresh, status, node, over)
