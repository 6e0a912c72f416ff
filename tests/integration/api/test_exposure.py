"""/docs and /metrics can be closed on the API's port; metrics then live on a port of their own."""

from __future__ import annotations

import httpx
import pytest

from journeys_runtime.topics import Topics
from journeys_stack.ports import free_port
from tests.integration.api.conftest import api_settings, serving

pytestmark = pytest.mark.integration


async def test_closed_docs_and_metrics_with_a_metrics_port(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    port = free_port()
    settings = api_settings(kafka_bootstrap, read_models, topics, docs_enabled=False,
                            public_metrics=False, metrics_port=port, host="127.0.0.1")  # fmt: skip
    async with serving(settings) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/health")).status_code == 200
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "journeys_api_requests_total" in scraped.text


async def test_open_by_default_for_development(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    async with serving(api_settings(kafka_bootstrap, read_models, topics)) as client:
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert (await client.get(path)).status_code == 200, path
