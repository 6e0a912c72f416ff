"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from journeys_runtime import crash
from journeys_runtime.keyring import DEV_KEKS, Keyring, KeyringError
from journeys_runtime.topics import Retention

# A directory of files named like the variables (`DATABASE_URL`, ...), each holding one value:
# how Kubernetes hands Secrets over without putting them in the environment.
SECRETS_DIR_VARIABLE = "JOURNEYS_SECRETS_DIR"
# Refused in every environment but development (see `_refuse_placeholder_secret`).
DEV_PATIENT_KEY_SECRET = "dev-only-patient-key-secret-change-me"  # noqa: S105  # nosec B105


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class CommonSettings(BaseSettings):
    """Kafka, topics and the patient-key secret, read from unprefixed variables."""

    # A refused value may be a secret: errors name the setting, never quote what it held.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the files of `$JOURNEYS_SECRETS_DIR` when it is set."""
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if secrets_dir:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    # Production rules unless development is chosen explicitly: a deployment that forgets the
    # variable must not accept the placeholder secret or a development key.
    environment: Literal["development", "test", "production"] = Field(
        "production", validation_alias=_env("JOURNEYS_ENV"),
        description="`development` relaxes the secret rules; `test` and `production` do not",
    )  # fmt: skip
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix: str = Field("", validation_alias=_env("JOURNEYS_TOPIC_PREFIX"))
    partitions: int = Field(4, ge=1, le=1024, validation_alias=_env("JOURNEYS_PARTITIONS"))
    create_topics: bool = Field(
        True, validation_alias=_env("JOURNEYS_CREATE_TOPICS"),
        description="create missing topics at start; off where a topics job or operator owns them",
    )  # fmt: skip
    patient_key_secret: SecretStr = Field(
        SecretStr(DEV_PATIENT_KEY_SECRET), validation_alias=_env("JOURNEYS_PATIENT_KEY_SECRET")
    )
    log_level: str = Field("INFO", validation_alias=_env("JOURNEYS_LOG_LEVEL"))
    # Every service that creates a missing topic declares it as the topics job does, so these
    # are read by all; the topics job restores them on topics that exist.
    commands_retention_days: int = Field(
        Retention.commands_days, ge=1, le=365,
        validation_alias=_env("JOURNEYS_COMMANDS_RETENTION_DAYS"),
    )  # fmt: skip
    events_retention_days: int = Field(
        Retention.events_days, ge=1, le=36500,
        validation_alias=_env("JOURNEYS_EVENTS_RETENTION_DAYS"),
    )  # fmt: skip
    sealed_events_retention_days: int = Field(
        Retention.sealed_events_days, ge=1, le=36500,
        validation_alias=_env("JOURNEYS_SEALED_EVENTS_RETENTION_DAYS"),
    )  # fmt: skip
    dlq_retention_days: int = Field(
        Retention.dlq_days, ge=1, le=3650, validation_alias=_env("JOURNEYS_DLQ_RETENTION_DAYS")
    )
    audit_retention_days: int = Field(
        Retention.audit_days, ge=1, le=36500,
        validation_alias=_env("JOURNEYS_AUDIT_RETENTION_DAYS"),
    )  # fmt: skip
    deliveries_retention_days: int = Field(
        Retention.deliveries_days, ge=1, le=90,
        validation_alias=_env("JOURNEYS_DELIVERIES_RETENTION_DAYS"),
    )  # fmt: skip
    # At most a week each: how long an ended or erased run's state stays on disk depends on it.
    changelog_compaction_lag_hours: int = Field(
        Retention.changelog_compaction_lag_hours, ge=1, le=168,
        validation_alias=_env("JOURNEYS_CHANGELOG_COMPACTION_LAG_HOURS"),
    )  # fmt: skip
    changelog_tombstone_retention_hours: int = Field(
        Retention.changelog_tombstone_hours, ge=1, le=168,
        validation_alias=_env("JOURNEYS_CHANGELOG_TOMBSTONE_RETENTION_HOURS"),
    )  # fmt: skip
    setup_timeout_seconds: float = Field(
        300.0, gt=0, le=3600, validation_alias=_env("JOURNEYS_SETUP_TIMEOUT_SECONDS"),
        description="how long the topics command and `wait-for-setup` keep trying",
    )  # fmt: skip
    crash_at: str | None = Field(
        None, validation_alias=_env("JOURNEYS_CRASH_AT"),
        description="test-only crash point, see journeys_runtime.crash; refused in production",
    )  # fmt: skip

    @property
    def retention(self) -> Retention:
        """What `Topics` declares for each topic's retention and compaction."""
        return Retention(
            commands_days=self.commands_retention_days,
            events_days=self.events_retention_days,
            sealed_events_days=self.sealed_events_retention_days,
            dlq_days=self.dlq_retention_days,
            audit_days=self.audit_retention_days,
            deliveries_days=self.deliveries_retention_days,
            changelog_compaction_lag_hours=self.changelog_compaction_lag_hours,
            changelog_tombstone_hours=self.changelog_tombstone_retention_hours,
        )

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> CommonSettings:
        secret = self.patient_key_secret.get_secret_value()
        if self.environment != "development" and (
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


class TopicSettings(CommonSettings):
    """What `python -m journeys_runtime topics` declares beyond the partition count."""

    topic_replication_factor: int = Field(
        1, ge=1, le=32, validation_alias=_env("JOURNEYS_TOPIC_REPLICATION_FACTOR")
    )
    topic_min_insync_replicas: int = Field(
        1, ge=1, le=32, validation_alias=_env("JOURNEYS_TOPIC_MIN_INSYNC_REPLICAS")
    )

    @model_validator(mode="after")
    def _isr_fits(self) -> TopicSettings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                "JOURNEYS_TOPIC_MIN_INSYNC_REPLICAS must not exceed "
                "JOURNEYS_TOPIC_REPLICATION_FACTOR"
            )
        return self


class ShreddingSettings(CommonSettings):
    """Adds the key-encryption keys, for the services that wrap or unwrap patients' data keys.

    A mix-in for the API and the executor once they seal patient data; the projector and the
    scheduler never see a key.
    """

    shredding_keks: SecretStr = Field(
        SecretStr(DEV_KEKS), validation_alias=_env("JOURNEYS_SHREDDING_KEKS"),
        description="`id=base64[,id=base64...]`, 32 bytes each; a file of the Secret",
    )  # fmt: skip
    shredding_active_kek: str = Field(
        "", validation_alias=_env("JOURNEYS_SHREDDING_ACTIVE_KEK"),
        description="the id of the KEK that wraps new data keys; required outside development",
    )  # fmt: skip

    @property
    def keyring(self) -> Keyring:
        keks = self.shredding_keks.get_secret_value()
        active = self.shredding_active_kek
        if not active and self.environment == "development" and "," not in keks:
            active = keks.partition("=")[0].strip()
        if not active:
            raise KeyringError("JOURNEYS_SHREDDING_ACTIVE_KEK must name the KEK that wraps new "
                               "data keys outside development")  # fmt: skip
        return Keyring.parse(keks, active)

    @model_validator(mode="after")
    def _refuse_unusable_keks(self) -> ShreddingSettings:
        if self.environment != "development" and self.keyring.holds_dev_kek():
            raise ValueError(
                "JOURNEYS_SHREDDING_KEKS must be set to random keys outside development; the "
                "development key is public"
            )
        return self


class DatabaseSettings(CommonSettings):
    """Adds the PostgreSQL URL, for the services that own tables."""

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/journeys", validation_alias=_env("DATABASE_URL")
    )
