"""Journeys over real Kafka and PostgreSQL: a 201 is readable at once, and lists page."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import Api
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY, linear_journey


async def test_created_journey_is_readable_right_after_201(api: Api) -> None:
    response = await api.client.post("/journeys", json=HIP_REPLACEMENT_JOURNEY)

    assert response.status_code == 201, response.text
    journey_id = response.json()["journeyId"]
    assert response.headers["location"] == f"/journeys/{journey_id}"
    found = await api.client.get(f"/journeys/{journey_id}")
    assert found.status_code == 200, found.text
    body = found.json()
    assert body.pop("journeyId") == journey_id
    assert body.pop("createdAt").endswith("Z")
    assert body == HIP_REPLACEMENT_JOURNEY


async def test_journeys_list_in_pages_with_an_opaque_cursor(api: Api) -> None:
    ids = [await _create(api, linear_journey(f"journey {i}")) for i in range(3)]

    first = (await api.client.get("/journeys", params={"limit": 2})).json()
    params = {"limit": 2, "cursor": first["nextCursor"]}
    second = (await api.client.get("/journeys", params=params)).json()

    assert [j["journeyId"] for j in first["items"] + second["items"]] == ids
    assert first["nextCursor"] is not None
    assert second["nextCursor"] is None


async def test_unknown_journey_is_404_naming_the_id_kind(api: Api) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"

    response = await api.client.get(f"/journeys/{unknown}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"journey {unknown} not found"}


async def _create(api: Api, body: dict[str, Any]) -> str:
    response = await api.client.post("/journeys", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["journeyId"])
