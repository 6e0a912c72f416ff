"""Executor settings (env prefix `EXECUTOR_`)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from journeys_runtime.settings import CommonSettings


class ExecutorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", extra="ignore", frozen=True)

    app_id: str = "journeys-executor"
    ops_host: str = "127.0.0.1"
    ops_port: int = 8001
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://")
    data_dir: str = Field(".data/executor", description="faust data dir (RocksDB tables)")
    commit_interval_seconds: float = Field(0.2, gt=0, le=10)
    session_timeout_seconds: float = Field(10.0, ge=6, le=300)
    channel: Literal["console"] = "console"
    console_reveal_patient_data: bool = Field(
        False, description="print patient id and message text on the console channel"
    )


@cache
def get_settings() -> ExecutorSettings:
    return ExecutorSettings()
