"""Idempotency keys: one run per (journey, caller, key), and PostgreSQL sees only hashes.

tests/integration/api/test_trigger.py runs the same rules against a real PostgreSQL; here a
recording connection shows exactly what `claim` sends to it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from journeys_api.idempotency import (
    BODY_HASH_PREFIX,
    body_hash,
    body_matches,
    claim,
    legacy_body_hash,
    run_id_for,
)
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET

JOURNEY = uuid.UUID("3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f")
CONTEXT = {"id": "patient-123", "age": 72, "note": "order-77 follow-up"}
SECRET = DEV_PATIENT_KEY_SECRET


class RecordingPool:
    """Stands in for the pool: keeps every statement's parameters and plays back the table
    of scoped claims keyed as its real primary key is, (journey, subject, key hash). The
    unscoped keys of the previous version are not played: test_idempotency_upgrade.py
    adopts them in a real PostgreSQL."""

    def __init__(self) -> None:
        self.parameters: list[tuple[Any, ...]] = []
        self.rows: dict[tuple[Any, ...], tuple[str, uuid.UUID]] = {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RecordingPool]:
        yield self

    async def execute(
        self, statement: str, params: tuple[Any, ...] | dict[str, Any]
    ) -> RecordingPool:
        if isinstance(params, dict):  # the claim
            journey_id, subject, key, body, run_id = (
                params[name] for name in ("journey", "subject", "key", "body", "run")
            )
            self.parameters.append((journey_id, subject, key, body, run_id))
            if (journey_id, subject, key) in self.rows:
                self._result: Any = None
            else:
                self.rows[(journey_id, subject, key)] = (body, run_id)
                self._result = (run_id,)
        else:
            self.parameters.append(params)
            row = self.rows.get(params)
            self._result = None if row is None else (*row, False)  # (body, run, erased)
        return self

    async def fetchone(self) -> Any:
        return self._result


async def test_the_same_caller_retrying_gets_the_same_run() -> None:
    pool = RecordingPool()
    first = await claim(pool, JOURNEY, "key:clinic-a", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]
    again = await claim(
        pool, JOURNEY, "key:clinic-a", "order-77", dict(reversed(CONTEXT.items())), secret=SECRET
    )  # type: ignore[arg-type]
    assert first == again == run_id_for(JOURNEY, "key:clinic-a", "order-77")


async def test_two_callers_with_the_same_key_and_body_get_two_runs() -> None:
    pool = RecordingPool()
    a = await claim(pool, JOURNEY, "key:clinic-a", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]
    b = await claim(pool, JOURNEY, "key:clinic-b", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]
    assert a != b


async def test_a_caller_reusing_its_key_with_another_body_is_422_at_the_header() -> None:
    pool = RecordingPool()
    await claim(pool, JOURNEY, "key:clinic-a", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(RequestValidationError) as refused:
        await claim(
            pool, JOURNEY, "key:clinic-a", "order-77", {**CONTEXT, "age": 73}, secret=SECRET
        )  # type: ignore[arg-type]
    assert refused.value.errors()[0]["loc"] == ("header", "idempotency-key")


async def test_postgresql_is_sent_the_subject_and_hashes_never_the_key_or_the_body() -> None:
    pool = RecordingPool()
    await claim(pool, JOURNEY, "key:clinic-a", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]
    await claim(pool, JOURNEY, "key:clinic-a", "order-77", CONTEXT, secret=SECRET)  # type: ignore[arg-type]

    sent = [str(value) for params in pool.parameters for value in params]
    assert "key:clinic-a" in sent
    # The age as the body holds it: a hex digest may hold the digits "72" by chance.
    for secret in ("order-77", "patient-123", '"age"', "follow-up"):
        assert not any(secret in value for value in sent), secret


def test_the_run_id_depends_on_journey_caller_and_key() -> None:
    run = run_id_for(JOURNEY, "key:clinic-a", "order-77")
    assert run_id_for(uuid.uuid4(), "key:clinic-a", "order-77") != run
    assert run_id_for(JOURNEY, "key:clinic-b", "order-77") != run
    assert run_id_for(JOURNEY, "key:clinic-a", "order-78") != run


def test_no_two_splits_of_caller_and_key_share_a_run() -> None:
    assert run_id_for(JOURNEY, "key:a", "b:c") != run_id_for(JOURNEY, "key:a:b", "c")


def test_body_hash_ignores_key_order_but_not_values() -> None:
    assert body_hash({"id": "p", "age": 72}, SECRET) == body_hash({"age": 72, "id": "p"}, SECRET)
    assert body_hash({"id": "p", "age": 72}, SECRET) != body_hash({"id": "p", "age": 73}, SECRET)


def test_body_hash_takes_integers_beyond_64_bits() -> None:
    assert body_hash({"id": 2**80}, SECRET) != body_hash({"id": 2**80 + 1}, SECRET)


def test_body_hash_is_keyed_and_told_apart_from_the_plain_hash_of_before() -> None:
    keyed = body_hash(CONTEXT, SECRET)
    assert keyed.startswith(BODY_HASH_PREFIX)
    assert legacy_body_hash(CONTEXT) not in keyed
    assert body_hash(CONTEXT, "another-secret") != keyed


def test_a_stored_hash_matches_its_body_in_either_form() -> None:
    other = {**CONTEXT, "age": 73}
    for stored in (body_hash(CONTEXT, SECRET), legacy_body_hash(CONTEXT)):
        assert body_matches(stored, CONTEXT, SECRET)
        assert not body_matches(stored, other, SECRET)
    assert not body_matches(body_hash(CONTEXT, "another-secret"), CONTEXT, SECRET)
    assert not body_matches(None, CONTEXT, SECRET)  # erased
