"""The read-your-writes waiter: released by the projector's NOTIFY, or by polling without one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from journeys_api.consistency import ProjectionWaiter

TOPIC = "journeys.commands.v1"


@pytest.fixture
async def database(read_models: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        yield conn


async def _project(conn: psycopg.AsyncConnection[Any], next_offset: int, notify: bool) -> None:
    """What the projector commits: the offset, and NOTIFY in the same transaction."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO projector_offsets VALUES (%s, 1, %s) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            (TOPIC, next_offset),
        )
        if notify:
            await conn.execute("NOTIFY journeys_projected")


@contextlib.asynccontextmanager
async def started_waiter(read_models: str, poll_seconds: float) -> AsyncIterator[ProjectionWaiter]:
    waiter = ProjectionWaiter(read_models, poll_seconds)
    await waiter.start()
    try:
        yield waiter
    finally:
        await waiter.stop()


async def test_notify_releases_the_waiter_long_before_the_poll_interval(
    read_models: str,
    database: psycopg.AsyncConnection[Any],
) -> None:
    async with started_waiter(read_models, poll_seconds=30) as waiter:
        started = time.monotonic()
        released = asyncio.create_task(waiter.wait(TOPIC, 1, 41, max_wait=10))
        await _project(database, 42, notify=True)

        assert await released is True
        assert time.monotonic() - started < 2


async def test_polling_releases_the_waiter_when_no_notification_comes(
    read_models: str,
    database: psycopg.AsyncConnection[Any],
) -> None:
    async with started_waiter(read_models, poll_seconds=0.05) as waiter:
        released = asyncio.create_task(waiter.wait(TOPIC, 1, 41, max_wait=5))
        await _project(database, 42, notify=False)

        assert await released is True


async def test_the_projector_at_the_record_itself_is_not_past_it(
    read_models: str,
    database: psycopg.AsyncConnection[Any],
) -> None:
    async with started_waiter(read_models, poll_seconds=0.05) as waiter:
        await _project(database, 41, notify=True)

        assert await waiter.wait(TOPIC, 1, 41, max_wait=0.3) is False
        assert await waiter.wait(TOPIC, 1, 40, max_wait=5) is True


async def test_a_position_already_seen_past_answers_without_waiting(
    read_models: str,
    database: psycopg.AsyncConnection[Any],
) -> None:
    async with started_waiter(read_models, poll_seconds=0.05) as waiter:
        await _project(database, 100, notify=True)
        assert await waiter.wait(TOPIC, 1, 99, max_wait=5) is True

        assert waiter.projected(TOPIC, 1, 50)
        assert await waiter.wait(TOPIC, 1, 50, max_wait=0) is True
