"""API settings (env prefix `API_`); Kafka, topics, secret and database come unprefixed."""

from __future__ import annotations

from functools import cache

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from journeys_runtime.settings import DatabaseSettings

MIB = 1024 * 1024


class ApiSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore", frozen=True)

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
    max_body_bytes: int = Field(MIB, ge=1024, le=64 * MIB, description="larger bodies get 413")
    max_in_flight: int = Field(
        128, ge=1, le=100_000, description="requests in hand at once; more get 503 at once"
    )
    journey_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="definitions kept in memory (they are immutable)"
    )

    @model_validator(mode="after")
    def _pool_sizes_agree(self) -> ApiSettings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("API_DB_POOL_MIN_SIZE must not exceed API_DB_POOL_MAX_SIZE")
        return self


@cache
def get_settings() -> ApiSettings:
    return ApiSettings()
