"""Importer settings (env prefix `IMPORTER_`); Kafka, topics, secrets and database come
unprefixed, as every service's."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from pydantic import AliasChoices, Field, StringConstraints, field_validator
from pydantic_settings import SettingsConfigDict

from journeys_runtime.settings import DatabaseSettings, ShreddingSettings

WEBHOOK_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
WebhookName = Annotated[str, StringConstraints(pattern=WEBHOOK_NAME)]


class ImporterSettings(DatabaseSettings, ShreddingSettings):
    model_config = SettingsConfigDict(env_prefix="IMPORTER_", extra="ignore", frozen=True)

    batch_rows: int = Field(
        2000, ge=1, le=100_000, description="rows sent to Kafka and checkpointed together"
    )
    lease_seconds: float = Field(
        60.0, ge=5, le=3600, description="an import whose importer has not checkpointed for "
        "this long is taken over by another",
    )  # fmt: skip
    progress_webhook_url: str | None = Field(
        None, description="a Slack-compatible incoming webhook told when an import starts, "
        "every IMPORTER_PROGRESS_SECONDS while it runs, and when it ends; unset: none",
    )  # fmt: skip
    progress_webhooks: dict[WebhookName, str] = Field(
        {}, description="named Slack-compatible webhooks an upload may ask for instead "
        "(`POST /imports?notify=<name>`), JSON `{\"name\": \"https://...\"}`: a file of the "
        "Secret. Only these URLs are ever called: an upload names, never gives, one",
    )  # fmt: skip
    progress_seconds: float = Field(10.0, ge=1, le=3600)
    error_rows_days: int = Field(
        30, ge=0, le=3650, description="the cells of rejected rows (the file the clinic fixes "
        "and uploads again) are dropped this many days after their import ended",
    )  # fmt: skip
    produce_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="longest wait for Kafka to acknowledge a batch before "
        "it is sent again",
    )  # fmt: skip
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(8006, ge=0, le=65535, description="0 picks a free port")
    patient_data_sealing: bool = Field(
        True, validation_alias=AliasChoices("JOURNEYS_PATIENT_DATA_SEALING"),
        description="seal events (record_patient_event.v2) as the API does",
    )  # fmt: skip

    @field_validator("progress_webhook_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value


@cache
def get_settings() -> ImporterSettings:
    return ImporterSettings()
