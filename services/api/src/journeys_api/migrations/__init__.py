"""The API's own tables (idempotency keys, API keys, erasure requests), applied with yoyo from the
SQL files next to this."""

from __future__ import annotations

from pathlib import Path

from yoyo.migrations import MigrationList

from journeys_runtime import migrations as _migrations
from journeys_runtime.migrations import yoyo_url

HERE = Path(__file__).parent

__all__ = ["apply", "migrations", "yoyo_url"]


def migrations() -> MigrationList:
    return _migrations.sql_migrations(HERE)


def apply(database_url: str) -> None:
    """Apply every pending API migration."""
    _migrations.apply(database_url, HERE)
