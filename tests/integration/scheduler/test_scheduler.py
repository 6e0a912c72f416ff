"""The scheduler against real Kafka and PostgreSQL: on time, exactly once, durable, cancellable."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY

from journeys_contracts.envelope import header
from journeys_scheduler.app import Scheduler
from tests.integration.scheduler.conftest import (
    EventWriter,
    Received,
    TopicReader,
    key_of,
    ready,
    wait_for,
)
from tests.unit.scheduler.events import (
    delay_started,
    event_matched,
    event_waiting,
    node_entered,
    run_cancelled,
)

pytestmark = pytest.mark.integration

StartScheduler = Callable[[], Awaitable[Scheduler]]


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def report(label: str, lateness: list[timedelta]) -> None:
    ms = sorted(d.total_seconds() * 1000 for d in lateness)
    print(f"\n{label}: n={len(ms)} min={ms[0]:.2f}ms median={statistics.median(ms):.2f}ms "
          f"max={ms[-1]:.2f}ms")  # fmt: skip


def assert_fired_in_due_order(fires: list[Received]) -> None:
    """A timer fired later was due no earlier; on each partition, records are in due order."""
    in_fire_order = sorted(fires, key=lambda f: (f.command.fired_at, f.command.due_at))
    dues = [f.command.due_at for f in in_fire_order]
    assert dues == sorted(dues)
    for partition in {f.partition for f in fires}:
        on_partition = [f.command.due_at for f in fires if f.partition == partition]
        assert on_partition == sorted(on_partition)


async def test_a_delay_fires_one_fire_timer_on_time_keyed_like_the_delay(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    scheduler = await ready(await start_scheduler())
    started = delay_started(uuid.uuid4(), soon(1.0))
    partition = await events.send(started, key_of("patient-1"))

    await commands.until(1, within=5)
    await commands.during(0.3)  # a duplicate would arrive right behind the first fire
    (fire,) = commands.fires()
    assert (fire.command.run_id, fire.command.timer_id) == (started.run_id, started.timer_id)
    assert fire.command.due_at == started.due_at
    assert fire.command.fired_at >= started.due_at
    assert fire.command.fired_at - started.due_at < timedelta(seconds=1)
    assert (fire.key, fire.partition) == (key_of("patient-1"), partition)
    assert header(fire.headers, "ce_id") == str(uuid.uuid5(started.timer_id, "fire"))
    assert header(fire.headers, "ce_source") == "/journeys/scheduler"
    assert header(fire.headers, "ce_subject") == str(started.run_id)
    assert await scheduler.ready() == {"kafka": True, "postgres": True}
    report("fired_at - due_at", [fire.command.fired_at - started.due_at])
    report("arrival on commands - due_at", [fire.arrived_at - started.due_at])


async def test_many_delays_each_fire_once_within_milliseconds_of_due(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    await ready(await start_scheduler())
    delays = [delay_started(uuid.uuid4(), soon(0.8 + i * 0.05)) for i in range(30)]
    for i, started in enumerate(delays):
        await events.send(started, key_of(f"patient-{i}"))

    await commands.until(30, within=6)
    await commands.during(0.3)
    fires = commands.fires()
    assert sorted(f.command.timer_id for f in fires) == sorted(d.timer_id for d in delays)
    assert all(f.command.fired_at >= f.command.due_at for f in fires)
    assert all(f.command.fired_at - f.command.due_at < timedelta(seconds=1) for f in fires)
    assert REGISTRY.get_sample_value("journeys_scheduler_early_fires_total") == 0
    report("fired_at - due_at", [f.command.fired_at - f.command.due_at for f in fires])
    report("arrival on commands - due_at", [f.arrived_at - f.command.due_at for f in fires])


async def test_a_delay_cancelled_before_due_never_fires(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    await ready(await start_scheduler())
    due = soon(1.0)
    cancelled = delay_started(uuid.uuid4(), due)
    control = delay_started(uuid.uuid4(), due + timedelta(milliseconds=100))
    await events.send(cancelled, key_of("patient-cancel"))
    await events.send(control, key_of("patient-control"))
    await events.send(run_cancelled(cancelled), key_of("patient-cancel"))

    await commands.until(1, within=5)  # the control fired: the cancelled one was due before it
    await commands.during(0.3)
    assert [f.command.timer_id for f in commands.fires()] == [control.timer_id]


async def test_a_wait_for_event_fires_its_timeout_once_at_due_and_a_matched_one_never(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    await ready(await start_scheduler())
    due = soon(1.0)
    matched = event_waiting(uuid.uuid4(), due)
    timing_out = event_waiting(uuid.uuid4(), due + timedelta(milliseconds=100))
    await events.send(matched, key_of("patient-matched"))
    partition = await events.send(timing_out, key_of("patient-waiting"))
    await events.send(event_matched(matched), key_of("patient-matched"))

    await commands.until(1, within=5)  # the matched wait was due before the other fired
    await commands.during(0.3)
    (fire,) = commands.fires()
    assert (fire.command.run_id, fire.command.timer_id) == (timing_out.run_id, timing_out.timer_id)
    assert fire.command.due_at == timing_out.due_at
    assert fire.command.fired_at >= timing_out.due_at
    assert (fire.key, fire.partition) == (key_of("patient-waiting"), partition)


async def test_delays_that_came_due_before_the_scheduler_started_all_fire_in_due_order(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    now = datetime.now(UTC)
    delays = [delay_started(uuid.uuid4(), now - timedelta(seconds=(i * 7919) % 60 + 1))
              for i in range(40)]  # fmt: skip
    for i, started in enumerate(delays):
        await events.send(started, key_of(f"patient-{i % 9}"))
    await events.send(node_entered(uuid.uuid4()), key_of("patient-x"))  # ignored
    await start_scheduler()

    await commands.until(40, within=10)
    await commands.during(0.3)
    fires = commands.fires()
    assert len(fires) == 40
    assert {f.command.timer_id for f in fires} == {d.timer_id for d in delays}
    assert all(f.command.fired_at >= f.command.due_at for f in fires)
    assert_fired_in_due_order(fires)


async def test_timers_stored_before_a_restart_fire_after_it_exactly_once(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader,
    fresh_database: str,
) -> None:  # fmt: skip
    first = await ready(await start_scheduler())
    delays = [delay_started(uuid.uuid4(), soon(1.0 + i * 0.01)) for i in range(10)]
    for i, started in enumerate(delays):
        await events.send(started, key_of(f"patient-{i}"))
    await wait_for(lambda: len(first.window) == 10, 5, "the timers to be stored")
    await first.stop()
    with psycopg.connect(fresh_database) as conn:
        stored = conn.execute("SELECT count(*) FROM scheduler_timers").fetchone()
    assert stored == (10,)
    assert commands.fires() == []
    while_down = [delay_started(uuid.uuid4(), d.due_at + timedelta(milliseconds=5)) for d in delays]
    for i, started in enumerate(while_down):
        await events.send(started, key_of(f"patient-{i}"))

    await wait_for(lambda: datetime.now(UTC) > while_down[-1].due_at, 5, "every timer to be due")
    await start_scheduler()
    await commands.until(20, within=10)
    await commands.during(0.3)
    fires = commands.fires()
    expected = sorted(d.timer_id for d in delays + while_down)
    assert sorted(f.command.timer_id for f in fires) == expected
    assert_fired_in_due_order(fires)
    with psycopg.connect(fresh_database) as conn:
        left = conn.execute("SELECT count(*) FROM scheduler_timers").fetchone()
    assert left == (0,)


async def test_a_poison_record_goes_to_the_dlq_and_the_next_delay_still_fires(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader, dlq: TopicReader
) -> None:
    await ready(await start_scheduler())
    key = key_of("patient-poison")
    poison = b'{"type": "journeys.delay.started.v1", "runId": "nope"}'
    await events.send_raw(poison, key)
    started = delay_started(uuid.uuid4(), soon(0.5))
    await events.send(started, key)

    await commands.until(1, within=5)
    await dlq.until(1, within=5)
    assert [f.command.timer_id for f in commands.fires()] == [started.timer_id]
    (dead,) = dlq.records
    assert (dead.key, dead.value) == (key, poison)
    assert header(dead.headers, "dlq_stage") == "decode"
    assert "runId: uuid_parsing" in (header(dead.headers, "dlq_error") or "")
    assert "nope" not in (header(dead.headers, "dlq_error") or "")


async def test_two_replicas_split_the_partitions_and_fire_every_timer_once(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    a, b = await start_scheduler(), await start_scheduler()

    def split() -> bool:
        owned = [a.window.partitions, b.window.partitions]
        return all(owned) and owned[0] | owned[1] == set(range(4)) and not owned[0] & owned[1]

    await wait_for(split, 15, "both replicas to own partitions")
    delays = [delay_started(uuid.uuid4(), soon(0.8)) for _ in range(20)]
    for i, started in enumerate(delays):
        await events.send(started, key_of(f"patient-{i}"))
    await commands.until(20, within=8)

    await b.stop()  # a takes over b's partitions, timers included
    await ready(a)
    later = [delay_started(uuid.uuid4(), soon(0.5)) for _ in range(20)]
    for i, started in enumerate(later):
        await events.send(started, key_of(f"patient-{i}"))
    await commands.until(40, within=8)
    await commands.during(0.3)
    fired = sorted(f.command.timer_id for f in commands.fires())
    assert fired == sorted(d.timer_id for d in delays + later)
