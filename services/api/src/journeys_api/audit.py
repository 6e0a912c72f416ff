"""The audit trail: one record per request to a journey or run route, in Kafka before the answer.

Every route of the journeys and runs routers is an `AuditedRoute` and names its action. The
route's handler notes what it touched (`touched`): run ids, journey id, and the keyed hash
of each patient. The record goes to `journeys.audit.v1` once the outcome is known and before
the answer leaves; if Kafka does not take it, the client gets 503 with Retry-After instead of
the answer. No answer without a trace. A 503 to a write can mean the write happened; retrying
with the same Idempotency-Key is safe, as for any other 503.

One exception: when the answer is already a 503 because Kafka did not answer, the record is
handed to the producer without waiting (it reaches Kafka if Kafka comes back in time;
`journeys_api_audit_unconfirmed_total` counts those that do not). That answer discloses
nothing, and waiting would double the client's wait for it.

Requests that present no credentials at all are answered 401 before routing
(`CredentialsRequired`) and are not recorded: they reach no route and no data. Requests shed
for load (503) or refused for size (413) are counted in the metrics, not here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from aiokafka.errors import KafkaError
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from journeys_api import deadline, json_depth
from journeys_api.auth import Principal
from journeys_api.errors import KAFKA_SIZE_ERRORS, TooLargeError, UnavailableError
from journeys_api.metrics import AUDIT_FAILURES
from journeys_contracts.audit import AccessRecorded, AuditAction, outcome_of
from journeys_runtime.logs import trace_id_var

log = logging.getLogger(__name__)

ACTION_KEY = "x-audit-action"
STREAMED_KEY = "x-body-streamed"
"""`openapi_extra` of a route that reads its body as a stream (an upload of any size): the
body is not read whole first, for the JSON depth check, which such a body does not need."""
PATH_IDS = {"runId": "run", "journeyId": "journey"}


@dataclass
class Touched:
    """What one request reached, as the handler learns it."""

    journey_id: UUID | None = None
    run_ids: list[UUID] = field(default_factory=list)
    patient_keys: list[str] = field(default_factory=list)

    def add(self, run_id: UUID | None = None, patient_key: str | None = None) -> None:
        if run_id is not None and run_id not in self.run_ids:
            self.run_ids.append(run_id)
        if patient_key is not None and patient_key not in self.patient_keys:
            self.patient_keys.append(patient_key)


_touched: ContextVar[Touched | None] = ContextVar("audit_touched", default=None)


def touched(
    *, run_id: UUID | None = None, patient_key: str | None = None, journey_id: UUID | None = None
) -> None:
    """Note, for this request's audit record, a run, a patient (keyed hash) or a journey."""
    current = _touched.get()
    if current is None:  # not inside an audited route: nothing to note
        return
    current.add(run_id, patient_key)
    if journey_id is not None:
        current.journey_id = journey_id


def touched_patients(patient_keys: Iterable[str]) -> None:
    """`touched` for many patients at once (a batch of events), each noted once."""
    current = _touched.get()
    if current is None:
        return
    seen = set(current.patient_keys)
    for key in patient_keys:
        if key not in seen:
            seen.add(key)
            current.patient_keys.append(key)


def audited(action: AuditAction) -> dict[str, Any]:
    """`openapi_extra` of a route: its audit action, also shown in the OpenAPI document."""
    return {ACTION_KEY: action.value}


def status_of(exc: Exception) -> int:
    """The status the error handlers (`errors.install`) will answer `exc` with."""
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    if isinstance(exc, (TooLargeError, *KAFKA_SIZE_ERRORS)):
        return 413
    if isinstance(exc, UnavailableError | psycopg.OperationalError | KafkaError):
        return 503
    return 500


def _path_ids(request: Request, into: Touched) -> None:
    """Ids named in the path, when they are ids: anything else could be anything."""
    for name, kind in PATH_IDS.items():
        raw = request.path_params.get(name)
        if raw is None:
            continue
        try:
            value = UUID(str(raw))
        except ValueError:
            continue
        if kind == "run":
            into.add(run_id=value)
        else:
            into.journey_id = value


def _kafka_away(error: Exception | None) -> bool:
    if isinstance(error, KafkaError):
        return not isinstance(error, KAFKA_SIZE_ERRORS)
    return isinstance(error, UnavailableError) and error.dependency == "kafka"


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AuditedRoute(APIRoute):
    """A route whose every answer is recorded first; the route must name its action."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        action = AuditAction((self.openapi_extra or {})[ACTION_KEY])
        streamed = bool((self.openapi_extra or {}).get(STREAMED_KEY))
        route = self.path

        async def audited_handler(request: Request) -> Response:
            note = Touched()
            _path_ids(request, note)
            started = deadline.begin(request.app.state.resources.settings.answer_timeout_seconds)
            token = _touched.set(note)
            try:
                # Before FastAPI parses it: a parser is what fails on a body nested too deep.
                if not streamed:
                    json_depth.require_depth_within(
                        await request.body(), request.app.state.resources.settings.max_json_depth
                    )
                response = await handle(request)
            except Exception as exc:
                await _record(request, action, route, note, status_of(exc), exc)
                raise
            else:
                await _record(request, action, route, note, response.status_code, None)
                return response
            finally:
                _touched.reset(token)
                deadline.end(started)

        return audited_handler


async def _record(
    request: Request, action: AuditAction, route: str, note: Touched, status: int,
    error: Exception | None,
) -> None:  # fmt: skip
    principal = getattr(request.state, "principal", None)
    record = AccessRecorded(
        audit_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        subject=principal.subject if isinstance(principal, Principal) else None,
        action=action,
        method=request.method,
        route=route,
        status=status,
        outcome=outcome_of(status),
        request_id=trace_id_var.get() or "",
        journey_id=note.journey_id,
        run_ids=note.run_ids,
        patient_keys=note.patient_keys,
    )
    if _kafka_away(error):
        # The answer is a 503 that discloses nothing: send the record without waiting for a
        # Kafka that just failed to answer, or the client would wait twice as long for it.
        await request.app.state.resources.record_access(record, wait=False)
        return
    try:
        await request.app.state.resources.record_access(record)
    except UnavailableError as exc:
        AUDIT_FAILURES.inc()
        log.error(
            "audit record not written; answering 503 instead",
            extra={"action": action.value, "status": status, "reason": exc.reason},
        )
        raise exc from error
