"""The life cycle of a service whose work is one consuming loop: start, run, stop on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

STOP_GRACE_SECONDS = 10.0


class LoopService(ABC):
    """`start()`, then `stop()` (or `run_until_stopped()`); safe to kill at any point.

    Subclasses connect in `_start()` and create `_loop_task` there; the loop ends when
    `_stopping` is set, after the batch in hand. `_close()` releases the clients.
    """

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # close whatever did start
            raise

    def request_stop(self) -> None:
        """Signal-handler safe: the loop finishes the batch in hand, then `stop()` closes."""
        self._stopping.set()

    async def run_until_stopped(self) -> None:
        await self.start()
        stop_requested = asyncio.create_task(self._stopping.wait())
        try:
            assert self._loop_task is not None
            await asyncio.wait(
                [self._loop_task, stop_requested], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop_requested.cancel()
            await self.stop()

    async def stop(self) -> None:
        """Let the loop finish its batch (bounded), close, then re-raise a crash of the loop."""
        self._stopping.set()
        if self._loop_task is not None:
            done, _ = await asyncio.wait([self._loop_task], timeout=STOP_GRACE_SECONDS)
            if not done:  # nothing of the batch was committed: it is replayed after a restart
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
        await self._close()
        if self._loop_task is not None and self._loop_task.done():
            crash = None if self._loop_task.cancelled() else self._loop_task.exception()
            if crash is not None:
                raise crash

    @property
    def looping(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()


async def serve(service: LoopService) -> None:
    """Run `service` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.run_until_stopped()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop, the libuv event loop uvicorn already runs the API on."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
