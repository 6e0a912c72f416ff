"""A retry that spans the upgrade which scoped idempotency keys to callers names the run the
first attempt started: the patient gets the journey once.

Keys claimed before that upgrade carry no caller (the empty subject). The first caller to send
such a key again, with the same body, adopts it; anyone after that is another caller, who gets
a run of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from yoyo import get_backend
from yoyo.migrations import MigrationList

from journeys_api import migrations
from journeys_api.idempotency import body_hash, claim, key_hash, run_id_for

pytestmark = pytest.mark.integration

JOURNEY = uuid.UUID("3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f")
CONTEXT = {"id": "patient-123", "age": 72}
KEY = "order-77"
# How the version before the upgrade derived a key's run id: from the key alone.
LEGACY_RUN = uuid.uuid5(JOURNEY, f"idempotency-key:{KEY}")


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A database that claimed `KEY` for `CONTEXT` before the upgrade, then was upgraded."""
    backend = get_backend(migrations.yoyo_url(fresh_database))
    try:
        before = MigrationList(m for m in migrations.migrations() if m.id < "api_0003")
        backend.apply_migrations(backend.to_apply(before))
    finally:
        backend.connection.close()
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_idempotency_keys (journey_id, key_hash, body_hash, run_id) "
            "VALUES (%s, %s, %s, %s)",
            (JOURNEY, key_hash(KEY), body_hash(CONTEXT), LEGACY_RUN),
        )
    migrations.apply(fresh_database)
    async with AsyncConnectionPool(
        fresh_database, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as p:
        yield p


async def test_a_retry_across_the_upgrade_gets_the_run_it_started(
    pool: AsyncConnectionPool[Any],
) -> None:
    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT) == LEGACY_RUN
    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT) == LEGACY_RUN


async def test_once_adopted_the_key_is_that_callers_alone(
    pool: AsyncConnectionPool[Any],
) -> None:
    await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT)

    other = await claim(pool, JOURNEY, "key:clinic-b", KEY, CONTEXT)

    assert other == run_id_for(JOURNEY, "key:clinic-b", KEY) != LEGACY_RUN


async def test_another_body_does_not_adopt_the_key_and_starts_its_own_run(
    pool: AsyncConnectionPool[Any],
) -> None:
    # Not a retry of the first attempt, which may have been another caller's.
    run = await claim(pool, JOURNEY, "key:clinic-a", KEY, {**CONTEXT, "age": 73})

    assert run == run_id_for(JOURNEY, "key:clinic-a", KEY) != LEGACY_RUN
    assert await claim(pool, JOURNEY, "key:clinic-b", KEY, CONTEXT) == LEGACY_RUN


async def test_a_caller_who_already_retried_after_the_upgrade_keeps_that_run(
    pool: AsyncConnectionPool[Any],
) -> None:
    # Claimed by a version that scoped keys but did not adopt: the caller was told this run.
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO api_idempotency_keys "
            "(journey_id, subject, key_hash, body_hash, run_id, created_at) "
            "VALUES (%s, %s, %s, %s, %s, now())",
            (JOURNEY, "key:clinic-a", key_hash(KEY), body_hash(CONTEXT),
             run_id_for(JOURNEY, "key:clinic-a", KEY)),
        )  # fmt: skip

    run = await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT)

    assert run == run_id_for(JOURNEY, "key:clinic-a", KEY)
