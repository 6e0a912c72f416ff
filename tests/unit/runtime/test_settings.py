"""Settings from files (`JOURNEYS_SECRETS_DIR`), the topic settings' own rule, retention."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from journeys_runtime.settings import CommonSettings, DatabaseSettings, TopicSettings
from journeys_runtime.topics import DAY_MS, HOUR_MS, Retention, Topics


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("DATABASE_URL", "JOURNEYS_PATIENT_KEY_SECRET", "JOURNEYS_SECRETS_DIR",
                "JOURNEYS_ENV", *RETENTION_VARIABLES):  # fmt: skip
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


RETENTION_VARIABLES = {
    "JOURNEYS_COMMANDS_RETENTION_DAYS": ("commands_days", 14, 365),
    "JOURNEYS_EVENTS_RETENTION_DAYS": ("events_days", 3650, 36500),
    "JOURNEYS_DLQ_RETENTION_DAYS": ("dlq_days", 90, 3650),
    "JOURNEYS_AUDIT_RETENTION_DAYS": ("audit_days", 2196, 36500),
    "JOURNEYS_CHANGELOG_COMPACTION_LAG_HOURS": ("changelog_compaction_lag_hours", 1, 168),
    "JOURNEYS_CHANGELOG_TOMBSTONE_RETENTION_HOURS": ("changelog_tombstone_hours", 1, 168),
}


def test_retention_defaults_are_the_documented_ones(clean_env: pytest.MonkeyPatch) -> None:
    retention = TopicSettings().retention
    assert retention == Retention()
    assert {v: getattr(retention, f) for v, (f, _, _) in RETENTION_VARIABLES.items()} == {
        v: default for v, (_, default, _) in RETENTION_VARIABLES.items()
    }


def test_retention_defaults_declare_what_topics_declares_unset(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """Nothing changes on a broker unless a retention setting is set."""
    t = Topics("p.")
    assert Topics("p.", TopicSettings().retention).configs(2) == t.configs(2)
    assert t.configs()[t.audit]["retention.ms"] == str(6 * 366 * DAY_MS)
    assert t.configs()[t.executor_runs]["delete.retention.ms"] == str(HOUR_MS)


@pytest.mark.parametrize("variable", RETENTION_VARIABLES)
def test_each_retention_variable_is_read(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    field, default, _ = RETENTION_VARIABLES[variable]
    clean_env.setenv(variable, str(default + 1))
    retention = TopicSettings().retention
    assert retention == Retention(**{field: default + 1})


@pytest.mark.parametrize("variable", RETENTION_VARIABLES)
def test_retention_refuses_zero_and_more_than_its_bound(
    clean_env: pytest.MonkeyPatch, variable: str
) -> None:
    _, _, most = RETENTION_VARIABLES[variable]
    for value in (0, -1, most + 1):
        clean_env.setenv(variable, str(value))
        with pytest.raises(ValidationError, match=variable):
            TopicSettings()
    clean_env.setenv(variable, str(most))
    TopicSettings()


def test_every_service_reads_the_retention_it_creates_topics_with(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """A service that creates a missing topic must declare what the topics job would."""
    clean_env.setenv("JOURNEYS_EVENTS_RETENTION_DAYS", "30")
    assert CommonSettings().retention == TopicSettings().retention == Retention(events_days=30)


def test_topics_declare_the_retention_they_are_given() -> None:
    retention = Retention(
        commands_days=2, events_days=3, dlq_days=4, audit_days=5,
        changelog_compaction_lag_hours=6, changelog_tombstone_hours=7,
    )  # fmt: skip
    t = Topics("p.", retention)
    configs = t.configs()
    assert [configs[n]["retention.ms"] for n in (t.commands, t.events, t.dlq, t.audit)] == [
        str(days * DAY_MS) for days in (2, 3, 4, 5)
    ]
    assert configs[t.executor_runs] | {"min.insync.replicas": "-", "max.message.bytes": "-"} == {
        "cleanup.policy": "compact", "segment.ms": str(6 * HOUR_MS),
        "max.compaction.lag.ms": str(6 * HOUR_MS), "min.cleanable.dirty.ratio": "0.1",
        "delete.retention.ms": str(7 * HOUR_MS),
        "min.insync.replicas": "-", "max.message.bytes": "-",
    }  # fmt: skip
    assert "retention.ms" not in configs[t.definitions]


def test_a_refused_secret_is_not_quoted_in_the_error(clean_env: pytest.MonkeyPatch) -> None:
    """Settings errors reach the logs of a pod that will not start."""
    short = "short-secret-" + "q" * 12
    clean_env.setenv("JOURNEYS_ENV", "production")
    clean_env.setenv("JOURNEYS_PATIENT_KEY_SECRET", short)
    with pytest.raises(ValidationError) as refused:
        DatabaseSettings()
    assert "JOURNEYS_PATIENT_KEY_SECRET must be set" in str(refused.value)
    assert "qqqq" not in str(refused.value)
