"""API settings (env prefix `API_`); Kafka, topics, secret and database come unprefixed."""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives import serialization
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from journeys_api import keys
from journeys_api.deadline import AUDIT_RESERVE_SECONDS
from journeys_api.webhook_sources import WebhookSource, valid_source_name
from journeys_contracts.definition import MAX_WAIT_SECONDS
from journeys_runtime.settings import DatabaseSettings, ShreddingSettings

MIB = 1024 * 1024
# Public-key algorithms only: a shared HS* secret would let every verifier mint tokens, and
# "none" is no signature at all. The token's own `alg` header never chooses.
JWT_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                            "ES256", "ES384", "ES512", "EdDSA"})  # fmt: skip


class ApiSettings(DatabaseSettings, ShreddingSettings):
    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore", frozen=True)

    patient_data_sealing: bool = Field(
        True, validation_alias=AliasChoices("JOURNEYS_PATIENT_DATA_SEALING"),
        description="triggers seal the patient id and context under the patient's data key "
        "(start_run.v2), so an erasure, which deletes the key, leaves them unreadable in Kafka; "
        "off: start_run.v1 in clear. Sealed runs are read either way",
    )  # fmt: skip

    max_lookback_seconds: int = Field(
        7 * 86400, ge=0, le=MAX_WAIT_SECONDS,
        validation_alias=AliasChoices("JOURNEYS_MAX_LOOKBACK_SECONDS"),
        description="a journey whose WAIT_FOR_EVENT looks back further (lookback_seconds) is "
        "refused with 422: the engine keeps each patient's recent events this long",
    )  # fmt: skip

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    read_your_writes_timeout_seconds: float = Field(
        5.0, ge=0, le=60, description="longest wait for the projector to reach a produced record"
    )
    read_your_writes_poll_seconds: float = Field(
        0.05, gt=0, le=5, description="re-check interval in case a NOTIFY was missed"
    )
    db_pool_min_size: int = Field(2, ge=0, le=1000)
    db_pool_max_size: int = Field(10, ge=1, le=1000)
    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="longest wait for a pooled connection before a 503"
    )
    db_connect_timeout_seconds: int = Field(5, ge=1, le=60)
    produce_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="longest wait for Kafka to acknowledge before a 503"
    )
    answer_timeout_seconds: float = Field(
        12.0, gt=AUDIT_RESERVE_SECONDS, le=300,
        description="every journeys answer leaves within this; keep it under clients' timeout",
    )  # fmt: skip
    keep_alive_seconds: int = Field(
        75, ge=1, le=3600,
        description="idle connections close after this; keep it above the proxy's and clients'",
    )  # fmt: skip
    max_body_bytes: int = Field(MIB, ge=1024, le=64 * MIB, description="larger bodies get 413")
    max_json_depth: int = Field(
        32, ge=8, le=64,
        description="bodies nesting JSON deeper get 422; at most 64, well under the 200 levels "
        "the services reading Kafka records parse",
    )  # fmt: skip
    max_in_flight: int = Field(
        128, ge=1, le=100_000, description="requests in hand at once; more get 503 at once"
    )
    journey_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="definitions kept in memory (they are immutable)"
    )

    erasure_outbox_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="how often erasure commands Kafka has not acknowledged are sent again",
    )  # fmt: skip

    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    cors_origins: list[str] = Field(
        [], description="browser origins allowed to call the API (JSON list); none by default"
    )
    public_metrics: bool = Field(True, description="serve /metrics on the API's own port")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="also serve /metrics on this port alone (0: no)"
    )
    # Authentication: OIDC bearer tokens (JWT) and API keys; nothing is open without either.
    auth_jwt_issuer: str | None = Field(None, description="`iss` every token must carry")
    auth_jwt_audience: str | None = Field(None, description="`aud` every token must carry")
    auth_jwt_jwks_url: str | None = Field(None, description="https URL of the issuer's JWKS")
    auth_jwt_public_key: str | None = Field(None, description="the issuer's PEM public key")
    auth_jwt_algorithms: list[str] = Field(["RS256"], description="accepted `alg`s")
    auth_jwt_leeway_seconds: int = Field(30, ge=0, le=300, description="clock skew allowed")
    auth_dev_key: SecretStr | None = Field(
        None, description="a key with every scope, for development and tests; refused in "
        "production (`make run` makes one and prints it)",
    )  # fmt: skip

    # Signed webhooks: the signature is the credential, so this holds secrets (the Secret's).
    webhook_sources: dict[str, WebhookSource] = Field(
        {}, description="senders of signed webhooks (`POST /hooks/{source}`), JSON: "
        '`{"<source>": {"secret": "whsec_...", "patientId": "/patient/id", "type": "/event", '
        '...}}`, see "Signed webhooks"; none by default',
    )  # fmt: skip

    # Inbound SMS: the gateway signs its webhook with the account's auth token (Twilio's
    # `X-Twilio-Signature`), the same token the delivery service sends with.
    sms_auth_token: SecretStr | None = Field(
        None, description="the SMS gateway account's auth token, which signs its inbound "
        "webhook (`POST /channels/sms/inbound`); unset: the route answers 404",
    )  # fmt: skip
    sms_inbound_url: str | None = Field(
        None, description="the public URL the gateway calls for inbound SMS, as configured "
        "there (the signature covers it); unset: the URL as the API sees the request, right "
        "only without a proxy or ingress rewriting it",
    )  # fmt: skip
    sms_help_text: str = Field(
        "Care reminders from your clinic. Reply STOP to end messages, START to receive them "
        "again. For medical questions call your clinic.",
        min_length=1, max_length=1600, description="the answer to a HELP (or INFO) text",
    )  # fmt: skip
    sms_max_patients_per_number: int = Field(
        10, ge=1, le=100, description="patients a reply from one number reaches at most "
        "(those most recently texted at it: a family sharing a phone)",
    )  # fmt: skip

    # Imports of clinic events from CSV (POST /imports).
    import_max_bytes: int = Field(
        2 * 1024 * MIB, ge=1024, le=64 * 1024 * MIB,
        description="larger uploads are refused (413) and their import fails",
    )  # fmt: skip

    # The operator console (/console): pages for people, signed in with a cookie.
    console_enabled: bool = Field(True, description="serve the operator console at /console")
    console_assets_dir: str | None = Field(
        None, description="the browser libraries: a directory holding `node_modules` (`npm "
        "ci` in services/api/console) and `dist` (`npm run build`: the journey editor); unset: "
        "services/api/console beside the sources, as `make install` fills it",
    )  # fmt: skip
    console_session_hours: float = Field(
        8, gt=0, le=24 * 30, description="a console sign-in lasts this long"
    )
    console_cookie_secure: bool = Field(
        True, description="the session cookie is Secure (browsers keep it on https and on "
        "127.0.0.1 and localhost); off only behind a proxy that cannot speak https at all",
    )  # fmt: skip
    console_services: dict[str, str] = Field(
        {}, description='the ops URLs whose `/ready` the health page shows, JSON: '
        '`{"executor": "http://127.0.0.1:8001", ...}`',
    )  # fmt: skip
    console_oidc_issuer: str | None = Field(
        None, description="sign people in to the console with this OpenID Connect issuer "
        "(authorization code with PKCE; its discovery document at "
        "`<issuer>/.well-known/openid-configuration`); the access tokens it issues are checked "
        "as the API's bearer tokens (API_AUTH_JWT_*), scopes and all",
    )  # fmt: skip
    console_oidc_client_id: str | None = Field(None, description="the console's client id")
    console_oidc_client_secret: SecretStr | None = Field(
        None, description="the console's client secret (a file of the Secret); unset: a "
        "public client, PKCE alone",
    )  # fmt: skip
    console_oidc_scopes: str = Field(
        "openid " + " ".join(keys.SCOPES),
        description="the scopes a sign-in asks for; the issuer grants what the person may have",
    )  # fmt: skip
    console_public_url: str | None = Field(
        None, description="the console's URL as browsers reach it (`https://journeys.example."
        "org`), for the OIDC redirect; unset: as the request arrived",
    )  # fmt: skip
    console_max_streams: int = Field(
        500,
        ge=1,
        le=100_000,
        description="live pages (run timelines, conversations) open at once; beyond: 503",
    )
    console_stream_poll_seconds: float = Field(
        0.5, gt=0, le=10, description="how often the live pages' poller looks for news"
    )

    @field_validator(
        "auth_jwt_issuer", "auth_jwt_audience", "auth_jwt_jwks_url", "auth_jwt_public_key",
        "auth_dev_key", "sms_auth_token", "sms_inbound_url", "console_oidc_issuer",
        "console_oidc_client_id", "console_oidc_client_secret", "console_public_url",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def jwt_enabled(self) -> bool:
        return self.auth_jwt_issuer is not None

    @field_validator("webhook_sources")
    @classmethod
    def _source_names(cls, value: dict[str, WebhookSource]) -> dict[str, WebhookSource]:
        bad = [name for name in value if not valid_source_name(name)]
        if bad:
            raise ValueError(
                f"webhook source names are [a-z0-9_.-], at most 100, got {sorted(bad)}"
            )
        return value

    @model_validator(mode="after")
    def _pool_sizes_agree(self) -> ApiSettings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("API_DB_POOL_MIN_SIZE must not exceed API_DB_POOL_MAX_SIZE")
        return self

    @model_validator(mode="after")
    def _console_oidc_complete(self) -> ApiSettings:
        if self.console_oidc_issuer is None:
            return self
        if self.console_oidc_client_id is None:
            raise ValueError("API_CONSOLE_OIDC_ISSUER also needs API_CONSOLE_OIDC_CLIENT_ID")
        if not self.jwt_enabled:
            raise ValueError("API_CONSOLE_OIDC_ISSUER needs API_AUTH_JWT_* set: the console "
                             "checks the issuer's access tokens as the API does")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _ports_differ(self) -> ApiSettings:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError("API_METRICS_PORT must differ from API_PORT")
        return self

    @model_validator(mode="after")
    def _auth_complete(self) -> ApiSettings:
        jwt = {"API_AUTH_JWT_ISSUER": self.auth_jwt_issuer,
               "API_AUTH_JWT_AUDIENCE": self.auth_jwt_audience}  # fmt: skip
        sources = (self.auth_jwt_jwks_url, self.auth_jwt_public_key)
        if any(jwt.values()) or any(sources):  # half a configuration must not disable JWTs
            missing = [name for name, value in jwt.items() if not value]
            if missing:
                raise ValueError(f"JWT authentication also needs {', '.join(missing)}")
            if (self.auth_jwt_jwks_url is None) == (self.auth_jwt_public_key is None):
                raise ValueError(
                    "set exactly one of API_AUTH_JWT_JWKS_URL and API_AUTH_JWT_PUBLIC_KEY"
                )
            url = self.auth_jwt_jwks_url
            if url and not url.startswith("https://") and self.environment == "production":
                raise ValueError("API_AUTH_JWT_JWKS_URL must be an https URL in production")
            if self.auth_jwt_public_key is not None:
                try:
                    serialization.load_pem_public_key(self.auth_jwt_public_key.encode())
                except ValueError as exc:
                    raise ValueError("API_AUTH_JWT_PUBLIC_KEY is not a PEM public key") from exc
        bad = sorted(set(self.auth_jwt_algorithms) - JWT_ALGORITHMS)
        if bad or not self.auth_jwt_algorithms:
            raise ValueError(
                f"API_AUTH_JWT_ALGORITHMS must be some of {sorted(JWT_ALGORITHMS)}, got {bad}"
            )
        if self.auth_dev_key is not None:
            if self.environment == "production":
                raise ValueError("API_AUTH_DEV_KEY is for development and tests: not in production")
            if len(self.auth_dev_key.get_secret_value()) < 32:
                raise ValueError("API_AUTH_DEV_KEY must have at least 32 characters")
        return self


@cache
def get_settings() -> ApiSettings:
    return ApiSettings()
