"""The firing loop: on time, never early, woken by nearer timers, durable across failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from journeys_scheduler.clock import Alarm
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.firing import Firer
from journeys_scheduler.timers import Timer
from journeys_scheduler.window import DueWindow
from tests.unit.scheduler.fakes import FakeClock, FakePublisher, FakeStore, at, settle, timer


@dataclass
class Harness:
    clock: FakeClock
    store: FakeStore
    publisher: FakePublisher
    window: DueWindow
    alarm: Alarm
    health: Health


@asynccontextmanager
async def running(
    stored: Sequence[Timer] = (), *, max_entries: int = 1000, batch_size: int = 100
) -> AsyncIterator[Harness]:
    clock = FakeClock()
    window = DueWindow(timedelta(seconds=60), max_entries)
    alarm = Alarm(clock.sleep)
    h = Harness(clock, FakeStore(stored), FakePublisher(clock), window, alarm, Health())
    h.window.assign([0, 1])
    firer = Firer(
        window=h.window, alarm=h.alarm, store=h.store, publisher=h.publisher, clock=clock.now,
        sleep=clock.sleep, locks=Locks(), health=h.health, batch_size=batch_size,
    )  # fmt: skip
    task = asyncio.create_task(firer.run())
    await settle()
    try:
        yield h
    finally:
        firer.stop()
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def arrive(h: Harness, t: Timer) -> None:
    """What the consumer does with a newly stored timer."""
    h.store.timers[t.timer_id] = t
    if h.window.offer(t):
        h.alarm.wake()


async def test_fires_a_timer_at_its_due_time_and_not_a_microsecond_before() -> None:
    t = timer(5)
    async with running([t]) as h:
        await h.clock.advance(5 - 1e-6)
        assert h.publisher.fired == []
        await h.clock.advance(1e-6)
        assert h.publisher.fired == [(t, at(5))]


async def test_fired_timer_is_deleted_from_the_store_after_the_ack() -> None:
    t = timer(1)
    async with running([t]) as h:
        await h.clock.advance(1)
        assert h.publisher.fired_ids == [t.timer_id]
        assert h.store.timers == {}


async def test_a_nearer_timer_wakes_the_sleeping_loop() -> None:
    async with running([timer(50)]) as h:
        near = timer(1)
        arrive(h, near)
        await h.clock.advance(1)  # without the wake the loop would sleep until 30 s (refresh)
        assert h.publisher.fired_ids == [near.timer_id]


async def test_a_later_timer_does_not_delay_an_earlier_one() -> None:
    first = timer(2)
    async with running([first]) as h:
        arrive(h, timer(40))
        await h.clock.advance(2)
        assert h.publisher.fired_ids == [first.timer_id]


async def test_a_timer_beyond_the_window_is_loaded_and_fired_when_the_window_moves() -> None:
    far = timer(80)
    async with running([far]) as h:
        assert len(h.window) == 0
        await h.clock.advance(30)  # half a window after the first load: the window moves
        assert far.timer_id in h.window
        await h.clock.advance(50)
        assert h.publisher.fired == [(far, at(80))]


async def test_overdue_timers_fire_at_once_in_due_order_in_batches() -> None:
    overdue = [timer(-random.uniform(0, 3600), partition=random.randint(0, 1)) for _ in range(450)]
    async with running(overdue, max_entries=100, batch_size=40) as h:
        for _ in range(20):
            await h.clock.advance(0)
        assert len(h.publisher.fired) == 450
        assert [t.due_at for t, _ in h.publisher.fired] == sorted(t.due_at for t in overdue)
        assert all(fired_at >= t.due_at for t, fired_at in h.publisher.fired)
        assert h.store.timers == {}


async def test_a_failed_send_keeps_the_timer_and_retries_it() -> None:
    t = timer(1)
    async with running([t]) as h:
        h.publisher.fail_next = 2
        await h.clock.advance(1)
        assert h.publisher.fired == []
        assert t.timer_id in h.store.timers
        assert h.health.kafka is False
        for _ in range(10):
            await h.clock.advance(0.1)  # backoff between attempts
        assert h.publisher.fired_ids == [t.timer_id]
        assert h.health.kafka is True
        assert h.store.timers == {}


async def test_a_store_outage_delays_the_delete_but_never_repeats_the_fire() -> None:
    t = timer(1)
    async with running([t]) as h:
        h.store.down = True
        await h.clock.advance(1)
        assert h.publisher.fired_ids == [t.timer_id]
        assert h.health.postgres is False
        await h.clock.advance(1)
        h.store.down = False
        for _ in range(50):
            await h.clock.advance(0.1)
        assert h.store.timers == {}
        assert h.publisher.fired_ids == [t.timer_id]
        assert h.health.postgres is True


async def test_timers_of_revoked_partitions_are_not_fired() -> None:
    mine, theirs = timer(1, partition=0), timer(1, partition=1)
    async with running([mine, theirs]) as h:
        h.window.revoke([1])
        await h.clock.advance(2)
        assert h.publisher.fired_ids == [mine.timer_id]
        assert theirs.timer_id in h.store.timers


async def test_a_new_assignment_loads_the_window_at_once() -> None:
    t = timer(1, partition=1)
    async with running() as h:
        h.window.revoke([1])
        h.store.timers[t.timer_id] = t
        await h.clock.advance(0)
        h.window.assign([0, 1])
        h.alarm.wake()
        await h.clock.advance(1)
        assert h.publisher.fired_ids == [t.timer_id]


async def test_timers_keep_firing_while_the_window_loads_and_fire_once() -> None:
    t = timer(31)
    async with running([t]) as h:
        await h.clock.advance(1)
        h.store.load_gate = asyncio.Event()
        await h.clock.advance(29)  # the reload starts, and PostgreSQL answers slowly
        assert h.store.loads == 2
        await h.clock.advance(1)
        assert h.publisher.fired_ids == [t.timer_id]
        h.store.load_gate.set()  # its snapshot, taken before the fire, still has the timer
        await h.clock.advance(1)
        assert h.publisher.fired_ids == [t.timer_id]
        assert t.timer_id not in h.window


async def test_a_slow_delete_never_delays_the_next_fire() -> None:
    first, second = timer(1), timer(1.001)
    async with running([first, second]) as h:
        h.store.delete_gate = asyncio.Event()
        await h.clock.advance(1)
        await h.clock.advance(0.001)
        assert h.publisher.fired_ids == [first.timer_id, second.timer_id]
        assert len(h.store.timers) == 2  # still being deleted
        assert h.window.unconfirmed == {first.timer_id, second.timer_id}
        h.store.delete_gate.set()
        await h.clock.advance(0)
        assert h.store.timers == {}
        assert h.window.unconfirmed == set()
