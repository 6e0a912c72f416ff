"""Settings: prefixed projector options, unprefixed shared ones, a group id per topic prefix."""

from __future__ import annotations

import pytest

from journeys_projector.settings import ProjectorSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_TOPIC_PREFIX", raising=False)
    settings = ProjectorSettings()
    assert (settings.ops_host, settings.ops_port, settings.batch_max_records) == (
        "127.0.0.1", 8003, 1000,
    )  # fmt: skip
    assert settings.consumer_group == "journeys-projector"


def test_the_group_id_follows_the_topic_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_TOPIC_PREFIX", "tenant-a.")
    assert ProjectorSettings().consumer_group == "tenant-a.journeys-projector"


def test_projector_variables_are_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECTOR_GROUP_ID", "rebuild-2025-03")
    monkeypatch.setenv("PROJECTOR_BATCH_MAX_RECORDS", "5000")
    monkeypatch.setenv("PROJECTOR_OPS_PORT", "9103")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/journeys")
    settings = ProjectorSettings()
    assert settings.consumer_group == "rebuild-2025-03"
    assert (settings.batch_max_records, settings.ops_port) == (5000, 9103)
    assert settings.database_url == "postgresql://db/journeys"
