"""Idempotency keys across the upgrade that scoped them to callers, and while both versions run.

The previous version keeps claiming keys in `api_idempotency_keys` as it always did, unscoped
(during a rolling upgrade, or after a rollback): that table and its primary key stay as it knows
them, and scoped claims live in `api_idempotency_claims`. A key in the old table, whether
claimed before the upgrade or by an old pod since, goes to the first caller who sends it again
with the same body; anyone after that is another caller, who gets a run of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from yoyo import get_backend
from yoyo.migrations import MigrationList

from journeys_api import migrations
from journeys_api.idempotency import claim, key_hash, legacy_body_hash, run_id_for
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET

pytestmark = pytest.mark.integration

JOURNEY = uuid.UUID("3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f")
CONTEXT = {"id": "patient-123", "age": 72}
KEY = "order-77"
SECRET = DEV_PATIENT_KEY_SECRET
# How the previous version derived a key's run id: from the key alone.
LEGACY_RUN = uuid.uuid5(JOURNEY, f"idempotency-key:{KEY}")

# The previous version's statements, word for word: its pods run them against the newest schema.
PREVIOUS_CLAIM = """
INSERT INTO api_idempotency_keys (journey_id, key_hash, body_hash, run_id, created_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (journey_id, key_hash) DO NOTHING
RETURNING run_id
"""
PREVIOUS_EXISTING = (
    "SELECT body_hash, run_id FROM api_idempotency_keys WHERE journey_id = %s AND key_hash = %s"
)


def previous_version_claims(database_url: str, key: str, context: dict[str, Any]) -> uuid.UUID:
    """What an API pod of the previous version does with a keyed trigger."""
    run = uuid.uuid5(JOURNEY, f"idempotency-key:{key}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        claimed = conn.execute(
            PREVIOUS_CLAIM, (JOURNEY, key_hash(key), legacy_body_hash(context), run)
        ).fetchone()
        if claimed is not None:
            return run
        stored = conn.execute(PREVIOUS_EXISTING, (JOURNEY, key_hash(key))).fetchone()
    assert stored is not None
    assert stored[0] == legacy_body_hash(context), "the previous version would answer 422"
    return uuid.UUID(str(stored[1]))


async def open_pool(database_url: str) -> AsyncConnectionPool[Any]:
    pool = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    return pool


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A database that claimed `KEY` for `CONTEXT` before the upgrade, then was upgraded."""
    backend = get_backend(migrations.yoyo_url(fresh_database))
    try:
        before = MigrationList(m for m in migrations.migrations() if m.id < "api_0003")
        backend.apply_migrations(backend.to_apply(before))
    finally:
        backend.connection.close()
    assert previous_version_claims(fresh_database, KEY, CONTEXT) == LEGACY_RUN
    migrations.apply(fresh_database)
    p = await open_pool(fresh_database)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def upgraded(fresh_database: str) -> AsyncIterator[tuple[str, AsyncConnectionPool[Any]]]:
    """A database migrated to the newest schema, with no key claimed yet."""
    migrations.apply(fresh_database)
    p = await open_pool(fresh_database)
    try:
        yield fresh_database, p
    finally:
        await p.close()


async def test_a_retry_across_the_upgrade_gets_the_run_it_started(
    pool: AsyncConnectionPool[Any],
) -> None:
    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET) == LEGACY_RUN
    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET) == LEGACY_RUN


async def test_once_adopted_the_key_is_that_callers_alone(
    pool: AsyncConnectionPool[Any],
) -> None:
    await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET)

    other = await claim(pool, JOURNEY, "key:clinic-b", KEY, CONTEXT, secret=SECRET)

    assert other == run_id_for(JOURNEY, "key:clinic-b", KEY) != LEGACY_RUN


async def test_callers_adopting_the_same_key_at_once_agree_on_one_owner(
    pool: AsyncConnectionPool[Any],
) -> None:
    callers = ["key:clinic-a", "key:clinic-b", "key:clinic-a", "key:clinic-b"]

    runs = await asyncio.gather(
        *(claim(pool, JOURNEY, c, KEY, CONTEXT, secret=SECRET) for c in callers)
    )

    answered = {(caller, run) for caller, run in zip(callers, runs, strict=True)}
    [(owner, _)] = [(c, r) for c, r in answered if r == LEGACY_RUN]
    [other] = {"key:clinic-a", "key:clinic-b"} - {owner}
    assert answered == {(owner, LEGACY_RUN), (other, run_id_for(JOURNEY, other, KEY))}


async def test_another_body_does_not_adopt_the_key_and_starts_its_own_run(
    pool: AsyncConnectionPool[Any],
) -> None:
    # Not a retry of the first attempt, which may have been another caller's.
    run = await claim(pool, JOURNEY, "key:clinic-a", KEY, {**CONTEXT, "age": 73}, secret=SECRET)

    assert run == run_id_for(JOURNEY, "key:clinic-a", KEY) != LEGACY_RUN
    assert await claim(pool, JOURNEY, "key:clinic-b", KEY, CONTEXT, secret=SECRET) == LEGACY_RUN


async def test_the_previous_versions_claim_still_works_on_the_newest_schema(
    upgraded: tuple[str, AsyncConnectionPool[Any]],
) -> None:
    database_url, _ = upgraded

    first = previous_version_claims(database_url, KEY, CONTEXT)
    retry = previous_version_claims(database_url, KEY, CONTEXT)

    assert first == retry == LEGACY_RUN


async def test_a_key_an_old_pod_claims_during_the_rollout_goes_to_the_first_caller_to_resend_it(
    upgraded: tuple[str, AsyncConnectionPool[Any]],
) -> None:
    database_url, pool = upgraded
    previous_version_claims(database_url, KEY, CONTEXT)

    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET) == LEGACY_RUN
    assert await claim(pool, JOURNEY, "key:clinic-b", KEY, CONTEXT, secret=SECRET) == run_id_for(
        JOURNEY, "key:clinic-b", KEY
    )
    # The old pods still answer the run they started.
    assert previous_version_claims(database_url, KEY, CONTEXT) == LEGACY_RUN


async def test_a_caller_who_claimed_on_a_new_pod_keeps_that_run_when_an_old_pod_claims_the_key(
    upgraded: tuple[str, AsyncConnectionPool[Any]],
) -> None:
    database_url, pool = upgraded
    scoped = await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET)
    previous_version_claims(database_url, KEY, CONTEXT)

    assert await claim(pool, JOURNEY, "key:clinic-a", KEY, CONTEXT, secret=SECRET) == scoped
    assert scoped == run_id_for(JOURNEY, "key:clinic-a", KEY)
