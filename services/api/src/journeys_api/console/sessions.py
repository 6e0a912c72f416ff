"""The console's sign-ins: a random token in an HttpOnly, Secure, SameSite=Strict cookie, its
SHA-256 in PostgreSQL (`api_console_sessions`) with the CSRF token the pages send back.

A session signed in with an API key reads the key's scopes from `api_keys` on every request:
revoking the key, or changing its scopes, takes effect on the next page. A development key's
session holds every scope, and only while the API still has a development key. A session
signed in through the OIDC issuer holds the scopes of its access token, and ends when the
token would have. The session's
principal is the API key's (`key:<name>`, `dev`), so audit records name the same subject as
the key's own requests would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

from journeys_api import keys
from journeys_api.auth import Principal, Scope

COOKIE = "__Host-pj-console"
"""`__Host-`: the browser keeps it only if Secure, for this host, on the path `/`."""
PLAIN_COOKIE = "pj-console"
"""The name when the cookie cannot be Secure (`API_CONSOLE_COOKIE_SECURE=false`)."""
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

_FIND = """
SELECT s.subject, s.csrf, s.key_id, CASE WHEN s.key_id IS NULL THEN s.scopes ELSE k.scopes END
FROM api_console_sessions s
LEFT JOIN api_keys k ON k.key_id = s.key_id AND k.revoked_at IS NULL
WHERE s.token_hash = %s AND s.expires_at > now() AND (s.key_id IS NULL OR k.key_id IS NOT NULL)
"""


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str

    def may(self, scope: Scope) -> bool:
        return scope in self.principal.scopes

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


def cookie_name(secure: bool) -> str:
    return COOKIE if secure else PLAIN_COOKIE


def set_cookie(response: Response, token: str, secure: bool, hours: float) -> None:
    """The session's cookie on `response`: HttpOnly, SameSite=Strict, Secure unless told."""
    response.set_cookie(cookie_name(secure), token, max_age=int(hours * 3600), path="/",
                        httponly=True, secure=secure, samesite="strict")  # fmt: skip


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    def __init__(self, pool: AsyncConnectionPool[Any], lifetime: timedelta, dev_key: bool) -> None:
        self._pool, self._lifetime, self._dev_key = pool, lifetime, dev_key

    async def open(
        self, principal: Principal, api_key: str | None = None, until: datetime | None = None
    ) -> str:
        """A new session for `principal`, signed in with `api_key` (an API key's session
        follows the key) or a token of the OIDC issuer, which ends it by `until` (the access
        token's expiry) at the latest; the cookie's token. Expired sessions are dropped."""
        parsed = keys.parse(api_key) if api_key else None
        key_id = parsed[0] if parsed is not None and principal.subject != "dev" else None
        token = secrets.token_urlsafe(32)
        ends = datetime.now(UTC) + self._lifetime
        ends = min(ends, until) if until is not None else ends
        async with self._pool.connection() as conn:
            await conn.execute("DELETE FROM api_console_sessions WHERE expires_at <= now()")
            await conn.execute(
                "INSERT INTO api_console_sessions (token_hash, subject, key_id, scopes, csrf, "
                "expires_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (_hash(token), principal.subject, key_id, sorted(principal.scopes),
                 secrets.token_urlsafe(32), ends),
            )  # fmt: skip
        return token

    async def find(self, token: str | None) -> Session | None:
        if not token or len(token) > 100:
            return None
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_FIND, (_hash(token),))).fetchone()
        if row is None:
            return None
        subject, csrf, _, scopes = row
        if subject == "dev" and not self._dev_key:  # the development key was taken away
            return None
        return Session(Principal(subject, frozenset(scopes) & frozenset(Scope)), csrf)

    async def close(self, token: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "DELETE FROM api_console_sessions WHERE token_hash = %s", (_hash(token),)
            )
