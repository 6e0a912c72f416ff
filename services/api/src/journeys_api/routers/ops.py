"""Operational endpoints: `/health` (alive), `/ready` (dependencies reachable), `/metrics`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from journeys_api.deps import ResourcesDep
from journeys_api.examples import json_example, response

router = APIRouter(tags=["operations"])
# Served on the API's port unless API_PUBLIC_METRICS is off (then on API_METRICS_PORT alone).
metrics_router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


_ALIVE = response("Always, while the process serves", ok=json_example("alive", {"status": "ok"}))
_READY_EXAMPLES: dict[int | str, dict[str, Any]] = {
    200: response(
        "PostgreSQL and Kafka answer",
        ready=json_example(
            "ready", {"status": "ready", "checks": {"postgres": True, "kafka": True}}
        ),
    ),
    503: response(
        "A dependency does not answer; `checks` names it",
        kafka=json_example(
            "Kafka down", {"status": "not_ready", "checks": {"postgres": True, "kafka": False}}
        ),
    ),
}


_METRICS_EXAMPLE = 'journeys_api_requests_total{method="GET",route="/health",status="200"} 1.0'


@router.get(
    "/health",
    summary="The process is alive",
    responses={200: _ALIVE},
)
async def health() -> Health:
    return Health()


@router.get(
    "/ready", summary="PostgreSQL and Kafka are reachable", responses=_READY_EXAMPLES,
    response_model=Readiness,
)  # fmt: skip
async def ready(resources: ResourcesDep) -> JSONResponse:
    checks = await resources.ready()
    ok = all(checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": _METRICS_EXAMPLE}}}},
)  # fmt: skip
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
