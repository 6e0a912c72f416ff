"""The scheduler logs a failing dependency's error by type only: its text may quote a record."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from journeys_scheduler.clock import Alarm
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.firing import Firer
from journeys_scheduler.forgetting import Forgetter
from journeys_scheduler.ingest import Ingest
from journeys_scheduler.timers import Timer
from journeys_scheduler.window import DueWindow
from tests.unit.scheduler.fakes import FakeClock, FakePublisher, FakeStore, settle, timer

CANARY = "Canary-Patient-5f3e Zzyzx"


class LeakyStore(FakeStore):
    """Fails like a database whose error quotes the row it refused."""

    def _check(self) -> None:
        raise psycopg.OperationalError(f"could not write {CANARY}")


class LeakyPublisher(FakePublisher):
    async def fire(self, timers: Sequence[Timer], fired_at: datetime) -> list[Timer]:
        raise KafkaError(f"could not send {CANARY}")


class LeakyConsumer:
    """A consumer whose every call fails with the canary in the error's text."""

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def fail(*_: Any, **__: Any) -> Any:
            raise KafkaError(f"{name} failed for {CANARY}")

        return fail

    def assignment(self) -> set[TopicPartition]:
        return set()


def firer(clock: FakeClock, store: FakeStore, publisher: FakePublisher) -> Firer:
    window = DueWindow(timedelta(seconds=60), 1000)
    window.assign([0])
    return Firer(
        window=window, alarm=Alarm(clock.sleep), store=store, publisher=publisher,
        clock=clock.now, sleep=clock.sleep, locks=Locks(), health=Health(), batch_size=100,
    )  # fmt: skip


def ingest(clock: FakeClock) -> Ingest:
    return Ingest(
        consumer=LeakyConsumer(), producer=None, store=LeakyStore(),  # type: ignore[arg-type]
        window=DueWindow(timedelta(seconds=60), 1000), alarm=Alarm(clock.sleep), topic="events",
        sealed_topic="sealed_events", dlq_topic="dlq", locks=Locks(), health=Health(),
        clock=clock.now, sleep=clock.sleep, catch_up=timedelta(seconds=30),
    )  # fmt: skip


async def run_for_a_while(work: Awaitable[Any], clock: FakeClock) -> None:
    task = asyncio.ensure_future(work)
    for _ in range(5):
        await clock.advance(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def assert_logged_by_type(caplog: pytest.LogCaptureFixture, message: str, error: str) -> None:
    assert CANARY not in caplog.text
    warnings = [r for r in caplog.records if r.getMessage() == message]
    assert warnings, [r.getMessage() for r in caplog.records]
    assert all(r.error == error and r.exc_info is None for r in warnings)  # type: ignore[attr-defined]


async def test_a_failed_delete_of_fired_timers_is_logged_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    forgetter = Forgetter(
        store=LeakyStore(), window=DueWindow(timedelta(seconds=60), 1000), health=Health(),
        sleep=clock.sleep,
    )  # fmt: skip
    forgetter.add([uuid.uuid4()])
    with caplog.at_level(logging.WARNING, logger="journeys_scheduler"):
        await run_for_a_while(forgetter.run(), clock)
    assert_logged_by_type(caplog, "could not delete fired timers; retrying", "OperationalError")


async def test_a_failed_window_load_is_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="journeys_scheduler"):
        await run_for_a_while(firer(clock, LeakyStore(), FakePublisher(clock)).run(), clock)
    assert_logged_by_type(caplog, "could not load the timer window; retrying", "OperationalError")


async def test_a_failed_fire_is_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    f = firer(clock, FakeStore([timer(0.5)]), LeakyPublisher(clock))
    with caplog.at_level(logging.WARNING, logger="journeys_scheduler"):
        await run_for_a_while(f.run(), clock)
    assert_logged_by_type(caplog, "FireTimer batch failed", "KafkaError")


async def test_a_failed_fetch_of_events_is_logged_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="journeys_scheduler"):
        await run_for_a_while(ingest(clock).run(), clock)
    assert_logged_by_type(caplog, "could not fetch events; retrying", "KafkaError")


async def test_unknown_end_offsets_are_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="journeys_scheduler"):
        behind = await ingest(clock)._ends_behind([TopicPartition("events", 0)], {})
    await settle()
    assert behind == {}
    assert_logged_by_type(caplog, "end offsets unknown: firing without catching up", "KafkaError")
