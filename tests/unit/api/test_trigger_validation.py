"""POST /journeys/{journeyId}/trigger: a malformed patient context is a 422 naming `id`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.api.conftest import AUTH, JOURNEY_ID, offline_app

TRIGGER = f"/journeys/{JOURNEY_ID}/trigger"


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return dict(error)


async def test_context_without_id_is_422_id_required(client: httpx.AsyncClient) -> None:
    error = _error(await client.post(TRIGGER, json={"age": 72}))

    assert (error["loc"], error["type"]) == (["body", "id"], "missing")


@pytest.mark.parametrize("bad_id", ["", "   ", True, None, 1.5, ["p-1"], {"v": 1}, "x" * 256])
async def test_id_that_is_not_a_non_empty_string_or_integer_is_422(
    client: httpx.AsyncClient, bad_id: Any
) -> None:
    error = _error(await client.post(TRIGGER, json={"id": bad_id}))

    assert error["loc"] == ["body", "id"]


@pytest.mark.parametrize("body", [[{"id": "p-1"}], "p-1", 42])
async def test_context_that_is_not_an_object_is_422_at_the_body(
    client: httpx.AsyncClient, body: Any
) -> None:
    error = _error(await client.post(TRIGGER, json=body))

    assert error["loc"] == ["body"]


async def test_nul_in_the_context_is_422_at_its_path(client: httpx.AsyncClient) -> None:
    body = {"id": "p-1", "address": {"lines": ["ok", "bad\x00line"]}}

    error = _error(await client.post(TRIGGER, json=body))

    assert error["loc"] == ["body", "address", "lines", 1]


async def test_non_finite_number_in_the_context_is_422(client: httpx.AsyncClient) -> None:
    content = b'{"id": "p-1", "score": NaN}'

    response = await client.post(
        TRIGGER, content=content, headers={"content-type": "application/json"}
    )

    assert _error(response)["loc"] == ["body", "score"]


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_idempotency_key_outside_1_to_255_chars_is_422_at_the_header(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post(TRIGGER, json={"id": "p-1"}, headers={"Idempotency-Key": key})

    assert _error(response)["loc"] == ["header", "idempotency-key"]


async def test_malformed_journey_id_is_422_naming_it(client: httpx.AsyncClient) -> None:
    error = _error(await client.post("/journeys/not-a-uuid/trigger", json={"id": "p-1"}))

    assert (error["loc"], error["type"]) == (["path", "journeyId"], "uuid_parsing")


async def test_422_never_echoes_the_patient_context(client: httpx.AsyncClient) -> None:
    response = await client.post(TRIGGER, json={"id": {"ssn": "123-45-6789"}, "age": 72})

    assert response.status_code == 422
    assert "123-45-6789" not in response.text
    assert set(response.json()["detail"][0]) == {"type", "loc", "msg"}


async def test_body_over_the_limit_is_413_even_when_its_length_is_not_declared() -> None:

    app = offline_app(max_body_bytes=2048)
    oversized = b'{"id": "p-1", "notes": "' + b"x" * 4096 + b'"}'

    async def chunks() -> Any:
        for start in range(0, len(oversized), 512):
            yield oversized[start : start + 512]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as c:
        declared = await c.post(TRIGGER, content=oversized,
                                headers={"content-type": "application/json"})  # fmt: skip
        streamed = await c.post(TRIGGER, content=chunks(),
                                headers={"content-type": "application/json"})  # fmt: skip

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"detail": "request body exceeds the limit of 2048 bytes"}
    assert "content-length" not in streamed.request.headers


async def test_a_valid_trigger_passes_validation_and_needs_postgres(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(TRIGGER, json={"id": 4711, "age": 72})

    assert response.status_code == 503
    assert response.json() == {"detail": "postgres is unavailable, retry later"}
