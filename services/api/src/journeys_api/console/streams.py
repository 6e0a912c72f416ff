"""What every live page's stream shares: a slot among the process's streams, a half hour at
most, and its session checked again as it runs, so a sign-out, an expired session or a
revoked key ends the stream within a minute rather than at its half hour."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

LIMIT_SECONDS = 30 * 60
"""A stream ends after this; the browser reconnects, and the reconnection is signed in anew."""
RECHECK_SECONDS = 30.0
"""How often a stream asks whether its session still holds."""

T = TypeVar("T")


class StreamCount:
    """Live streams open in this process, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class Lease:
    """One stream's time: `next` hands the next update, or None when the stream must end: its
    time is up (the browser may come back), or `still_signed_in` said no (`signed_out`; asked
    every `recheck` seconds, busy or not: the page should stop trying)."""

    def __init__(
        self,
        still_signed_in: Callable[[], Awaitable[bool]],
        seconds: float = LIMIT_SECONDS,
        recheck: float = RECHECK_SECONDS,
    ) -> None:
        now = asyncio.get_running_loop().time()
        self._still, self._recheck = still_signed_in, recheck
        self._deadline, self._checked = now + seconds, now
        self.signed_out = False

    async def next(self, updates: asyncio.Queue[T]) -> T | None:
        loop = asyncio.get_running_loop()
        while (now := loop.time()) < self._deadline:
            if now - self._checked >= self._recheck:
                self._checked = now
                if not await self._still():
                    self.signed_out = True
                    return None
            wait = min(self._deadline, self._checked + self._recheck) - now
            try:
                return await asyncio.wait_for(updates.get(), timeout=max(wait, 0))
            except TimeoutError:
                continue
        return None
