"""`settled`: how long until the services stop working through a backlog."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from journeys_bench.memory import settled


async def test_an_idle_process_is_settled_at_once() -> None:
    waited = await settled({"me": os.getpid()}, quiet_seconds=0.5, patience=5)
    assert waited is not None
    assert waited < 0.5


async def test_a_busy_process_is_settled_only_once_its_work_is_done() -> None:
    busy = threading.Event()

    def spin() -> None:
        until = time.monotonic() + 1.5
        busy.set()
        while time.monotonic() < until:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    busy.wait()
    waited = await settled({"me": os.getpid()}, quiet_seconds=0.5, patience=5)
    worker.join()
    assert waited is not None
    assert waited >= 1.0


async def test_a_process_that_stays_busy_is_never_settled() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert await settled({"me": os.getpid()}, quiet_seconds=0.5, patience=1.5) is None
    finally:
        stop.set()
        worker.join()
        await asyncio.sleep(0)
