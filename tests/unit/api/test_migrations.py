"""The API's migrations: prefixed file names, and yoyo URLs from any libpq URL."""

from __future__ import annotations

from journeys_api.migrations import migrations, yoyo_url


def test_migration_ids_carry_the_api_prefix() -> None:
    ids = [m.id for m in migrations()]

    assert ids == [
        "api_0001_idempotency_keys",
        "api_0002_api_keys",
        "api_0003_idempotency_key_subjects",
        "api_0004_idempotency_key_published",
        "api_0005_patient_erasures",
        "api_0006_patient_data_keys",
        "api_0007_delivery_replays",
        "api_0008_sms_inbound",
        "api_0009_imports",
        "api_0010_import_chat",
        "api_0011_import_event_ids",
        "api_0012_import_error_rows",
        "api_0013_import_webhook_names",
        "api_0014_console_sessions",
    ]


def test_yoyo_url_keeps_a_socket_directory() -> None:
    url = yoyo_url("postgresql://postgres@/journeys?host=/tmp/pg")

    assert url == "postgresql+psycopg://postgres@/journeys?host=%2Ftmp%2Fpg"


def test_yoyo_url_keeps_credentials_host_and_port() -> None:
    url = yoyo_url("postgresql://app:s3cr%40t@db.internal:6432/journeys")

    assert url == "postgresql+psycopg://app:s3cr%40t@/journeys?host=db.internal&port=6432"
