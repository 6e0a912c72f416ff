"""Who is calling, and may they: OIDC bearer tokens (JWT) or API keys, checked per route.

Two ways in: `Authorization: Bearer <JWT>` from the configured issuer, or an API key as
`X-API-Key: pjk_...` (also accepted as `Authorization: Bearer pjk_...`). Each route requires
one scope. No credentials or bad ones: 401 with `WWW-Authenticate`; a missing scope: 403.
The answer never says more than which rule failed: no claim, no key, no patient data.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from journeys_api import keys
from journeys_api.errors import UnavailableError
from journeys_api.settings import ApiSettings

REALM = "patient-journeys"
KEY_HEADER = "X-API-Key"
# Every route that needs credentials lives under one of these.
PROTECTED_PREFIXES = ("/journeys", "/patients", "/events", "/deliveries", "/imports", "/analytics")


class Scope(StrEnum):
    JOURNEYS_WRITE = "journeys:write"
    JOURNEYS_READ = "journeys:read"
    RUNS_TRIGGER = "runs:trigger"
    RUNS_READ = "runs:read"
    RUNS_CANCEL = "runs:cancel"
    PATIENTS_ERASE = "patients:erase"
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    CONSENT_WRITE = "consent:write"
    CONSENT_READ = "consent:read"
    DELIVERIES_READ = "deliveries:read"
    DELIVERIES_WRITE = "deliveries:write"
    IMPORTS_WRITE = "imports:write"
    IMPORTS_READ = "imports:read"
    ANALYTICS_READ = "analytics:read"


assert tuple(Scope) == keys.SCOPES


@dataclass(frozen=True)
class Principal:
    """`subject` is `jwt:<sub>`, `key:<name>` or `dev`: what an audit record names; the
    prefixes keep a token's `sub` from passing for an API key's name."""

    subject: str
    scopes: frozenset[str]


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    challenge = f'Bearer realm="{REALM}"'
    if error:  # RFC 6750: no error code when no credentials came at all
        challenge += f', error="{error}", error_description="{description}"'
    return {"WWW-Authenticate": challenge}


def unauthorized(error: str | None = None, description: str | None = None) -> HTTPException:
    return HTTPException(401, description or "credentials required", _challenge(error, description))


def invalid_request(description: str) -> HTTPException:
    """RFC 6750 3.1: a malformed request, such as two ways of sending a token, is a 400."""
    return HTTPException(400, description, _challenge("invalid_request", description))


def forbidden(scope: Scope) -> HTTPException:
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
    return HTTPException(
        403, f"this route needs the scope {scope}", headers={"WWW-Authenticate": challenge}
    )


_JWT_FAILURES: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token for another audience"),
    (jwt.InvalidIssuerError, "token from another issuer"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
    (jwt.InvalidSignatureError, "token signature invalid"),
]


JWKS_TIMEOUT_SECONDS = 5.0


class Authenticator:
    def __init__(self, settings: ApiSettings, api_keys: keys.ApiKeys) -> None:
        self._settings = settings
        self._keys = api_keys
        # The key set is cached for 5 minutes, not each key for ever: a key the issuer
        # withdraws stops verifying within that time.
        self._jwks = (
            jwt.PyJWKClient(settings.auth_jwt_jwks_url, cache_keys=False, lifespan=300,
                            timeout=JWKS_TIMEOUT_SECONDS)
            if settings.auth_jwt_jwks_url
            else None
        )  # fmt: skip
        dev = settings.auth_dev_key
        self._dev_key = dev.get_secret_value().encode() if dev is not None else None

    async def principal(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer is not None and api_key is not None:
            # RFC 6750 2: one way per request. Two would let a bad one ride on a good one.
            raise invalid_request("send one credential, not two")
        token = api_key or bearer
        if not token:
            raise unauthorized()
        if self._dev_key is not None and hmac.compare_digest(token.encode(), self._dev_key):
            return Principal("dev", frozenset(Scope))
        if api_key is not None or token.startswith(f"{keys.PREFIX}_"):
            found = await self._keys.scopes(token)
            if found is None:
                raise unauthorized("invalid_token", "unknown or revoked API key")
            name, scopes = found
            return Principal(f"key:{name}", scopes)
        return await self._from_jwt(token)

    async def _from_jwt(self, token: str) -> Principal:
        s = self._settings
        if not s.jwt_enabled:
            raise unauthorized("invalid_token", "bearer tokens are not accepted here")
        try:
            key: Any = s.auth_jwt_public_key
            if self._jwks is not None:
                # A PyJWK, not its raw key: PyJWT then also requires the token's `alg` to be
                # the key's own. urllib under the hood: off the event loop.
                key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token, key, algorithms=s.auth_jwt_algorithms, audience=s.auth_jwt_audience,
                issuer=s.auth_jwt_issuer, leeway=s.auth_jwt_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWKClientConnectionError as exc:
            # Our side cannot check the token: not the client's fault, so not a 401.
            raise UnavailableError("identity provider", "signing keys unavailable") from exc
        except jwt.PyJWTError as exc:
            reason = next((r for t, r in _JWT_FAILURES if isinstance(exc, t)), "token invalid")
            raise unauthorized("invalid_token", reason) from exc
        except (TypeError, ValueError) as exc:  # a key that cannot verify this token's `alg`
            raise unauthorized("invalid_token", "token invalid") from exc
        return Principal(f"jwt:{claims['sub']}", _scopes(claims))


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth's space-separated `scope`, or a `scp` list as some issuers send; anything else
    grants nothing."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        names = raw.split()
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        names = raw
    else:
        names = []
    return frozenset(names) & frozenset(Scope)


# Documented in OpenAPI as two alternative schemes; read here without auto errors.
_bearer = HTTPBearer(auto_error=False, description="OIDC access token (JWT) or an API key")
_api_key = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="API key `pjk_...`")


def require(scope: Scope) -> Any:
    """A dependency: the caller's principal, if they hold `scope`."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.principal(
            bearer.credentials if bearer is not None else None, api_key
        )
        request.state.principal = principal
        if scope not in principal.scopes:
            raise forbidden(scope)
        return principal

    return Security(dependency, scopes=[scope.value])


class CredentialsRequired:
    """401 at once, before the body is read, for a request to a protected route (`/journeys`,
    `/patients`, `/events`, `/deliveries`) with no credentials.

    Without it, a caller with no credentials could learn from 413 and 422 answers how the API
    reads bodies, since FastAPI parses the body before it runs the route's dependencies. Only
    the presence of a credential is checked here; the route checks the credential itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _protected(scope["path"]):
            headers = Headers(scope=scope)
            if not headers.get("authorization") and not headers.get(KEY_HEADER):
                exc = unauthorized()
                response = JSONResponse(
                    {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _protected(path: str) -> bool:
    return any(path == p or path.startswith(f"{p}/") for p in PROTECTED_PREFIXES)
