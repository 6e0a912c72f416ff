"""Scheduler settings (env prefix `SCHEDULER_`)."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from journeys_runtime.settings import DatabaseSettings


class SchedulerSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", extra="ignore", frozen=True)

    ops_host: str = "127.0.0.1"
    ops_port: int = Field(8002, ge=0, le=65535)
    group_id: str = Field("journeys-scheduler", description="consumer group, after the prefix")
    window_seconds: float = Field(60.0, gt=0, le=3600, description="in-memory look-ahead")
    window_max_entries: int = Field(50_000, ge=10, description="timers held in memory at most")
    fire_batch_size: int = Field(1000, ge=1, le=10_000, description="FireTimers per round trip")
    catch_up_seconds: float = Field(
        5.0, ge=0, le=300, description="after an assignment, hold fires at most this long "
        "while the consumer reads the events written meanwhile",
    )  # fmt: skip
    migrate_on_start: bool = Field(True, description="apply migrations before serving")
    pool_max_size: int = Field(4, ge=2, le=64)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


@cache
def get_settings() -> SchedulerSettings:
    return SchedulerSettings()
