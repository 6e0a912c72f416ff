"""The scheduler's migrations create its tables once, from a URL or a key=value string."""

from __future__ import annotations

import psycopg
import pytest

from journeys_scheduler.migrations import apply

pytestmark = pytest.mark.integration


def test_migrations_create_the_tables_and_are_idempotent(fresh_database: str) -> None:
    apply(fresh_database)
    apply(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'scheduler_%'")}  # fmt: skip
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'scheduler_timers'")}  # fmt: skip
    assert tables == {"scheduler_timers", "scheduler_offsets"}
    assert {"scheduler_timers_partition_due", "scheduler_timers_run"} <= indexes
