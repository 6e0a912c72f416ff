"""ApiSettings: `API_` variables for the API's own knobs, unprefixed shared ones."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from journeys_api.settings import ApiSettings

SECRET = "s" * 48
# Key-encryption keys of a deployment outside development, where the public one is refused.
KEKS = {"JOURNEYS_SHREDDING_KEKS": "k1=" + base64.b64encode(b"k" * 32).decode(),
        "JOURNEYS_SHREDDING_ACTIVE_KEK": "k1"}  # fmt: skip


def test_patient_data_sealing_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_PATIENT_DATA_SEALING", raising=False)
    assert ApiSettings().patient_data_sealing is True
    monkeypatch.setenv("JOURNEYS_PATIENT_DATA_SEALING", "false")
    assert ApiSettings().patient_data_sealing is False


def test_the_development_kek_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    monkeypatch.setenv("JOURNEYS_PATIENT_KEY_SECRET", SECRET)
    monkeypatch.delenv("JOURNEYS_SHREDDING_KEKS", raising=False)
    monkeypatch.setenv("JOURNEYS_SHREDDING_ACTIVE_KEK", "dev")

    with pytest.raises(ValidationError, match="JOURNEYS_SHREDDING_KEKS"):
        ApiSettings()


def test_defaults_listen_on_localhost_8000_with_a_1_mib_body_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("API_")]:
        monkeypatch.delenv(name)

    settings = ApiSettings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.read_your_writes_timeout_seconds == 5


def test_api_prefixed_and_shared_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "9000")
    monkeypatch.setenv("API_READ_YOUR_WRITES_TIMEOUT_SECONDS", "1.5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/journeys")
    monkeypatch.setenv("JOURNEYS_TOPIC_PREFIX", "tenant-a.")

    settings = ApiSettings()

    assert settings.port == 9000
    assert settings.read_your_writes_timeout_seconds == 1.5
    assert settings.database_url == "postgresql://u@db/journeys"
    assert settings.topic_prefix == "tenant-a."


def test_pool_minimum_above_maximum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_DB_POOL_MIN_SIZE", "8")
    monkeypatch.setenv("API_DB_POOL_MAX_SIZE", "4")

    with pytest.raises(ValidationError, match="API_DB_POOL_MIN_SIZE"):
        ApiSettings()


def test_placeholder_patient_key_secret_is_refused_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    monkeypatch.delenv("JOURNEYS_PATIENT_KEY_SECRET", raising=False)

    with pytest.raises(ValidationError, match="JOURNEYS_PATIENT_KEY_SECRET"):
        ApiSettings()


def test_an_unset_environment_gets_production_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment that forgets JOURNEYS_ENV must not accept the placeholder secret or a
    development key: only an explicit `development` relaxes the rules."""
    monkeypatch.delenv("JOURNEYS_ENV", raising=False)
    monkeypatch.delenv("JOURNEYS_PATIENT_KEY_SECRET", raising=False)
    monkeypatch.delenv("API_AUTH_DEV_KEY", raising=False)

    with pytest.raises(ValidationError, match="JOURNEYS_PATIENT_KEY_SECRET"):
        ApiSettings()
    monkeypatch.setenv("JOURNEYS_PATIENT_KEY_SECRET", SECRET)
    for name, value in KEKS.items():
        monkeypatch.setenv(name, value)
    assert ApiSettings().environment == "production"
    monkeypatch.setenv("API_AUTH_DEV_KEY", "d" * 40)
    with pytest.raises(ValidationError, match="not in production"):
        ApiSettings()


@pytest.mark.parametrize("environment", ["test", "production"])
def test_placeholder_patient_key_secret_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", environment)
    monkeypatch.delenv("JOURNEYS_PATIENT_KEY_SECRET", raising=False)

    with pytest.raises(ValidationError, match="JOURNEYS_PATIENT_KEY_SECRET"):
        ApiSettings()


def test_development_set_explicitly_accepts_the_placeholder_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "development")
    monkeypatch.delenv("JOURNEYS_PATIENT_KEY_SECRET", raising=False)

    assert ApiSettings().environment == "development"


PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
JWT = {"auth_jwt_issuer": "https://idp.example/", "auth_jwt_audience": "journeys"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth_dev_key": "short"}, "at least 32 characters"),
        ({"auth_dev_key": "d" * 40, "JOURNEYS_ENV": "production",
          "JOURNEYS_PATIENT_KEY_SECRET": SECRET, **KEKS}, "not in production"),
        ({"auth_jwt_jwks_url": "https://idp.example/jwks"}, "also needs API_AUTH_JWT_ISSUER"),
        ({**JWT}, "exactly one of"),
        ({**JWT, "auth_jwt_public_key": "not a key"}, "not a PEM public key"),
        ({**JWT, "auth_jwt_jwks_url": "http://idp.example/jwks", "JOURNEYS_ENV": "production",
          "JOURNEYS_PATIENT_KEY_SECRET": SECRET, **KEKS}, "https URL"),
        ({"auth_jwt_algorithms": ["HS256"]}, "API_AUTH_JWT_ALGORITHMS"),
        ({"auth_jwt_algorithms": ["none"]}, "API_AUTH_JWT_ALGORITHMS"),
        ({"metrics_port": 8000}, "must differ from API_PORT"),
    ],
)  # fmt: skip
def test_unsafe_or_half_done_auth_settings_are_refused(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiSettings(**values)  # type: ignore[arg-type]


def test_complete_jwt_settings_and_an_empty_dev_key_are_accepted() -> None:
    settings = ApiSettings(**{**JWT, "auth_jwt_public_key": PEM, "auth_dev_key": ""})  # type: ignore[arg-type]
    assert settings.jwt_enabled
    assert settings.auth_dev_key is None
