"""A small OpenID Connect issuer on loopback, for the console's sign-in tests: a real HTTP
server speaking the authorization code flow with PKCE. `/authorize` signs in `user` at once
(no login form: the browser test is about our side), and refuses a request without an S256
code challenge; `/token` refuses a code whose verifier does not match its challenge, or a
code used twice. Tokens are RS256 JWTs, their keys at `/jwks`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "patient-journeys"
CLIENT_ID = "console"
KEY_ID = "test-key"


@dataclass
class Provider:
    """`user`: the subject `/authorize` signs in, and the scopes its access tokens carry."""

    subject: str = "care-lead@example.org"
    scopes: str = "journeys:read runs:read"
    token_seconds: int = 600
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _jwt(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + self.token_seconds, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KEY_ID})

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Where the browser goes next: back to the client with a code, or with an error."""
        back = query.get("redirect_uri", "")
        if (query.get("response_type") != "code" or query.get("client_id") != CLIENT_ID
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge")):  # fmt: skip
            self.refused.append("authorize: " + json.dumps(sorted(query)))
            return (
                f"{back}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
            )
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": query["code_challenge"], "nonce": query.get("nonce"),
                            "redirect_uri": back}  # fmt: skip
        return f"{back}?{urlencode({'code': code, 'state': query.get('state', '')})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (grant is None or digest.rstrip(b"=").decode() != grant["challenge"]
                or form.get("redirect_uri") != grant["redirect_uri"]):  # fmt: skip
            self.refused.append("token")
            return 400, {"error": "invalid_grant"}
        access = self._jwt({"sub": self.subject, "aud": AUDIENCE, "scope": self.scopes})
        identity = self._jwt({"sub": self.subject, "aud": CLIENT_ID, "nonce": grant["nonce"]})
        return 200, {"access_token": access, "id_token": identity, "token_type": "Bearer",
                     "expires_in": self.token_seconds}  # fmt: skip

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.metadata())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(query))
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    self._json(*provider.token(form))
                else:
                    self._json(404, {"error": "not_found"})

            def log_message(self, *_: object) -> None:  # quiet: pytest shows what fails
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def env(self) -> dict[str, str]:
        """The API's settings for this issuer: its tokens as bearer tokens, and the console's
        sign-in through it (a public client: PKCE alone)."""
        return {
            "API_AUTH_JWT_ISSUER": self.issuer,
            "API_AUTH_JWT_AUDIENCE": AUDIENCE,
            "API_AUTH_JWT_JWKS_URL": f"{self.issuer}/jwks",
            "API_CONSOLE_OIDC_ISSUER": self.issuer,
            "API_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
        }
