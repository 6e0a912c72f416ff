"""Per request: a trace id from the caller or new, metrics by route template, a bare 500."""

from __future__ import annotations

import logging

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.datastructures import Headers

from journeys_api.middleware import trace_id
from journeys_runtime.logs import trace_id_var
from tests.unit.api.conftest import offline_app

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_trace_id_comes_from_a_w3c_traceparent() -> None:
    headers = Headers({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "x-request-id": "r-1"})

    assert trace_id(headers) == TRACE


def test_trace_id_falls_back_to_a_well_formed_request_id() -> None:
    assert trace_id(Headers({"x-request-id": "req-42"})) == "req-42"


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-request-id": "has spaces and {json}"}, {"traceparent": f"00-{'0' * 32}-1-01"},
     {"x-request-id": "r" * 129}],
)  # fmt: skip
def test_trace_id_is_generated_when_none_usable_was_sent(headers: dict[str, str]) -> None:
    generated = trace_id(Headers(headers))

    assert len(generated) == 32
    assert generated != "0" * 32


async def test_response_carries_the_trace_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "req-7"})

    assert response.headers["x-request-id"] == "req-7"


async def test_metrics_label_the_route_template_never_the_raw_path(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/journeys/runs/not-a-uuid")

    metrics = (await client.get("/metrics")).text

    assert 'route="/journeys/runs/{runId}",status="422"' in metrics
    assert "not-a-uuid" not in metrics


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient) -> None:
    before = _count("GET", "<unmatched>", "404")

    await client.get("/nowhere/patient-123")  # `/patients/{patientId}` is a route now

    assert _count("GET", "<unmatched>", "404") == before + 1
    assert "patient-123" not in (await client.get("/metrics")).text


async def test_unexpected_error_is_a_bare_500_logged_by_type_and_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = offline_app()

    @app.get("/explode")
    async def explode() -> None:
        raise KeyError("patient-123")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        with caplog.at_level(logging.ERROR, logger="journeys_api.middleware"):
            response = await client.get("/explode")

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    [record] = [r for r in caplog.records if r.name == "journeys_api.middleware"]
    assert (record.exception, record.route) == ("KeyError", "/explode")  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert "patient-123" not in caplog.text


async def test_code_handling_the_request_sees_its_trace_id() -> None:
    app = offline_app()

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"trace": trace_id_var.get()}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/whoami", headers={"X-Request-ID": "req-8"})

    assert response.json() == {"trace": "req-8"}


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("journeys_api_requests_total", labels) or 0.0
