"""The OpenAPI document: every route is documented with examples, errors included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

API_ROUTES = [
    ("post", "/journeys"), ("get", "/journeys"), ("get", "/journeys/{journeyId}"),
    ("post", "/journeys/{journeyId}/trigger"), ("get", "/journeys/runs"),
    ("get", "/journeys/runs/{runId}"), ("get", "/journeys/runs/{runId}/events"),
    ("post", "/journeys/runs/{runId}/cancel"), ("post", "/patients/erasures"),
    ("delete", "/patients/{patientId}"), ("get", "/patients/erasures/{erasureId}"),
]  # fmt: skip


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _has_example(content: dict[str, Any]) -> bool:
    media = content.get("application/json", {})
    return bool(media.get("example") or media.get("examples"))


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_route_documents_its_errors_with_examples(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = document["paths"][path][method]

    assert "422" in operation["responses"]
    for status in ("422", "503"):
        assert _has_example(operation["responses"][status]["content"]), (path, status)


def test_journey_body_examples_include_the_hip_replacement_journey(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/journeys"]["post"]["requestBody"]["content"]["application/json"]

    assert body["examples"]["hip_replacement"]["value"] == HIP_REPLACEMENT_JOURNEY


# The journey definition's components as published before the API body became a strict twin
# of the tolerant Kafka model: generated clients know these names and shapes.
PUBLISHED = json.loads(
    (Path(__file__).parent / "recorded" / "openapi_journey_definition.json").read_text()
)


def test_journey_body_keeps_its_published_component_names_and_schemas(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/journeys"]["post"]["requestBody"]["content"]["application/json"]
    schemas = document["components"]["schemas"]

    assert body["schema"] == {"$ref": "#/components/schemas/JourneyDefinition"}
    assert {name: schemas.get(name) for name in PUBLISHED} == PUBLISHED


def test_no_component_is_named_after_an_internal_class(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])

    assert not {name for name in names if name.startswith("Strict")}
    assert "Strict" not in json.dumps(document)


def test_trigger_documents_the_idempotency_key_header(document: dict[str, Any]) -> None:
    operation = document["paths"]["/journeys/{journeyId}/trigger"]["post"]

    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert headers == ["idempotency-key"]
    assert operation["requestBody"]["content"]["application/json"]["examples"]


def test_success_responses_have_examples_in_their_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    for name in ("JourneyView", "RunView", "RunTimeline"):
        assert schemas[name]["examples"], name


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.parametrize(("method", "path"), [("post", "/patients/erasures"),
                                              ("delete", "/patients/{patientId}")])  # fmt: skip
def test_erasing_documents_202_with_location_and_503_with_retry_after(
    document: dict[str, Any], method: str, path: str
) -> None:
    responses = document["paths"][path][method]["responses"]

    assert "Location" in responses["202"]["headers"]
    assert _has_example(responses["202"]["content"])
    assert "Retry-After" in responses["503"]["headers"]
    assert {"401", "403", "422"} <= set(responses)


def test_following_an_erasure_documents_pending_done_and_404(document: dict[str, Any]) -> None:
    responses = document["paths"]["/patients/erasures/{erasureId}"]["get"]["responses"]
    examples = responses["200"]["content"]["application/json"]["examples"]

    assert {e["value"]["status"] for e in examples.values()} == {"pending", "done"}
    assert examples["pending"]["value"]["doneAt"] is None  # the null kept in the document
    assert _has_example(responses["404"]["content"])
