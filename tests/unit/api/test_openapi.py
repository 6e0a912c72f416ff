"""The OpenAPI document: every route is documented with examples, errors included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from journeys_contracts.schemas import SCHEMAS_DIR
from tests.contract.compat import breaking_changes
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY

API_ROUTES = [
    ("post", "/journeys"), ("get", "/journeys"), ("get", "/journeys/{journeyId}"),
    ("post", "/journeys/{journeyId}/trigger"), ("get", "/journeys/runs"),
    ("get", "/journeys/runs/{runId}"), ("get", "/journeys/runs/{runId}/events"),
    ("post", "/journeys/runs/{runId}/cancel"), ("post", "/patients/erasures"),
    ("delete", "/patients/{patientId}"), ("get", "/patients/erasures/{erasureId}"),
    ("post", "/events"), ("get", "/events/{eventId}"),
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


RECORDED = Path(__file__).parent / "recorded"
# The journey definition's components as first published, frozen: generated clients know these
# names and shapes, so each must still be there, evolved only additively.
FIRST_PUBLISHED = json.loads((RECORDED / "openapi_journey_definition.json").read_text())
# The same components as published now, those patient events added (`WaitForEventNode`,
# `EventMatch`): update this pin, never the first one, when a field is added.
PINNED = json.loads((RECORDED / "openapi_journey_definition.current.json").read_text())
# The reviewed readers-first changes of the body, shared with its JSON Schema: the paths the
# check reports are the same, rooted at `JourneyDefinition`.
BODY_SCHEMA = "definition/journey-definition.v1.json"
ACCEPTED = {
    change
    for entry in json.loads((SCHEMAS_DIR / "published" / "accepted-changes.json").read_text())
    if BODY_SCHEMA in entry["schemas"]
    for change in entry["changes"]
}
NODE_TYPES = {"MessageNode": "MESSAGE", "DelayNode": "DELAY", "ConditionalNode": "CONDITIONAL",
              "WaitForEventNode": "WAIT_FOR_EVENT"}  # fmt: skip


def accepted_for(component: str) -> set[str]:
    """The accepted changes as the check reports them rooted at `component`: a node's own
    component is the body's `$.nodes[]<object:TYPE>`."""
    if component not in NODE_TYPES:
        return ACCEPTED
    prefix = f"$.nodes[]<object:{NODE_TYPES[component]}>."
    return {"$." + c.removeprefix(prefix) for c in ACCEPTED if c.startswith(prefix)}


def test_journey_body_is_the_pinned_journey_definition(document: dict[str, Any]) -> None:
    body = document["paths"]["/journeys"]["post"]["requestBody"]["content"]["application/json"]
    schemas = document["components"]["schemas"]

    assert body["schema"] == {"$ref": "#/components/schemas/JourneyDefinition"}
    assert {name: schemas.get(name) for name in PINNED} == PINNED


def test_the_pin_names_every_first_published_component() -> None:
    assert set(FIRST_PUBLISHED) <= set(PINNED)
    assert {"WaitForEventNode", "EventMatch"} <= set(PINNED)


@pytest.mark.parametrize("name", sorted(FIRST_PUBLISHED))
def test_journey_body_evolves_its_first_published_components_additively(
    document: dict[str, Any], name: str
) -> None:
    """Nothing removed, renamed, retyped or re-bounded; an addition an old client could not
    send (a node type, a field of a closed object) only as a reviewed readers-first change."""
    current = document["components"]["schemas"]
    assert name in current, f"published component {name} was removed or renamed"

    def rooted(components: dict[str, Any]) -> dict[str, Any]:
        return {"components": {"schemas": components}, "$ref": f"#/components/schemas/{name}"}

    problems = breaking_changes(rooted(FIRST_PUBLISHED), rooted(current))

    assert [p for p in problems if p not in accepted_for(name)] == []


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
