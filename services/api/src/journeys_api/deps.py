"""Dependencies, declared once and shared by every router."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from journeys_api.resources import Resources


def get_resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
