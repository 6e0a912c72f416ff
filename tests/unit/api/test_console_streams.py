"""A live page's stream: its updates handed on, its end at its time, and its session asked
again every `recheck` seconds, even while updates keep coming, so a sign-out ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from journeys_api.console.streams import Lease, StreamCount


def sessions(*answers: bool) -> tuple[list[bool], Callable[[], Awaitable[bool]]]:
    """A stand-in for the session store: the answers in turn (the last one from then on)."""
    asked: list[bool] = []

    async def still_signed_in() -> bool:
        asked.append(answers[min(len(asked), len(answers) - 1)])
        return asked[-1]

    return asked, still_signed_in


async def test_updates_pass_and_the_stream_ends_at_its_time() -> None:
    asked, still = sessions(True)
    lease = Lease(still, seconds=0.3, recheck=0.1)
    updates: asyncio.Queue[int] = asyncio.Queue()
    updates.put_nowait(1)
    assert await lease.next(updates) == 1
    assert await lease.next(updates) is None  # nothing more, and the time is up
    assert lease.signed_out is False
    assert 1 <= len(asked) <= 3  # asked along the way, and always yes


async def test_a_session_that_ends_ends_the_stream_even_while_updates_keep_coming() -> None:
    asked, still = sessions(True, False)
    lease = Lease(still, seconds=60, recheck=0.05)
    updates: asyncio.Queue[int] = asyncio.Queue()
    handed = 0

    async def busy() -> None:
        for n in range(1000):
            updates.put_nowait(n)
            await asyncio.sleep(0.005)

    feeder = asyncio.create_task(busy())
    try:
        while await asyncio.wait_for(lease.next(updates), timeout=2) is not None:
            handed += 1
    finally:
        feeder.cancel()
    assert lease.signed_out is True
    assert asked == [True, False]
    assert handed > 0


def test_at_most_limit_streams_are_open() -> None:
    count = StreamCount(2)
    assert (count.take(), count.take(), count.take()) == (True, True, False)
    count.give_back()
    assert count.take() is True
