"""Migrations: yoyo gets a psycopg 3 URL from any libpq form, and only the SQL files."""

from __future__ import annotations

import pytest

from journeys_projector.migrations import migrations, yoyo_url


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("postgresql://postgres@/journeys?host=/tmp/pg",
         "postgresql+psycopg://postgres@/journeys?host=%2Ftmp%2Fpg"),
        ("postgresql://app:s3cr%40t@db.internal:5433/journeys?sslmode=require",
         "postgresql+psycopg://app:s3cr%40t@/journeys?host=db.internal&port=5433&sslmode=require"),
        ("host=/run/postgresql user=app dbname=t_1", "postgresql+psycopg://app@/t_1?host=%2Frun%2Fpostgresql"),
    ],
)  # fmt: skip
def test_yoyo_url_keeps_every_connection_parameter(database_url: str, expected: str) -> None:
    assert yoyo_url(database_url) == expected


def test_migrations_are_the_sql_files_prefixed_with_the_service_name() -> None:
    ids = [m.id for m in migrations()]
    assert ids == [
        "projector_0001_read_models", "projector_0002_audit_log", "projector_0003_erasures",
        "projector_0004_sealed_runs", "projector_0005_patient_events",
        "projector_0006_failed_messages", "projector_0007_sms_recipients",
        "projector_0008_patient_consent", "projector_0009_delivery_retries",
        "projector_0010_clinic_events", "projector_0011_replies",
    ]  # fmt: skip
