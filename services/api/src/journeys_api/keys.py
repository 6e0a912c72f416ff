"""API keys of machine clients: `pjk_<id>_<secret>`, kept only as a salted hash.

The secret is 256 random bits, so one salted SHA-256 is enough (a slow password hash buys
nothing against a key nobody can guess, and would cost every request). The key is shown
once, when it is made; revoking keeps the row, so an audit record still names the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

PREFIX = "pjk"
SCOPES = (
    "journeys:write", "journeys:read", "runs:trigger", "runs:read", "runs:cancel",
    "patients:erase", "events:write", "events:read", "consent:write", "consent:read",
    "deliveries:read", "deliveries:write", "imports:write", "imports:read",
    "analytics:read",
)  # fmt: skip


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{PREFIX}_{self.key_id}_{self.secret}"


@dataclass(frozen=True)
class KeyInfo:
    name: str
    key_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 16 or not secret:
        return None
    return key_id, secret


def digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def matches(salt: bytes, stored: bytes, secret: str) -> bool:
    return hmac.compare_digest(digest(salt, secret), stored)


class ApiKeys:
    """The request path: one indexed lookup by key id, then a constant-time comparison."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def scopes(self, token: str) -> tuple[str, frozenset[str]] | None:
        """(name, scopes) of a valid, unrevoked key; None for anything else."""
        parsed = parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT name, scopes, salt, secret_hash FROM api_keys "
                "WHERE key_id = %s AND revoked_at IS NULL", (key_id,),
            )).fetchone()  # fmt: skip
        if row is None or not matches(bytes(row[2]), bytes(row[3]), secret):
            return None
        return row[0], frozenset(row[1])


# The admin side (`python -m journeys_api keys ...`): plain connections, one call each.


class KeyAdminError(Exception):
    """A key operation that cannot be done; the message says why."""


def create(database_url: str, name: str, scopes: list[str]) -> str:
    """Store a new key and return it: the only time it is ever visible."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyAdminError(f"scopes must be some of {', '.join(SCOPES)}; got {unknown or 'none'}")
    new = NewKey(secrets.token_hex(8), secrets.token_urlsafe(32))
    salt = secrets.token_bytes(16)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, name, scopes, salt, secret_hash) "
                "VALUES (%s, %s, %s, %s, %s)",
                (new.key_id, name, sorted(set(scopes)), salt, digest(salt, new.secret)),
            )
    except psycopg.errors.UniqueViolation as exc:
        # Revoked keys keep their names: audit records say `key:<name>`, which must mean one key.
        raise KeyAdminError(
            f"a key named {name!r} exists already (names are never reused, revoked or not)"
        ) from exc
    return new.token


def revoke(database_url: str, name: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        done = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
            (name,),
        )
        if done.rowcount != 1:
            raise KeyAdminError(f"no active key named {name!r}")


def listing(database_url: str) -> list[KeyInfo]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, key_id, scopes, created_at, revoked_at FROM api_keys ORDER BY name"
        ).fetchall()
    return [KeyInfo(r[0], r[1], tuple(r[2]), r[3], r[4]) for r in rows]
