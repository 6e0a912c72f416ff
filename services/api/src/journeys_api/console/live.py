"""Live pages: one poller in each API process for everything its pages follow.

Timelines: every poll, one statement reads the status and the last event's seq of all the
runs followed (whether 1 or 500 pages are open); the events themselves are read only for a
run that has new ones, and handed to every page following it. Conversations: likewise, one
statement counts the messages out and replies in of every patient followed; a patient's
conversation is read again only when a count moved. Pages on the same run (or patient) share
its watcher; one nobody follows any more is dropped, and with nothing followed the poller
stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from starlette.exceptions import HTTPException

from journeys_api import conversations
from journeys_api.resources import Resources
from journeys_api.routers import runs
from journeys_api.views import TERMINAL_STATUSES, ConversationView, RunEvent

log = logging.getLogger(__name__)

_PROGRESS = (
    "SELECT r.run_id, r.status, r.current_node_id, "
    "(SELECT max(seq) FROM run_events e WHERE e.run_id = r.run_id) AS last_seq "
    "FROM runs r WHERE r.run_id = ANY(%s)"
)
_COUNTS = (
    "SELECT k.key, "
    "(SELECT count(*) FROM event_receipts x "
    " WHERE x.patient_key = k.key AND x.event_type = 'message.replied'), "
    "(SELECT count(*) FROM runs r JOIN run_events e ON e.run_id = r.run_id "
    " WHERE r.patient_key = k.key AND e.type LIKE 'journeys.message.%%') "
    "FROM unnest(%s::text[]) AS k(key)"
)

K = TypeVar("K", bound=Hashable)
U = TypeVar("U")


@dataclass(frozen=True)
class Update:
    """New events (in seq order), the run's status and node, and whether it is over: ended
    and every event out, or gone (erased)."""

    events: list[RunEvent]
    status: str | None
    node: str | None
    over: bool


@dataclass
class _Watcher(Generic[U]):
    followers: set[asyncio.Queue[U]] = field(default_factory=set)
    seen: Any = None
    """What the followers were last given: a run's last seq, status and node; a patient's
    counts."""


class _Poller(Generic[K, U]):
    """Watchers by key, and the one task that polls for them all (`_once`)."""

    def __init__(self, resources: Resources, poll_seconds: float) -> None:
        self._resources, self._poll = resources, poll_seconds
        self._watchers: dict[K, _Watcher[U]] = {}
        self._poller: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        return len(self._watchers)

    @contextlib.asynccontextmanager
    async def follow(self, key: K) -> AsyncIterator[asyncio.Queue[U]]:
        watcher = self._watchers.setdefault(key, _Watcher())
        queue: asyncio.Queue[U] = asyncio.Queue()
        watcher.followers.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._run())
        try:
            yield queue
        finally:
            watcher.followers.discard(queue)
            if not watcher.followers and self._watchers.get(key) is watcher:
                del self._watchers[key]

    async def _run(self) -> None:
        while self._watchers:
            try:
                await self._once(dict(self._watchers))
            except Exception as exc:  # PostgreSQL away: the pages keep what they have
                log.warning("live pages not refreshed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._poll)

    async def _once(self, followed: dict[K, _Watcher[U]]) -> None:
        raise NotImplementedError

    def _hand(self, key: K, watcher: _Watcher[U], update: U, *, over: bool = False) -> None:
        for queue in list(watcher.followers):
            queue.put_nowait(update)
        if over and self._watchers.get(key) is watcher:
            del self._watchers[key]  # a page that comes later starts a new watcher


class Timelines(_Poller[UUID, Update]):
    async def _once(self, followed: dict[UUID, _Watcher[Update]]) -> None:
        async with self._resources.pool.connection() as conn:
            rows = await (await conn.execute(_PROGRESS, (list(followed),))).fetchall()
        progress = {row[0]: row[1:] for row in rows}
        for run_id, watcher in followed.items():
            update = await self._update(run_id, watcher, progress.get(run_id))
            if update is not None:
                self._hand(run_id, watcher, update, over=update.over)

    async def _update(
        self,
        run_id: UUID,
        watcher: _Watcher[Update],
        progress: tuple[str, str | None, int | None] | None,
    ) -> Update | None:
        if progress is None:
            return Update([], None, None, over=True)
        status, node, last = progress
        seen, *shown = watcher.seen or (-1, None, None)
        fresh: list[RunEvent] = []
        if last is not None and last > seen:
            try:
                timeline = await runs.get_run_events(run_id, self._resources)
            except HTTPException:  # the patient was erased meanwhile
                return Update([], None, None, over=True)
            fresh = [e for e in timeline.events if e.seq > seen]
            seen = max([seen, *(e.seq for e in fresh)])
        over = status in TERMINAL_STATUSES and (last is None or seen >= last)
        watcher.seen = (seen, status, node)
        if not fresh and [status, node] == shown and not over:
            return None
        return Update(fresh, status, node, over)


class Conversations(_Poller[str, ConversationView]):
    """Patients' conversations by patient key: each page is handed the whole conversation
    (its last `LIMIT` messages) whenever a message or a report or a reply came in."""

    LIMIT = 100

    async def _once(self, followed: dict[str, _Watcher[ConversationView]]) -> None:
        async with self._resources.pool.connection() as conn:
            rows = await (await conn.execute(_COUNTS, (list(followed),))).fetchall()
        for key, *counts in rows:
            watcher = followed[key]
            # A new watcher's first poll hands it too: something may have come in between
            # a page's own first read and this poll.
            if counts != watcher.seen:
                watcher.seen = counts
                view = await conversations.conversation(self._resources, key, self.LIMIT)
                self._hand(key, watcher, view)
