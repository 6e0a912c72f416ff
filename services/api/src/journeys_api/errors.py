"""Error answers: 4xx naming the field and the reason, 503 with Retry-After, never a trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from journeys_api.metrics import UNAVAILABLE
from journeys_api.middleware import route_template

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# Only these keys leave the API: `input` and `ctx` would echo the body, i.e. patient data.
_ERROR_KEYS = ("type", "loc", "msg")

Loc = Sequence[str | int]


class UnavailableError(Exception):
    """A dependency (`kafka` or `postgres`) is out of reach; the client should retry later."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


class UndeliveredError(UnavailableError):
    """Kafka did not acknowledge in time, but the record is still in the producer's hands and
    may yet reach Kafka: `delivery` resolves when it does, or when the producer gives it up."""

    def __init__(self, delivery: asyncio.Future[Any]) -> None:
        super().__init__("kafka", "no acknowledgement in time")
        self.delivery = delivery


class TooLargeError(Exception):
    """What the request would put on Kafka cannot fit in a record: 413, never a 503, since
    the same request would fail again. `detail` names sizes and limits, never content."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SealingFaultError(Exception):
    """A patient's data key or a sealed value could not be used: a key-encryption key missing
    from the settings, a wrapped key or value that does not open. A fault on our side, answered
    500; `reason` is the error's type name, never data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Kafka's own refusals for size (the producer's check, or the broker's): final, like ours.
KAFKA_SIZE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError)
KAFKA_REFUSED_SIZE = "Kafka refused the record this request makes for its size"


def invalid(loc: Loc, msg: str, error_type: str = "value_error") -> RequestValidationError:
    """One validation error in FastAPI's shape, for rules pydantic cannot express."""
    return RequestValidationError([{"type": error_type, "loc": tuple(loc), "msg": msg}])


def not_found(kind: str, ident: object) -> HTTPException:
    return HTTPException(404, f"{kind} {ident} not found")


def sanitized(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{key: error[key] for key in _ERROR_KEYS if key in error} for error in errors]


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": sanitized(exc.errors())}, status_code=422)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _unavailable_response(request: Request, dependency: str, reason: str) -> JSONResponse:
    UNAVAILABLE.labels(dependency).inc()
    # The route template, not the path: a path can name a patient (`/patients/{patientId}`).
    log.warning(
        "dependency unavailable",
        extra={"dependency": dependency, "reason": reason, "route": route_template(request.scope)},
    )
    return JSONResponse(
        {"detail": f"{dependency} is unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _too_large(_: Request, exc: Exception) -> JSONResponse:
    detail = exc.detail if isinstance(exc, TooLargeError) else KAFKA_REFUSED_SIZE
    return JSONResponse({"detail": detail}, status_code=413)


async def _sealing_fault(request: Request, exc: Exception) -> JSONResponse:
    reason = exc.reason if isinstance(exc, SealingFaultError) else type(exc).__name__
    log.error(
        "patient data key unusable",
        extra={"error": reason, "route": route_template(request.scope)},
    )
    return JSONResponse({"detail": "internal error"}, status_code=500)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnavailableError)
    return _unavailable_response(request, exc.dependency, exc.reason)


async def _postgres(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable_response(request, "postgres", type(exc).__name__)


async def _kafka(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable_response(request, "kafka", type(exc).__name__)


def install(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions are answered by the request middleware."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(UnavailableError, _unavailable)
    app.add_exception_handler(psycopg.OperationalError, _postgres)
    app.add_exception_handler(KafkaError, _kafka)
    app.add_exception_handler(TooLargeError, _too_large)
    app.add_exception_handler(SealingFaultError, _sealing_fault)
    for size_error in KAFKA_SIZE_ERRORS:  # more specific than KafkaError: looked up first
        app.add_exception_handler(size_error, _too_large)
