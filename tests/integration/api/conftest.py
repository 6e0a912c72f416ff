"""The API in-process (lifespan included) over httpx, on a migrated database and fresh topics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from journeys_api import migrations as api_migrations
from journeys_api.app import create_app
from journeys_api.settings import ApiSettings
from journeys_projector import migrations as projector_migrations
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS, migrated_database
from tests.integration.api.projector_sim import simulated_projector

# Every scope: tests/integration/api/test_authorization.py is the test about credentials.
DEV_KEY = "integration-test-dev-key-with-every-scope"


@dataclass(frozen=True)
class Api:
    client: httpx.AsyncClient
    settings: ApiSettings
    database_url: str
    topics: Topics


def api_settings(
    bootstrap: str, database_url: str, topics: Topics, **overrides: Any
) -> ApiSettings:
    values: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database_url,
        "JOURNEYS_TOPIC_PREFIX": topics.prefix, "JOURNEYS_PARTITIONS": PARTITIONS,
        "JOURNEYS_ENV": "development", "db_pool_min_size": 1, "db_pool_max_size": 4,
        "JOURNEYS_CREATE_TOPICS": False, "auth_dev_key": DEV_KEY,
    }  # fmt: skip
    return ApiSettings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, as uvicorn would, and a client talking ASGI to it."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"X-API-Key": DEV_KEY}
        ) as client,
    ):
        yield client


@pytest.fixture
def read_models(admin_database_url: str, migrated_templates: dict[Any, str]) -> Iterator[str]:
    """The projector's read-model schema (its own migrations) plus the API's tables."""
    yield from migrated_database(admin_database_url, migrated_templates,
                                 projector_migrations.apply, api_migrations.apply)  # fmt: skip


NO_EXECUTOR = pytest.mark.api_settings(read_your_writes_timeout_seconds=1.5)
"""For a test that cancels: no executor runs here to end the run, so the cancel waits out the
whole read-your-writes bound (5 s by default) before answering 202 `cancelling`."""


@pytest.fixture
async def api(
    request: pytest.FixtureRequest, kafka_bootstrap: str, read_models: str, topics: Topics
) -> AsyncIterator[Api]:
    marker = request.node.get_closest_marker("api_settings")
    overrides = marker.kwargs if marker is not None else {}
    settings = api_settings(kafka_bootstrap, read_models, topics, **overrides)
    async with simulated_projector(kafka_bootstrap, read_models, topics), serving(settings) as c:
        yield Api(c, settings, read_models, topics)
