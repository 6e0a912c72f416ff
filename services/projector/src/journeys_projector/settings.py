"""Projector settings (env prefix `PROJECTOR_`); the database and Kafka come unprefixed."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from journeys_runtime.settings import DatabaseSettings


class ProjectorSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROJECTOR_", extra="ignore", frozen=True)

    ops_host: str = "127.0.0.1"
    ops_port: int = Field(8003, ge=0, le=65535, description="0 picks a free port")
    batch_max_records: int = Field(1000, ge=1, le=100_000, description="records per transaction")
    group_id: str | None = Field(
        None, description="consumer group; default `<JOURNEYS_TOPIC_PREFIX>journeys-projector`"
    )
    poll_timeout_ms: int = Field(200, ge=10, le=10_000, description="longest wait for records")
    retry_max_seconds: float = Field(5.0, gt=0, le=300, description="cap of the retry backoff")

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"{self.topic_prefix}journeys-projector"


@cache
def get_settings() -> ProjectorSettings:
    return ProjectorSettings()
