"""Schema migrations of the scheduler's own tables (yoyo), applied by `migrate` or at start."""

from __future__ import annotations

from pathlib import Path

from journeys_runtime import migrations as _migrations
from journeys_runtime.migrations import yoyo_url

SQL_DIR = Path(__file__).parent / "sql"

__all__ = ["apply", "yoyo_url"]


def apply(database_url: str) -> None:
    """Apply every pending migration; safe to run from several replicas at once (yoyo locks)."""
    _migrations.apply(database_url, SQL_DIR)
