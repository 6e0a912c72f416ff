"""Time as a dependency: the wall clock, sleeping, and waits a nearer timer cuts short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Alarm:
    """Sleep until a deadline unless woken earlier (a nearer timer arrived, the window moved)."""

    def __init__(self, sleep: Sleep) -> None:
        self._sleep = sleep
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True if woken before `seconds` passed; a wake before the wait counts too.

        The event is cleared on return, so the caller must read its state afterwards: a wake
        always follows the change it announces, and nothing that changed is missed.
        """
        if self._event.is_set():
            self._event.clear()
            return True
        woken = asyncio.ensure_future(self._event.wait())
        slept = asyncio.ensure_future(self._sleep(max(seconds, 0.0)))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (woken, slept):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        self._event.clear()
        return woken.done() and not woken.cancelled()
