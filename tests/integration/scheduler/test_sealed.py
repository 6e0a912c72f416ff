"""Sealed runs: the scheduler reads their delays from journeys.events.v2 by the clear fields,
and skips the v1 twins, so each timer is armed and fired once."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client import REGISTRY

from journeys_contracts.events import PatientErased
from journeys_runtime.shredding import DataKey
from journeys_scheduler.app import Scheduler
from tests.integration.scheduler.conftest import (
    EventWriter,
    TopicReader,
    key_of,
    ready,
    wait_for,
)
from tests.integration.scheduler.test_scheduler import soon
from tests.unit.scheduler.events import (
    delay_elapsed,
    delay_started,
    event_matched,
    event_timed_out,
    event_waiting,
    run_cancelled,
)

pytestmark = pytest.mark.integration

StartScheduler = Callable[[], Awaitable[Scheduler]]
KEY = DataKey.generate()


def twin(event: object) -> object:
    return event.model_copy(update={"sealed_twin": True})  # type: ignore[attr-defined]


def _skipped_twins() -> float:
    value = REGISTRY.get_sample_value(
        "journeys_scheduler_events_total", {"outcome": "skipped_sealed_twin"}
    )
    return value or 0.0


def _stored(database_url: str) -> set[uuid.UUID]:
    with psycopg.connect(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT timer_id FROM scheduler_timers")}


async def test_a_v2_delay_started_fires_once_and_its_v1_twin_is_ignored(
    start_scheduler: StartScheduler, events: EventWriter, commands: TopicReader
) -> None:
    await ready(await start_scheduler())
    skipped_before = _skipped_twins()
    sealed = delay_started(uuid.uuid4(), soon(1.0))
    only_twin = delay_started(uuid.uuid4(), soon(1.0))
    key = key_of("patient-sealed")
    await events.send(twin(sealed), key)  # type: ignore[arg-type]
    partition = await events.send_sealed(sealed, key, KEY)
    await events.send(twin(only_twin), key)  # type: ignore[arg-type]

    await commands.until(1, within=5)
    await commands.during(1.5)  # the twin-only delay was due by now, and a duplicate too
    (fire,) = commands.fires()
    assert (fire.command.run_id, fire.command.timer_id) == (sealed.run_id, sealed.timer_id)
    assert fire.command.due_at == sealed.due_at
    assert (fire.key, fire.partition) == (key, partition)
    assert _skipped_twins() - skipped_before == 2


async def test_v2_ends_and_erasures_delete_the_timers_of_sealed_runs(
    start_scheduler: StartScheduler, events: EventWriter, fresh_database: str
) -> None:
    await ready(await start_scheduler())
    later = soon(3600)
    cancelled, elapsed, erased = (delay_started(uuid.uuid4(), later) for _ in range(3))
    kept = delay_started(uuid.uuid4(), later)
    key = key_of("patient-sealed")
    for started in (cancelled, elapsed, erased, kept):
        await events.send_sealed(started, key, KEY)
    timers = {t.timer_id for t in (cancelled, elapsed, erased, kept)}
    await wait_for(lambda: _stored(fresh_database) == timers, 5, "the v2 timers to be stored")

    await events.send(twin(run_cancelled(kept)), key)  # type: ignore[arg-type]
    await events.send_sealed(run_cancelled(cancelled), key, KEY)
    await events.send_sealed(delay_elapsed(elapsed), key, KEY)
    erasure = PatientErased(
        erasure_id=uuid.uuid4(), patient_key=key.decode(), erased_at=datetime.now(UTC),
        run_ids=[erased.run_id],
    )  # fmt: skip
    await events.send_erased(erasure, sealed=True)
    await events.send_erased(erasure)
    await wait_for(
        lambda: _stored(fresh_database) == {kept.timer_id}, 5, "the ended runs' timers to go"
    )


async def test_v2_waits_are_stored_and_a_v2_match_or_time_out_deletes_them(
    start_scheduler: StartScheduler, events: EventWriter, fresh_database: str
) -> None:
    await ready(await start_scheduler())
    matched, timed_out, kept = (event_waiting(uuid.uuid4(), soon(3600)) for _ in range(3))
    key = key_of("patient-sealed")
    for waiting in (matched, timed_out, kept):
        await events.send(twin(waiting), key)  # type: ignore[arg-type]
        await events.send_sealed(waiting, key, KEY)
    timers = {w.timer_id for w in (matched, timed_out, kept)}
    await wait_for(lambda: _stored(fresh_database) == timers, 5, "the v2 waits to be stored")

    await events.send(twin(event_matched(kept)), key)  # type: ignore[arg-type]
    await events.send_sealed(event_matched(matched), key, KEY)
    await events.send_sealed(event_timed_out(timed_out), key, KEY)
    await wait_for(
        lambda: _stored(fresh_database) == {kept.timer_id}, 5, "the ended waits' timers to go"
    )
