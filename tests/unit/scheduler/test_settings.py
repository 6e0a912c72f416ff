"""Settings: defaults, the SCHEDULER_ prefix, shared variables unprefixed; migration URLs."""

from __future__ import annotations

import pytest

from journeys_scheduler.migrations import yoyo_url
from journeys_scheduler.settings import SchedulerSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SCHEDULER_OPS_PORT", "SCHEDULER_WINDOW_SECONDS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = SchedulerSettings()
    assert (s.ops_host, s.ops_port, s.window_seconds, s.window_max_entries) == (
        "127.0.0.1", 8002, 60.0, 50_000,
    )  # fmt: skip


def test_reads_prefixed_and_shared_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_WINDOW_SECONDS", "5")
    monkeypatch.setenv("SCHEDULER_WINDOW_MAX_ENTRIES", "100")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("JOURNEYS_TOPIC_PREFIX", "t1.")
    s = SchedulerSettings()
    assert (s.window_seconds, s.window_max_entries) == (5.0, 100)
    assert (s.database_url, s.topic_prefix) == ("postgresql://u@db/x", "t1.")


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("postgresql://postgres@/postgres?host=/tmp/pg",
         "postgresql+psycopg://postgres@/postgres?host=%2Ftmp%2Fpg"),
        ("postgresql://u:p%40ss@db:5433/journeys",
         "postgresql+psycopg://u:p%40ss@/journeys?host=db&port=5433"),
        ("user=postgres dbname=t_1 host=/tmp/pg",
         "postgresql+psycopg://postgres@/t_1?host=%2Ftmp%2Fpg"),
    ],
)  # fmt: skip
def test_yoyo_url_keeps_every_connection_parameter(database_url: str, expected: str) -> None:
    assert yoyo_url(database_url) == expected
