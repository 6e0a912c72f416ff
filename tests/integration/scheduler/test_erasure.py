"""A patient's erasure removes the timers of the patient's runs, and only those."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from journeys_contracts.events import PatientErased
from journeys_scheduler.app import Scheduler
from tests.integration.scheduler.conftest import EventWriter, key_of, ready, wait_for
from tests.unit.scheduler.events import delay_started

pytestmark = pytest.mark.integration


def _stored(database_url: str) -> set[uuid.UUID]:
    with psycopg.connect(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT run_id FROM scheduler_timers")}


async def test_patient_erased_deletes_the_timers_of_its_runs_and_keeps_the_others(
    start_scheduler: Callable[[], Awaitable[Scheduler]], events: EventWriter, fresh_database: str
) -> None:
    await ready(await start_scheduler())
    later = datetime.now(UTC) + timedelta(hours=1)
    first, second = delay_started(uuid.uuid4(), later), delay_started(uuid.uuid4(), later)
    other = delay_started(uuid.uuid4(), later)
    await events.send(first, key_of("patient-erased"))
    await events.send(second, key_of("patient-erased"))
    await events.send(other, key_of("patient-kept"))
    runs = {first.run_id, second.run_id, other.run_id}
    await wait_for(lambda: _stored(fresh_database) == runs, 5, "the timers to be stored")

    await events.send_erased(PatientErased(
        erasure_id=uuid.uuid4(), patient_key=key_of("patient-erased").decode(),
        erased_at=datetime.now(UTC), run_ids=[first.run_id, second.run_id],
    ))  # fmt: skip

    await wait_for(lambda: _stored(fresh_database) != runs, 5, "the erased runs' timers to go")
    assert _stored(fresh_database) == {other.run_id}
