"""Backoff grows to its cap, jittered, and resets; `retrying` retries until success or stop."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from journeys_runtime.backoff import Backoff, StoppedError, retrying

CANARY = "Canary-Patient-5f3e Zzyzx"


class Flaky:
    """Fails `times` times with `error`, then answers 42."""

    def __init__(self, times: int, error: Exception) -> None:
        self.times, self.error, self.calls = times, error, 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return 42


async def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(sleep, initial=0.1, maximum=0.5, jitter=0)
    for _ in range(5):
        await backoff.wait()
    assert backoff.attempts == 5
    backoff.reset()
    await backoff.wait()
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.1])


def test_jitter_spreads_every_delay_and_never_passes_the_cap() -> None:
    delays = [Backoff(initial=0.1, maximum=5, jitter=0.4) for _ in range(50)]
    rounds = [[b.next_delay() for b in delays] for _ in range(12)]
    assert all(0.1 <= d <= 0.5 for d in rounds[0])
    assert all(4.6 <= d <= 5.0 for d in rounds[-1])
    assert all(len(set(r)) > 1 for r in rounds)  # at the cap too: replicas do not retry in step
    assert all(max(r) <= 5.0 for r in rounds)


def test_a_large_attempt_count_stays_at_the_cap() -> None:
    backoff = Backoff(initial=0.05, maximum=5, jitter=0)
    delays = [backoff.next_delay() for _ in range(2000)]
    assert delays[-1] == 5


async def test_retrying_returns_once_the_operation_succeeds() -> None:
    failures: list[BaseException] = []
    flaky = Flaky(3, OSError("refused"))
    result = await retrying(
        flaky, what="reading", retry_on=(OSError,), stopping=asyncio.Event(),
        initial=0.001, max_delay=0.01, on_failure=failures.append,
    )  # fmt: skip
    assert result == 42
    assert flaky.calls == 4
    assert len(failures) == 3


async def test_retrying_awaits_an_operation_given_as_a_lambda() -> None:
    flaky = Flaky(2, OSError("refused"))
    result = await retrying(
        lambda: flaky(), what="reading", retry_on=(OSError,), stopping=asyncio.Event(),
        initial=0.001, max_delay=0.01,
    )  # fmt: skip
    assert result == 42
    assert flaky.calls == 3


async def test_retrying_logs_the_error_by_type_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="journeys_runtime.backoff"):
        await retrying(
            Flaky(2, OSError(CANARY)), what="reading", retry_on=(OSError,),
            stopping=asyncio.Event(), initial=0.001, max_delay=0.01,
        )  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == ["reading failed, retrying"] * 2
    assert [r.attempt for r in caplog.records] == [1, 2]  # type: ignore[attr-defined]
    assert all(r.error == "OSError" for r in caplog.records)  # type: ignore[attr-defined]
    assert CANARY not in caplog.text


async def test_retrying_raises_a_fatal_or_unexpected_error_at_once() -> None:
    for error in (ConnectionResetError("fatal"), ValueError("not retried")):
        flaky = Flaky(1, error)
        with pytest.raises(type(error)):
            await retrying(
                flaky, what="writing", retry_on=(OSError,), fatal=(ConnectionResetError,),
                stopping=asyncio.Event(), initial=0.001,
            )  # fmt: skip
        assert flaky.calls == 1


async def test_a_stop_ends_the_wait_between_tries() -> None:
    stopping = asyncio.Event()
    flaky = Flaky(1000, OSError("down"))
    task = asyncio.create_task(
        retrying(
            flaky, what="writing", retry_on=(OSError,), stopping=stopping, initial=30, max_delay=60
        )
    )
    await asyncio.sleep(0.05)
    started = time.monotonic()
    stopping.set()
    with pytest.raises(StoppedError):
        await task
    assert time.monotonic() - started < 1
    assert flaky.calls == 1  # no further try once stopping


async def test_nothing_is_tried_once_stopping() -> None:
    stopping = asyncio.Event()
    stopping.set()
    flaky = Flaky(0, OSError())
    with pytest.raises(StoppedError):
        await retrying(flaky, what="x", retry_on=(OSError,), stopping=stopping)
    assert flaky.calls == 0
