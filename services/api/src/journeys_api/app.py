"""The app factory: routers, error handlers, middleware, and a lifespan owning the clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from journeys_api import errors, openapi
from journeys_api.limits import BodyLimit, InFlightLimit
from journeys_api.middleware import RequestObservation
from journeys_api.resources import Resources
from journeys_api.routers import journeys, ops, runs
from journeys_api.settings import ApiSettings

DESCRIPTION = """
Define patient journeys, trigger runs for patients, and follow them.

Writes are accepted once the command is durable in Kafka (202) and are readable right after
the answer (the API waits, bounded, for the read models to include them). Every 4xx names the
field and the reason; 503 with `Retry-After` when Kafka or PostgreSQL is out of reach.
"""


def create_app(settings: ApiSettings) -> FastAPI:
    resources = Resources(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await resources.start()
        try:
            yield
        finally:
            await resources.stop()

    app = FastAPI(
        title="Patient Journeys API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.resources = resources
    errors.install(app)
    # The last added is the outermost: every answer, 413s included, is observed.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight)
    app.add_middleware(RequestObservation)
    # Order matters: `/journeys/runs...` must match before `/journeys/{journeyId}`.
    app.include_router(runs.router)
    app.include_router(journeys.router)
    app.include_router(ops.router)
    openapi.keep_null_examples(app)
    return app
