"""Idempotency-Key: the same caller, key and body for a journey always name the same run.

Keys are scoped to the authenticated subject: two callers who pick the same key (a counter,
an order number) get two runs, and neither learns of the other's. The run id is derived from
the subject and the key (uuid5 under the journey id), so it is the same on every replica even
before anything is stored. The `api_idempotency_claims` row (the subject, the patient key, and
hashes only, never the raw key or body) catches a key reused with a different body. The body's
hash is an HMAC-SHA256 under the patient-key secret (`JOURNEYS_PATIENT_KEY_SECRET`), stored as
`hmac-sha256:<hex>`: a reader of the table who guesses a patient context cannot confirm it by
hashing it, nor so tie a claim's patient key to a patient id. Rows written before hold a plain
sha256 (64 hex digits, no prefix), which would confirm a guess; they are still compared in
their own form, and the patient's erasure clears the hash either way
(`journeys_api.erasures`), finding the claim by its patient key.

`api_idempotency_keys` holds unscoped keys, as the previous version claims them: before the
upgrade, and still during a rolling upgrade or after a rollback, whose old pods must keep
working on this schema. Their run id was derived from the key alone. The first caller to send
such a key again with the same body adopts it (`adopted_by`) and gets that run, so a retry that
spans the upgrade does not start the journey twice; any other caller then gets a run of their
own. Another body adopts nothing: it is not a retry of that request.

Once the broker has acknowledged a key's StartRun, `mark_published` records it, and a retry
(`published`) answers the same run without producing again: the executor keeps an ended run
only for a grace window, after which a second StartRun would start the journey again. Only a
retry in the moment between the acknowledgement and that record produces twice, and the
executor rejects that one while the run's state is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from uuid import UUID

import psycopg
from fastapi import HTTPException
from psycopg_pool import AsyncConnectionPool

from journeys_api.errors import invalid

HEADER_LOC = ("header", "idempotency-key")

# One round trip: adopt an unscoped key with this body if the caller holds none yet, else claim.
# The adoption's insert has no ON CONFLICT: should the caller claim the key meanwhile, the
# unique violation undoes the whole statement, adoption included, and the key stays adoptable.
_CLAIM = """
WITH adopted AS (
    UPDATE api_idempotency_keys SET adopted_by = %(subject)s
    WHERE journey_id = %(journey)s AND key_hash = %(key)s
      AND body_hash IN (%(body)s, %(legacy_body)s)
      AND adopted_by IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM api_idempotency_claims
          WHERE journey_id = %(journey)s AND subject = %(subject)s AND key_hash = %(key)s)
    RETURNING run_id
), kept AS (
    INSERT INTO api_idempotency_claims
        (journey_id, subject, key_hash, body_hash, run_id, created_at, patient_key)
    SELECT %(journey)s, %(subject)s, %(key)s, %(body)s, run_id, now(), %(patient)s FROM adopted
    RETURNING run_id
), claimed AS (
    INSERT INTO api_idempotency_claims
        (journey_id, subject, key_hash, body_hash, run_id, created_at, patient_key)
    SELECT %(journey)s, %(subject)s, %(key)s, %(body)s, %(run)s, now(), %(patient)s
    WHERE NOT EXISTS (SELECT 1 FROM adopted)
    ON CONFLICT (journey_id, subject, key_hash) DO NOTHING
    RETURNING run_id
)
SELECT run_id FROM kept UNION ALL SELECT run_id FROM claimed
"""
# A separate statement: under READ COMMITTED it sees a row a concurrent request just committed.
_EXISTING = """
SELECT body_hash, run_id, erased_at IS NOT NULL FROM api_idempotency_claims
WHERE journey_id = %s AND subject = %s AND key_hash = %s
"""


_PUBLISHED = """
SELECT published_at IS NOT NULL FROM api_idempotency_claims
WHERE journey_id = %s AND subject = %s AND key_hash = %s
"""
_ERASED = """
SELECT erased_at IS NOT NULL FROM api_idempotency_claims
WHERE journey_id = %s AND subject = %s AND key_hash = %s
"""
_MARK_PUBLISHED = """
UPDATE api_idempotency_claims SET published_at = now()
WHERE journey_id = %s AND subject = %s AND key_hash = %s AND published_at IS NULL
"""


def run_id_for(journey_id: UUID, subject: str, key: str) -> UUID:
    # The subject's length first: no other (subject, key) pair reads the same.
    return uuid.uuid5(journey_id, f"idempotency-key:{len(subject)}:{subject}:{key}")


BODY_HASH_PREFIX = "hmac-sha256:"


def _canonical(context: dict[str, Any]) -> bytes:
    """The same JSON object in any key order or spacing reads the same."""
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_hash(context: dict[str, Any], secret: str) -> str:
    """The body's hash as claims store it: keyed, so it confirms no guessed context."""
    digest = hmac.new(secret.encode(), _canonical(context), hashlib.sha256).hexdigest()
    return BODY_HASH_PREFIX + digest


def legacy_body_hash(context: dict[str, Any]) -> str:
    """The body's hash as versions before keyed hashes stored it (and still store it in
    `api_idempotency_keys`): a plain sha256."""
    return hashlib.sha256(_canonical(context)).hexdigest()


def body_matches(stored: str | None, context: dict[str, Any], secret: str) -> bool:
    """Whether a stored hash, keyed or from before, is this body's."""
    if stored is None:
        return False
    if stored.startswith(BODY_HASH_PREFIX):
        return hmac.compare_digest(stored, body_hash(context, secret))
    return hmac.compare_digest(stored, legacy_body_hash(context))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def claim(
    pool: AsyncConnectionPool[Any], journey_id: UUID, subject: str, key: str,
    context: dict[str, Any], patient_key: str | None = None, *, secret: str,
) -> UUID:  # fmt: skip
    """The run id for this caller's key; a 422 naming the header if the caller sent it with
    another body before. `patient_key` names the patient in the claim, so the patient's
    erasure finds it (and clears its body hash) even before the run is projected. `secret`
    keys the body's hash (the patient-key secret)."""
    run_id = run_id_for(journey_id, subject, key)
    hashed_key = key_hash(key)
    # The plain hash only to adopt a key of the previous version's table, which holds that.
    params = {"journey": journey_id, "subject": subject, "key": hashed_key,
              "body": body_hash(context, secret), "legacy_body": legacy_body_hash(context),
              "run": run_id, "patient": patient_key}  # fmt: skip
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute(_CLAIM, params)
            claimed = await cursor.fetchone()
        except psycopg.errors.UniqueViolation:
            # The caller claimed the key while this adopted it: the statement, adoption
            # included, was undone, and the caller's claim is read below.
            claimed = None
        if claimed is not None:
            return UUID(str(claimed[0]))
        cursor = await conn.execute(_EXISTING, (journey_id, subject, hashed_key))
        row = await cursor.fetchone()
    if row is None:  # only if an operator deleted the row in between: the key is free again
        return await claim(pool, journey_id, subject, key, context, patient_key, secret=secret)
    stored_body, stored_run, erased = row
    if erased:
        raise _erased()
    if not body_matches(stored_body, context, secret):
        raise invalid(
            HEADER_LOC,
            "Idempotency-Key was already used by you for this journey with a different "
            "request body",
        )
    return UUID(str(stored_run))


async def require_not_erased(
    conn: psycopg.AsyncConnection[Any], journey_id: UUID, subject: str, key: str
) -> None:
    """The 409 of an erased key, when the patient's erasure marked this claim after the
    request claimed it: checked again under the patient's erasure lock, so the request does
    not start, after the erasure, a run its claim says was erased."""
    cursor = await conn.execute(_ERASED, (journey_id, subject, key_hash(key)))
    row = await cursor.fetchone()
    if row is not None and row[0]:
        raise _erased()


def _erased() -> HTTPException:
    return HTTPException(
        409,
        "Expected an Idempotency-Key whose run can be answered, but the patient data of "
        "its run was erased: send a new request with a new Idempotency-Key",
    )


async def published(
    pool: AsyncConnectionPool[Any], journey_id: UUID, subject: str, key: str
) -> bool:
    """Whether this caller's key has had its StartRun acknowledged by the broker."""
    async with pool.connection() as conn:
        cursor = await conn.execute(_PUBLISHED, (journey_id, subject, key_hash(key)))
        row = await cursor.fetchone()
    return bool(row and row[0])


async def mark_published(
    pool: AsyncConnectionPool[Any], journey_id: UUID, subject: str, key: str
) -> None:
    async with pool.connection() as conn:
        await conn.execute(_MARK_PUBLISHED, (journey_id, subject, key_hash(key)))
