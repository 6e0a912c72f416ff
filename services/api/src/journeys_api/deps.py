"""Dependencies, declared once and shared by every router."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from journeys_api.resources import Resources


async def get_resources(request: Request) -> Resources:
    # async: FastAPI runs a plain `def` dependency in a thread, a hop on every request.
    return cast(Resources, request.app.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
