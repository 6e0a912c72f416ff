"""POST /journeys: every graph rule of a journey definition is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.api.journeys import hip_replacement_journey


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return list(response.json()["detail"])


async def test_repeated_node_id_is_422_at_the_second_node(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][3]["id"] = "welcome"
    body["nodes"][2]["next_node_id"] = "welcome"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 3, "id"]
    assert error["msg"] == "node id 'welcome' repeats the id of nodes[0]"


async def test_dangling_next_node_is_422_at_that_field(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][2]["next_node_id"] = "nowhere"

    errors = _errors(await client.post("/journeys", json=body))

    assert errors == [{"type": "value_error", "loc": ["body", "nodes", 2, "next_node_id"],
                       "msg": "'nowhere' does not match any node id"}]  # fmt: skip


async def test_dangling_conditional_branch_is_422_at_that_branch(
    client: httpx.AsyncClient,
) -> None:
    body = hip_replacement_journey()
    body["nodes"][1]["on_false_next_node_id"] = "ghost"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 1, "on_false_next_node_id"]


async def test_start_node_that_does_not_exist_is_422_at_start_node_id(
    client: httpx.AsyncClient,
) -> None:
    body = hip_replacement_journey()
    body["start_node_id"] = "nowhere"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "start_node_id"]
    assert error["msg"] == "start_node_id 'nowhere' does not match any node id"


async def test_missing_start_node_id_is_422_field_required(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    del body["start_node_id"]

    [error] = _errors(await client.post("/journeys", json=body))

    assert (error["loc"], error["type"]) == (["body", "start_node_id"], "missing")


async def test_unreachable_node_is_422_at_its_id(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"].append({"id": "orphan", "type": "MESSAGE", "message": "never"})

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 4, "id"]
    assert error["msg"] == "node 'orphan' is unreachable from start_node_id 'welcome'"


async def test_cycle_without_a_delay_is_422_naming_the_cycle(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][3]["next_node_id"] = "welcome"
    body["nodes"][2]["duration_seconds"] = 0

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 0, "id"]
    assert "cycle welcome -> age_check -> wait -> checkin -> welcome" in error["msg"]
    assert "without passing a DELAY" in error["msg"]


@pytest.mark.parametrize(
    ("node", "field", "value", "loc_tail"),
    [
        (2, "duration_seconds", "a day", ["DELAY", "duration_seconds"]),
        (2, "duration_seconds", -1, ["DELAY", "duration_seconds"]),
        (0, "message", 42, ["MESSAGE", "message"]),
        (0, "next_node_id", ["age_check"], ["MESSAGE", "next_node_id"]),
        (1, "condition", "age > 65", ["CONDITIONAL", "condition"]),
    ],
)
async def test_field_of_the_wrong_type_is_422_at_that_field(
    client: httpx.AsyncClient, node: int, field: str, value: Any, loc_tail: list[str]
) -> None:
    body = hip_replacement_journey()
    body["nodes"][node][field] = value

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", node, *loc_tail]


async def test_unknown_operator_is_422_listing_the_known_ones(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][1]["condition"]["operator"] = "approximately"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 1, "CONDITIONAL", "condition", "operator"]
    assert "'contains'" in error["msg"]


async def test_unknown_node_type_is_422_at_the_node(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][0]["type"] = "SMS"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 0]


async def test_nul_character_is_422_because_postgres_could_not_store_it(
    client: httpx.AsyncClient,
) -> None:
    body = hip_replacement_journey()
    body["nodes"][0]["message"] = "Wel\x00come"

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 0, "message"]


async def test_every_broken_rule_is_reported_at_once(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["start_node_id"] = "nowhere"
    body["nodes"][0]["next_node_id"] = "ghost"

    errors = _errors(await client.post("/journeys", json=body))

    assert [e["loc"] for e in errors] == [
        ["body", "start_node_id"], ["body", "nodes", 0, "next_node_id"],
    ]  # fmt: skip


async def test_422_never_echoes_the_submitted_values(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][2]["duration_seconds"] = "secret-duration-value"
    body["nodes"][1]["condition"]["value"] = {"nested": "secret-condition-value"}

    response = await client.post("/journeys", json=body)

    assert response.status_code == 422
    assert "secret" not in response.text
    assert all(set(e) == {"type", "loc", "msg"} for e in response.json()["detail"])


async def test_malformed_json_is_422_without_the_parser_context(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/journeys", content=b'{"name": "secret', headers={"content-type": "application/json"}
    )

    [error] = _errors(response)
    assert error["type"] == "json_invalid"
    assert "secret" not in response.text


async def test_a_sound_journey_passes_validation_and_needs_kafka(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/journeys", json=hip_replacement_journey())

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "kafka is unavailable, retry later"}


async def test_a_template_that_does_not_parse_is_422_at_its_language(
    client: httpx.AsyncClient,
) -> None:
    body = hip_replacement_journey()
    body["nodes"][0]["templates"] = {"en": "Welcome, {{ first_name }}!", "es": "¡Hola, {{ nombre"}

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"] == ["body", "nodes", 0, "templates", "es"]
    assert error["msg"].startswith("not a valid template: ")


async def test_a_subject_or_message_that_does_not_parse_is_422_at_that_field(
    client: httpx.AsyncClient,
) -> None:
    body = hip_replacement_journey()
    body["nodes"][0]["message"] = "Welcome {% if %}"
    body["nodes"][3]["subject"] = "{{ }}"

    errors = _errors(await client.post("/journeys", json=body))

    assert [e["loc"] for e in errors] == [["body", "nodes", 0, "message"],
                                          ["body", "nodes", 3, "subject"]]  # fmt: skip


async def test_a_template_language_must_be_a_language_tag(client: httpx.AsyncClient) -> None:
    body = hip_replacement_journey()
    body["nodes"][0]["templates"] = {"spanish please": "Hola"}

    [error] = _errors(await client.post("/journeys", json=body))

    assert error["loc"][:5] == ["body", "nodes", 0, "MESSAGE", "templates"]
