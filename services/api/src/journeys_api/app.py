"""The app factory: routers, error handlers, middleware, and a lifespan owning the clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import start_http_server

from journeys_api import console, errors, openapi
from journeys_api.auth import Authenticator, CredentialsRequired
from journeys_api.keys import ApiKeys
from journeys_api.limits import BodyLimit, InFlightLimit
from journeys_api.middleware import RequestObservation, SecurityHeaders
from journeys_api.resources import Resources
from journeys_api.routers import (
    analytics,
    channels,
    deliveries,
    events,
    hooks,
    imports,
    journeys,
    ops,
    patients,
    runs,
)
from journeys_api.settings import ApiSettings

DESCRIPTION = """
Define patient journeys, trigger runs for patients, and follow them; record what happens to
patients (events that start, resume and end runs); erase a patient.

Writes are accepted once the command is durable in Kafka (202) and are readable right after
the answer (the API waits, bounded, for the read models to include them). Every 4xx names the
field and the reason; 503 with `Retry-After` when Kafka or PostgreSQL is out of reach.
"""


def create_app(settings: ApiSettings) -> FastAPI:
    resources = Resources(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        metrics = None
        await resources.start()
        try:
            # A port of its own for Prometheus, which a NetworkPolicy can keep internal.
            if settings.metrics_port:
                metrics = start_http_server(settings.metrics_port, addr=settings.host)
            yield
        finally:
            if metrics is not None:
                await asyncio.to_thread(metrics[0].shutdown)
                metrics[0].server_close()
            await resources.stop()

    app = FastAPI(
        title="Patient Journeys API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.resources = resources
    app.state.authenticator = Authenticator(settings, ApiKeys(resources.pool))
    errors.install(app)
    # The last added is the outermost: every answer, 413s included, is observed.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       uploads={"/imports": settings.import_max_bytes,
                                "/console/imports/upload": settings.import_max_bytes})  # fmt: skip
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight)
    # Outside the limits: a caller with no credentials learns nothing from 413 or 503. Inside
    # CORS, whose preflight requests carry no credentials.
    app.add_middleware(CredentialsRequired)
    if settings.cors_origins:  # off unless configured: no browser origin may call by default
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "X-Request-ID"],
        )  # fmt: skip
    app.add_middleware(RequestObservation)
    app.add_middleware(SecurityHeaders)  # outermost: the last-resort 500 gets them too
    # Order matters: `/journeys/runs...` must match before `/journeys/{journeyId}`.
    app.include_router(runs.router)
    app.include_router(journeys.router)
    app.include_router(patients.router)
    app.include_router(events.router)
    app.include_router(hooks.router)
    app.include_router(deliveries.router)
    app.include_router(channels.router)
    app.include_router(imports.router)
    app.include_router(analytics.router)
    app.include_router(ops.router)
    if settings.public_metrics:
        app.include_router(ops.metrics_router)
    if settings.console_enabled:
        console.install(app, settings)
    openapi.finish_document(app)
    return app
