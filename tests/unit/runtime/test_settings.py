"""Settings from files (`JOURNEYS_SECRETS_DIR`) and the topic settings' own rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from journeys_runtime.settings import DatabaseSettings, TopicSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("DATABASE_URL", "JOURNEYS_PATIENT_KEY_SECRET", "JOURNEYS_SECRETS_DIR",
                "JOURNEYS_ENV"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JOURNEYS_ENV", "development")  # unset would mean production rules
    return monkeypatch


def test_secrets_are_read_from_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "DATABASE_URL").write_text("postgresql://u:pw@db:5432/j\n")
    (tmp_path / "JOURNEYS_PATIENT_KEY_SECRET").write_text("k" * 40)
    clean_env.setenv("JOURNEYS_SECRETS_DIR", str(tmp_path))
    clean_env.setenv("JOURNEYS_ENV", "production")
    settings = DatabaseSettings()
    assert settings.database_url == "postgresql://u:pw@db:5432/j"
    assert settings.patient_key_secret.get_secret_value() == "k" * 40


def test_the_environment_wins_over_files(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "DATABASE_URL").write_text("postgresql://from-file/j")
    clean_env.setenv("JOURNEYS_SECRETS_DIR", str(tmp_path))
    clean_env.setenv("DATABASE_URL", "postgresql://from-env/j")
    assert DatabaseSettings().database_url == "postgresql://from-env/j"


def test_min_insync_replicas_cannot_exceed_replication(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="MIN_INSYNC_REPLICAS"):
        TopicSettings(**{"JOURNEYS_TOPIC_REPLICATION_FACTOR": 1,
                         "JOURNEYS_TOPIC_MIN_INSYNC_REPLICAS": 2})  # fmt: skip
