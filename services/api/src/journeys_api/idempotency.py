"""Idempotency-Key: the same caller, key and body for a journey always name the same run.

Keys are scoped to the authenticated subject: two callers who pick the same key (a counter,
an order number) get two runs, and neither learns of the other's. The run id is derived from
the subject and the key (uuid5 under the journey id), so it is the same on every replica even
before anything is stored. The `api_idempotency_keys` row (the subject, and hashes only, never
the raw key or body) catches a key reused with a different body.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from journeys_api.errors import invalid

HEADER_LOC = ("header", "idempotency-key")

_CLAIM = """
INSERT INTO api_idempotency_keys (journey_id, subject, key_hash, body_hash, run_id, created_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (journey_id, subject, key_hash) DO NOTHING
RETURNING run_id
"""
# A separate statement: under READ COMMITTED it sees a row a concurrent request just committed.
_EXISTING = """
SELECT body_hash, run_id FROM api_idempotency_keys
WHERE journey_id = %s AND subject = %s AND key_hash = %s
"""


def run_id_for(journey_id: UUID, subject: str, key: str) -> UUID:
    # The subject's length first: no other (subject, key) pair reads the same.
    return uuid.uuid5(journey_id, f"idempotency-key:{len(subject)}:{subject}:{key}")


def body_hash(context: dict[str, Any]) -> str:
    """The same JSON object in any key order or spacing hashes the same."""
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def claim(
    pool: AsyncConnectionPool[Any], journey_id: UUID, subject: str, key: str,
    context: dict[str, Any],
) -> UUID:  # fmt: skip
    """The run id for this caller's key; a 422 naming the header if the caller sent it with
    another body before."""
    run_id = run_id_for(journey_id, subject, key)
    hashed_key, hashed_body = key_hash(key), body_hash(context)
    async with pool.connection() as conn:
        cursor = await conn.execute(_CLAIM, (journey_id, subject, hashed_key, hashed_body, run_id))
        if await cursor.fetchone() is not None:
            return run_id
        cursor = await conn.execute(_EXISTING, (journey_id, subject, hashed_key))
        row = await cursor.fetchone()
    if row is None:  # only if an operator deleted the row in between: the key is free again
        return await claim(pool, journey_id, subject, key, context)
    stored_body, stored_run = row
    if stored_body != hashed_body:
        raise invalid(
            HEADER_LOC,
            "Idempotency-Key was already used by you for this journey with a different "
            "request body",
        )
    return UUID(str(stored_run))
