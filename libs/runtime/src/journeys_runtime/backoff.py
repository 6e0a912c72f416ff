"""The one way to wait between tries: capped exponential delays with jitter, built on tenacity.

`Backoff` paces a loop that keeps going until it is stopped (a consumer, a firing loop) and is
reset by its next success; `retrying` retries one operation until it succeeds, fails for good,
or the service stops. Both log and report errors by type only: an exception's text can quote
the record it failed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from journeys_runtime.logs import describe_error

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger(__name__)


def jittered_exponential(initial: float, maximum: float, jitter: float | None = None) -> wait_base:
    """`initial`, doubling per attempt, plus up to `jitter` (default `initial`) at random; never
    above `maximum`.

    tenacity's `wait_exponential_jitter` clamps the sum to its maximum, so every client at the
    cap would wait exactly as long and retry in step; here the cap applies before the jitter.
    """
    spread = min(initial if jitter is None else jitter, max(maximum - initial, 0.0))
    base = wait_exponential(multiplier=initial, max=max(maximum - spread, initial))
    return base + wait_random(0, spread)


class Backoff:
    """Delays between tries of a failing dependency in a loop that goes on until stopped.

    Each `wait` (or `next_delay`) is longer than the last up to `maximum`; `reset` after a
    success starts again from `initial`. `sleep` is injectable, so tests need no real time.
    """

    def __init__(
        self,
        sleep: Sleep = asyncio.sleep,
        *,
        initial: float = 0.05,
        maximum: float = 5.0,
        jitter: float | None = None,
    ) -> None:
        self._sleep = sleep
        self._wait = jittered_exponential(initial, maximum, jitter)
        self._state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        self._state.attempt_number = 0

    @property
    def attempts(self) -> int:
        """Failures since the last reset."""
        return self._state.attempt_number

    def next_delay(self) -> float:
        """The delay before the next try, counting one more failure; for callers that schedule
        the try themselves instead of sleeping."""
        self._state.attempt_number += 1
        return float(self._wait(self._state))

    async def wait(self) -> None:
        await self._sleep(self.next_delay())

    def reset(self) -> None:
        self._state.attempt_number = 0


class StoppedError(Exception):
    """The service is stopping: the work in hand is abandoned, to be redone after a restart."""


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    stopping: asyncio.Event,
    fatal: tuple[type[BaseException], ...] = (),
    initial: float = 0.05,
    max_delay: float = 5.0,
    on_failure: Callable[[BaseException], None] = lambda _: None,
) -> T:
    """Run `operation` until it succeeds. Never gives up on its own: an error in `fatal` (or
    in neither tuple) is raised to the caller, a stop raises `StoppedError`, even mid-wait."""
    if stopping.is_set():
        raise StoppedError(what)

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, retry_on) and not isinstance(exc, fatal)

    def failed(state: RetryCallState) -> None:
        assert state.outcome is not None
        assert state.next_action is not None
        exc = state.outcome.exception()
        assert exc is not None
        on_failure(exc)
        log.warning(
            "%s failed, retrying", what,
            extra={"attempt": state.attempt_number, "error": describe_error(exc),
                   "retry_in": round(state.next_action.sleep, 3)},
        )  # fmt: skip

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        if stopping.is_set():
            raise StoppedError(what)

    retryer = AsyncRetrying(
        sleep=sleep,
        wait=jittered_exponential(initial, max_delay),
        retry=retry_if_exception(retryable),
        before_sleep=failed,
        reraise=True,
    )

    async def attempt() -> T:
        # tenacity awaits only what it recognises as a coroutine function; a lambda returning
        # an awaitable would come back unawaited, as a "success".
        return await operation()

    return await retryer(attempt)
