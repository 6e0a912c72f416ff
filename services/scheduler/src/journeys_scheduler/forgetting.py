"""Delete fired timers from PostgreSQL in the background: a slow delete never delays a fire.

Until its delete commits, a fired timer stays `unconfirmed` in the window, so no window load
brings it back; a crash before the delete fires it once more, which the executor rejects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol
from uuid import UUID

from journeys_runtime.backoff import Backoff
from journeys_runtime.logs import describe_error
from journeys_scheduler.clock import Sleep
from journeys_scheduler.coordination import Health
from journeys_scheduler.store import PG_ERRORS
from journeys_scheduler.window import DueWindow

log = logging.getLogger(__name__)

DELETE_BATCH = 5000


class ForgettingStore(Protocol):
    async def delete_timers(self, timer_ids: Sequence[UUID]) -> None: ...


class Forgetter:
    def __init__(
        self, *, store: ForgettingStore, window: DueWindow, health: Health, sleep: Sleep
    ) -> None:
        self._store, self._window, self._health = store, window, health
        self._backoff = Backoff(sleep)
        self._pending: list[UUID] = []
        self._event = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, timer_ids: Iterable[UUID]) -> None:
        self._pending.extend(timer_ids)
        self._event.set()

    async def run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            while self._pending:
                if not await self._delete_some():
                    await self._backoff.wait()

    async def flush(self) -> None:
        """At stop: one last try; what is left fires again after the restart."""
        while self._pending and await self._delete_some():
            pass

    async def _delete_some(self) -> bool:
        batch = self._pending[:DELETE_BATCH]
        try:
            await self._store.delete_timers(batch)
        except PG_ERRORS as exc:
            log.warning(
                "could not delete fired timers; retrying", extra={"error": describe_error(exc)}
            )
            self._health.postgres = False
            return False
        del self._pending[: len(batch)]
        self._window.confirm(batch)
        self._health.postgres = True
        self._backoff.reset()
        return True
