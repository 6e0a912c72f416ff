"""Reads: malformed ids, statuses, limits and cursors are 422s naming the parameter."""

from __future__ import annotations

import httpx
import pytest


async def _loc(client: httpx.AsyncClient, method: str, url: str) -> list[object]:
    response = await client.request(method, url)
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("method", "url", "loc"),
    [
        ("GET", "/journeys/nope", ["path", "journeyId"]),
        ("GET", "/journeys/runs/nope", ["path", "runId"]),
        ("GET", "/journeys/runs/nope/events", ["path", "runId"]),
        ("POST", "/journeys/runs/nope/cancel", ["path", "runId"]),
        ("GET", "/journeys/runs?status=paused", ["query", "status"]),
        ("GET", "/journeys/runs?journeyId=nope", ["query", "journeyId"]),
        ("GET", "/journeys/runs?limit=0", ["query", "limit"]),
        ("GET", "/journeys?limit=201", ["query", "limit"]),
        ("GET", "/journeys?cursor=not-ours", ["query", "cursor"]),
        ("GET", "/journeys/runs?cursor=bm90IGpzb24", ["query", "cursor"]),
    ],
)
async def test_malformed_parameter_is_422_naming_it(
    client: httpx.AsyncClient, method: str, url: str, loc: list[object]
) -> None:
    assert await _loc(client, method, url) == [loc]


async def test_runs_path_is_never_taken_for_a_journey_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/journeys/runs")

    assert response.status_code == 503  # the runs list, wanting PostgreSQL; not a 422 on "runs"


async def test_cancel_reason_over_500_chars_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/journeys/runs/3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f/cancel", json={"reason": "x" * 501}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reason"]
