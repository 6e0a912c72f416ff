"""The API is the strict edge: an unknown field anywhere in a journey body is a 422 at that
field, although Kafka readers of the same definition ignore unknown fields."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.api.journeys import hip_replacement_journey


def _add(body: dict[str, Any], where: tuple[Any, ...]) -> dict[str, Any]:
    target: Any = body
    for part in where:
        target = target[part]
    target["colour"] = "red"
    return body


@pytest.mark.parametrize(
    ("where", "loc"),
    [
        ((), ["body", "colour"]),
        (("nodes", 0), ["body", "nodes", 0, "MESSAGE", "colour"]),
        (("nodes", 1), ["body", "nodes", 1, "CONDITIONAL", "colour"]),
        (("nodes", 1, "condition"), ["body", "nodes", 1, "CONDITIONAL", "condition", "colour"]),
        (("nodes", 2), ["body", "nodes", 2, "DELAY", "colour"]),
    ],
)
async def test_an_unknown_field_at_any_level_is_422_at_that_field(
    client: httpx.AsyncClient, where: tuple[Any, ...], loc: list[Any]
) -> None:
    response = await client.post("/journeys", json=_add(hip_replacement_journey(), where))

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [loc]
