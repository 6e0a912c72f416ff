"""Security headers on every answer, CORS off unless configured, unknown input fields refused."""

from __future__ import annotations

import httpx

from tests.unit.api.conftest import AUTH, offline_app

ORIGIN = "https://care-portal.example"


async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/health"),
        await client.get("/journeys", headers={"X-API-Key": "wrong"}),  # a 401
        await client.get("/nowhere"),  # a 404
    ):
        h = response.headers
        assert h["cache-control"] == "no-store"
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in h["content-security-policy"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "content-security-policy" not in docs.headers  # Swagger UI loads its scripts
    assert docs.headers["x-frame-options"] == "DENY"


async def _preflight(app_origins: list[str]) -> httpx.Response:
    app = offline_app(cors_origins=app_origins)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        return await c.options("/journeys", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key"})  # fmt: skip


async def test_cors_is_off_unless_configured() -> None:
    closed = await _preflight([])
    assert "access-control-allow-origin" not in closed.headers
    opened = await _preflight([ORIGIN])
    assert opened.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in opened.headers["access-control-allow-headers"].lower()


async def test_cors_lets_a_browser_read_the_headers_clients_need() -> None:
    app = offline_app(cors_origins=[ORIGIN])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        response = await c.get("/health", headers={"Origin": ORIGIN})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"location", "retry-after", "x-request-id"} <= exposed


async def test_unknown_fields_in_a_definition_are_422(client: httpx.AsyncClient) -> None:
    node = {"id": "a", "type": "MESSAGE", "message": "hi", "next_node_id": None}
    body = {"name": "j", "start_node_id": "a", "isAdmin": True, "nodes": [node]}
    response = await client.post("/journeys", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "isAdmin"]
