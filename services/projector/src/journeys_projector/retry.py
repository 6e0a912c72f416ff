"""Retry an operation with capped exponential backoff until it succeeds or the service stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from aiokafka.errors import KafkaError

T = TypeVar("T")

log = logging.getLogger(__name__)


class StoppedError(Exception):
    """The service is stopping: the work in hand is abandoned, to be redone after a restart."""


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    fatal: tuple[type[BaseException], ...] = (),
    stopping: asyncio.Event,
    max_delay: float,
    on_failure: Callable[[BaseException], None] = lambda _: None,
) -> T:
    """Never gives up on its own (skipping a batch would lose facts): only a stop, or an
    error in `fatal`, which the caller handles, ends it."""
    delay = 0.05
    attempt = 0
    while True:
        if stopping.is_set():
            raise StoppedError(what)
        try:
            return await operation()
        except fatal:
            raise
        except retry_on as exc:
            attempt += 1
            on_failure(exc)
            log.warning(
                "%s failed, retrying", what,
                extra={"attempt": attempt, "error": describe(exc), "retry_in": delay},
            )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        # Jitter, not a secret: nothing guesses a backoff.
        delay = min(max_delay, delay * 2) * random.uniform(0.8, 1.0)  # nosec B311


def describe(exc: BaseException) -> str:
    """Connection errors explain themselves; other errors may quote record values, so only
    their class and SQLSTATE are told."""
    if isinstance(exc, psycopg.OperationalError | OSError | KafkaError | TimeoutError):
        return f"{type(exc).__name__}: {exc}"[:500]
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} (SQLSTATE {sqlstate})" if sqlstate else type(exc).__name__
