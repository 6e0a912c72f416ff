"""PostgreSQL down: the projector says so on /ready, retries the batch, and loses nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import sql

from journeys_projector.migrations import apply
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    caught_up,
    eventually,
    journey_record,
    produce,
    projector_settings,
    query,
    running,
)  # fmt: skip
from tests.unit.projector.facts import journey


@pytest.fixture
def absent_database(admin_database_url: str) -> Iterator[str]:
    """The URL of a database that does not exist yet: PostgreSQL refuses every connection."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield psycopg.conninfo.make_conninfo(admin_database_url, dbname=name)
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def test_waits_out_a_postgresql_outage_without_skipping_a_record(
    kafka_bootstrap: str, admin_database_url: str, absent_database: str, topics: Topics
) -> None:
    defined = journey()
    await produce(kafka_bootstrap, [journey_record(topics, defined)])
    retries_before = _store_retries()
    async with running(projector_settings(kafka_bootstrap, absent_database, topics)) as projector:
        checks = await projector.ready()
        assert checks["postgres"] is False
        # The database appears only once the projector has failed and retried at least once:
        # else this test would pass without the retry path ever running.
        assert await eventually(lambda: _retried_since(retries_before)) is True

        name = psycopg.conninfo.conninfo_to_dict(absent_database)["dbname"]
        with psycopg.connect(admin_database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
        await asyncio.to_thread(apply, absent_database)

        await caught_up(absent_database, kafka_bootstrap, topics)
        assert await eventually(lambda: _ready(projector)) is True
    assert await query(absent_database, "SELECT journey_id FROM journeys") == [
        {"journey_id": defined.journey_id}
    ]


def _store_retries() -> float:
    return REGISTRY.get_sample_value("journeys_projector_store_retries_total") or 0.0


async def _retried_since(before: float) -> bool:
    return _store_retries() > before


async def _ready(projector: object) -> bool:
    checks: dict[str, bool] = await projector.ready()  # type: ignore[attr-defined]
    return all(checks.values())


async def test_stops_promptly_while_postgresql_is_down(
    kafka_bootstrap: str, absent_database: str, topics: Topics
) -> None:
    await produce(kafka_bootstrap, [journey_record(topics, journey())])
    started = time.monotonic()
    async with running(projector_settings(kafka_bootstrap, absent_database, topics)):
        await asyncio.sleep(0.5)  # let it assign and start retrying
    assert time.monotonic() - started < 5
