"""An app whose lifespan never ran: validation answers, anything deeper would be a 503.

Its audit records go to a list (`app.state.audit_records`) instead of Kafka: these tests are
about what the HTTP layer answers and records; tests/integration/api/test_audit.py writes
them to a real Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from journeys_api.app import create_app
from journeys_api.settings import ApiSettings
from journeys_contracts.audit import AccessRecorded

JOURNEY_ID = "3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f"
DEV_KEY = "unit-test-dev-key-with-every-scope-0000"
AUTH = {"X-API-Key": DEV_KEY}  # every scope: these tests are about validation


def offline_settings(**overrides: object) -> ApiSettings:
    """Nothing listens on port 1: a request that got past validation could only fail."""
    values: dict[str, object] = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "JOURNEYS_ENV": "development",
        "auth_dev_key": DEV_KEY,
        # A sealed trigger holds its patient's data key in PostgreSQL, which is not here:
        # tests/integration/api/test_sealing.py triggers with sealing on.
        "JOURNEYS_PATIENT_DATA_SEALING": False,
    }
    return ApiSettings(**{**values, **overrides})  # type: ignore[arg-type]


def offline_app(**overrides: object) -> FastAPI:
    app = create_app(offline_settings(**overrides))
    records: list[AccessRecorded] = []
    waited: list[bool] = []

    async def record_access(record: AccessRecorded, *, wait: bool = True) -> None:
        records.append(record)
        waited.append(wait)

    app.state.audit_records = records
    app.state.audit_waited = waited
    app.state.resources.record_access = record_access
    return app


@pytest.fixture
def app() -> FastAPI:
    return offline_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # ASGITransport sends no lifespan events: the pool and the producer are never started.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as c:
        yield c
