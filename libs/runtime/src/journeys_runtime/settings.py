"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys_runtime import crash

DEV_PATIENT_KEY_SECRET = "dev-only-patient-key-secret-change-me"  # noqa: S105 - refused outside dev


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class CommonSettings(BaseSettings):
    """Kafka, topics and the patient-key secret, read from unprefixed variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=_env("JOURNEYS_ENV")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix: str = Field("", validation_alias=_env("JOURNEYS_TOPIC_PREFIX"))
    partitions: int = Field(4, ge=1, le=1024, validation_alias=_env("JOURNEYS_PARTITIONS"))
    patient_key_secret: SecretStr = Field(
        SecretStr(DEV_PATIENT_KEY_SECRET), validation_alias=_env("JOURNEYS_PATIENT_KEY_SECRET")
    )
    log_level: str = Field("INFO", validation_alias=_env("JOURNEYS_LOG_LEVEL"))
    log_patient_data: bool = Field(False, validation_alias=_env("JOURNEYS_LOG_PATIENT_DATA"))
    crash_at: str | None = Field(
        None, validation_alias=_env("JOURNEYS_CRASH_AT"),
        description="test-only crash point, see journeys_runtime.crash; refused in production",
    )  # fmt: skip

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> CommonSettings:
        secret = self.patient_key_secret.get_secret_value()
        if self.environment == "production" and (
            secret == DEV_PATIENT_KEY_SECRET or len(secret) < 32
        ):
            raise ValueError(
                "JOURNEYS_PATIENT_KEY_SECRET must be set to a random value of at least 32 "
                "characters outside development"
            )
        if self.crash_at:
            if self.environment == "production":
                raise ValueError("JOURNEYS_CRASH_AT is a test-only fault point: not in production")
            crash.parse(self.crash_at)
        return self


class DatabaseSettings(CommonSettings):
    """Adds the PostgreSQL URL, for the services that own tables."""

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/journeys", validation_alias=_env("DATABASE_URL")
    )
