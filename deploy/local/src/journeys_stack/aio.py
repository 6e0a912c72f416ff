"""Run a coroutine to completion from synchronous code, even under a running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from sync code that an event loop called (an async pytest fixture)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # asyncio.run refuses to nest: a thread of its own gets a loop of its own.
    with ThreadPoolExecutor(1, thread_name_prefix="run-blocking") as pool:
        return pool.submit(asyncio.run, coro).result()
