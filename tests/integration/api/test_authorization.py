"""Every route, every kind of credential gives the status it must: the authorization matrix.

Real PostgreSQL (API keys) and Kafka behind the app; JWTs signed here with RSA keys made
for the session, the API configured with the public one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as ec_keys
from cryptography.hazmat.primitives.asymmetric import rsa

from journeys_api import keys
from journeys_contracts.audit import outcome_of
from journeys_runtime.topics import Topics
from journeys_stack.ports import free_port
from tests.integration.api.conftest import api_settings, serving
from tests.integration.api.helpers import audit_records
from tests.integration.api.projector_sim import simulated_projector
from tests.unit.api.journeys import linear_journey

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "https://idp.example.test/", "patient-journeys-api"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNING, OTHER = _rsa(), _rsa()
PUBLIC_PEM = SIGNING.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str
    allowed: int  # the status once authorized (404 for unknown ids: past auth, into the route)
    body: Any = None


ROUTES = [
    Route("POST", "/journeys", "journeys:write", 201, linear_journey("auth", "hello")),
    Route("GET", "/journeys", "journeys:read", 200),
    Route("GET", f"/journeys/{UNKNOWN}", "journeys:read", 404),
    Route("POST", f"/journeys/{UNKNOWN}/trigger", "runs:trigger", 404, {"id": "p-1"}),
    Route("GET", "/journeys/runs", "runs:read", 200),
    Route("POST", "/journeys/runs/search", "runs:read", 200, {"patientId": "p-1"}),
    Route("GET", f"/journeys/runs/{UNKNOWN}", "runs:read", 404),
    Route("GET", f"/journeys/runs/{UNKNOWN}/events", "runs:read", 404),
    Route("POST", f"/journeys/runs/{UNKNOWN}/cancel", "runs:cancel", 404),
    # Erasing the same patient again while it is pending answers the same erasure: 202 each time.
    Route("POST", "/patients/erasures", "patients:erase", 202, {"patientId": "p-erase"}),
    Route("DELETE", "/patients/p-erase-by-path", "patients:erase", 202),
    Route("GET", f"/patients/erasures/{UNKNOWN}", "patients:erase", 404),
    Route("POST", "/events", "events:write", 202, {"eventId": "e", "patientId": "p", "type": "t"}),
    Route("GET", "/events/never-sent", "events:read", 404),
    Route("PUT", "/patients/p-consent/consent", "consent:write", 202, {"channels": {"sms": False}}),
    Route("GET", "/patients/p-consent/consent", "consent:read", 200),
    Route("POST", "/patients/conversation", "runs:read", 200, {"patientId": "p-1"}),
    Route("GET", "/deliveries", "deliveries:read", 200),
    # Past auth, a JSON body is not a CSV upload: 415.
    Route("POST", "/imports", "imports:write", 415, {"rows": []}),
    Route("GET", f"/imports/{UNKNOWN}", "imports:read", 404),
    Route("GET", "/imports", "imports:read", 200),
    Route("GET", f"/imports/{UNKNOWN}/errors", "imports:read", 404),
    Route("GET", "/analytics/weekly", "analytics:read", 200),
    Route("POST", f"/deliveries/{UNKNOWN}/retry", "deliveries:write", 404),
]


def token(scope: str, *, key: Any = SIGNING, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-ehr", "iat": now, "exp": now + 300,
            "scope": scope, **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm=alg)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_part(alg: str, scope: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 300,
              "scope": scope}  # fmt: skip
    header = json.dumps({"alg": alg, "typ": "JWT"}).encode()
    return f"{_b64(header)}.{_b64(json.dumps(claims).encode())}"


def unsigned(scope: str) -> str:
    """`alg: none`: a token with no signature at all."""
    return _unsigned_part("none", scope) + "."


def hs256_with_public_key(scope: str) -> str:
    """The classic confusion: HMAC-signed with the server's public key as the secret."""
    signing_input = _unsigned_part("HS256", scope)
    mac = hmac.new(PUBLIC_PEM, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


@dataclass(frozen=True)
class Credential:
    name: str
    headers: Callable[[Route], dict[str, str]]
    expect: Callable[[Route], int]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def other_scope(route: Route) -> str:
    return next(s for s in keys.SCOPES if s != route.scope)


@pytest.fixture
async def secured(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = api_settings(
        kafka_bootstrap, read_models, topics, auth_dev_key=None,
        auth_jwt_issuer=ISSUER, auth_jwt_audience=AUDIENCE,
        auth_jwt_public_key=PUBLIC_PEM.decode(),
    )  # fmt: skip
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        c.headers.clear()  # no credentials unless a case sends them
        yield c, read_models


async def test_authorization_matrix(
    secured: tuple[httpx.AsyncClient, str], kafka_bootstrap: str, topics: Topics
) -> None:
    client, database_url = secured
    by_scope = {s: keys.create(database_url, f"key-{s}", [s]) for s in keys.SCOPES}
    revoked = keys.create(database_url, "revoked", list(keys.SCOPES))
    keys.revoke(database_url, "revoked")
    ok: Callable[[Route], int] = lambda r: r.allowed  # noqa: E731
    unauthorized: Callable[[Route], int] = lambda r: 401  # noqa: E731
    forbidden: Callable[[Route], int] = lambda r: 403  # noqa: E731
    cases = [
        Credential("no credentials", lambda r: {}, unauthorized),
        Credential("right scope (JWT)", lambda r: bearer(token(r.scope)), ok),
        Credential("every scope but this (JWT)",
                   lambda r: bearer(token(" ".join(set(keys.SCOPES) - {r.scope}))), forbidden),
        Credential("expired token",
                   lambda r: bearer(token(r.scope, exp=int(time.time()) - 120)), unauthorized),
        Credential("not yet valid",
                   lambda r: bearer(token(r.scope, nbf=int(time.time()) + 120)), unauthorized),
        Credential("wrong audience",
                   lambda r: bearer(token(r.scope, aud="another-api")), unauthorized),
        Credential("wrong issuer", lambda r: bearer(token(r.scope, iss="https://evil/")),
                   unauthorized),
        Credential("alg none", lambda r: bearer(unsigned(r.scope)), unauthorized),
        Credential("wrong key", lambda r: bearer(token(r.scope, key=OTHER)), unauthorized),
        Credential("HS256 with the public key", lambda r: bearer(hs256_with_public_key(r.scope)),
                   unauthorized),
        Credential("garbage bearer", lambda r: bearer("not-a-token"), unauthorized),
        Credential("token without exp",
                   lambda r: bearer(jwt.encode({k: v for k, v in _claims(r.scope).items()
                                                if k != "exp"}, SIGNING, algorithm="RS256")),
                   unauthorized),
        Credential("bearer and API key at once",  # RFC 6750 3.1: invalid_request, 400
                   lambda r: {**bearer(token(r.scope)), "X-API-Key": by_scope[r.scope]},
                   lambda r: 400),
        Credential("right scope (API key)", lambda r: {"X-API-Key": by_scope[r.scope]}, ok),
        Credential("right scope (API key as bearer)", lambda r: bearer(by_scope[r.scope]), ok),
        Credential("wrong scope (API key)",
                   lambda r: {"X-API-Key": by_scope[other_scope(r)]}, forbidden),
        Credential("revoked API key", lambda r: {"X-API-Key": revoked}, unauthorized),
        Credential("tampered API key",
                   lambda r: {"X-API-Key": by_scope[r.scope][:-2] + "zz"}, unauthorized),
    ]  # fmt: skip
    failures = []
    answered: list[tuple[str, bool, httpx.Response]] = []
    for route in ROUTES:
        for case in cases:
            headers = case.headers(route)
            response = await client.request(route.method, route.path, json=route.body,
                                            headers=headers)  # fmt: skip
            answered.append((case.name, bool(headers), response))
            expected = case.expect(route)
            if response.status_code != expected:
                failures.append(f"{route.method} {route.path} / {case.name}: "
                                f"{response.status_code} {response.text[:120]}")  # fmt: skip
            if response.status_code in (400, 401):
                assert response.headers["WWW-Authenticate"].startswith('Bearer realm="')
            if response.status_code == 403:
                assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert not failures, "\n".join(failures)
    assert len(ROUTES) * len(cases) == 432
    await _each_answer_has_its_audit_record(answered, kafka_bootstrap, topics)


async def _each_answer_has_its_audit_record(
    answered: list[tuple[str, bool, httpx.Response]], bootstrap: str, topics: Topics
) -> None:
    """Every request that presented credentials, allowed or not, left exactly one record with
    its status; a request with none was refused before routing and left none."""
    records = await audit_records(bootstrap, topics)
    expected = {r.headers["X-Request-ID"]: (name, r) for name, sent, r in answered if sent}
    assert set(records) == set(expected)
    for request_id, (name, response) in expected.items():
        record = records[request_id]
        assert record.status == response.status_code, name
        assert record.outcome == outcome_of(response.status_code), name
        if response.status_code in (400, 401):  # credentials refused: nobody identified
            assert record.subject is None, name
        else:
            assert record.subject is not None, name
            assert record.subject.startswith(("jwt:", "key:")), name
    assert len(records) == len(ROUTES) * 17


async def test_probes_stay_open(secured: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = secured
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code in (200, 503)  # open: never 401


class _Jwks(http.server.BaseHTTPRequestHandler):
    document: bytes = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def jwks_server(keys_by_id: dict[str, Any]) -> Iterator[str]:
    """An issuer's JWKS endpoint on loopback, holding the public halves of `keys_by_id`."""
    jwks = []
    for kid, private in keys_by_id.items():
        public = private.public_key()
        if isinstance(private, rsa.RSAPrivateKey):
            jwk, alg = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True), "RS256"
        else:
            jwk, alg = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True), "ES256"
        jwks.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    handler = type("Handler", (_Jwks,), {"document": json.dumps({"keys": jwks}).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_tokens_verified_through_the_issuers_jwks(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    ec = ec_keys.generate_private_key(ec_keys.SECP256R1())
    with jwks_server({"rsa-1": SIGNING, "ec-1": ec}) as url:
        settings = api_settings(
            kafka_bootstrap, read_models, topics, auth_dev_key=None, auth_jwt_issuer=ISSUER,
            auth_jwt_audience=AUDIENCE, auth_jwt_jwks_url=url,
        )  # fmt: skip
        async with serving(settings) as client:
            client.headers.clear()

            async def status(key: Any, alg: str, kid: str) -> int:
                token = jwt.encode(_claims("journeys:read"), key, algorithm=alg,
                                   headers={"kid": kid})  # fmt: skip
                return (await client.get("/journeys", headers=bearer(token))).status_code

            assert await status(SIGNING, "RS256", "rsa-1") == 200
            # RS256 claimed for the EC key: refused, never a 500.
            assert await status(SIGNING, "RS256", "ec-1") == 401
            # A real ES256 token, but ES256 is not among the accepted algorithms.
            assert await status(ec, "ES256", "ec-1") == 401
            assert await status(SIGNING, "RS256", "gone") == 401
    # The issuer's keys out of reach: our side cannot check, so 503, not the client's 401.
    settings = api_settings(
        kafka_bootstrap, read_models, topics, auth_dev_key=None, auth_jwt_issuer=ISSUER,
        auth_jwt_audience=AUDIENCE, auth_jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks",
    )  # fmt: skip
    async with serving(settings) as client:
        client.headers.clear()
        token = jwt.encode(_claims("journeys:read"), SIGNING, algorithm="RS256",
                           headers={"kid": "rsa-1"})  # fmt: skip
        response = await client.get("/journeys", headers=bearer(token))
        assert response.status_code == 503
        assert "Retry-After" in response.headers


def _claims(scope: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-ehr", "iat": now, "exp": now + 300,
            "scope": scope}  # fmt: skip
