"""`/journeys/runs`: read runs and their timelines, cancel a run."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Path, Query

from journeys_api import sealed_rows
from journeys_api.audit import AuditedRoute, audited, touched
from journeys_api.auth import Scope, require
from journeys_api.deadline import allowed
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid, not_found
from journeys_api.openapi import (
    AUTH_ERRORS,
    CANCEL_EXAMPLES,
    CONFLICT,
    NOT_FOUND,
    SEARCH_EXAMPLES,
    TOO_LARGE,
    UNAVAILABLE,
    VALIDATION,
)
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Key, decode_cursor, next_cursor
from journeys_api.read_models import Row, RunFilter
from journeys_api.resources import Resources
from journeys_api.views import (
    TERMINAL_STATUSES,
    CancelRequest,
    RunCancelling,
    RunEvent,
    RunPage,
    RunSearch,
    RunStatus,
    RunTimeline,
    RunView,
)
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import CancelRun, CancelRunSealed
from journeys_runtime.sealing import seal_cancel_run

# Declared before `/journeys/{journeyId}`, which would otherwise take "runs" for a journey id.
router = APIRouter(prefix="/journeys/runs", tags=["runs"], route_class=AuditedRoute)

RunIdPath = Annotated[UUID, Path(alias="runId", description="the run's id")]
_RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: NOT_FOUND["run"],
    422: VALIDATION["runId"],
    503: UNAVAILABLE,
}


@router.get(
    "",
    summary="List runs, oldest first, filtered by journey, patient and status",
    description="A patient id in the query string stays in proxy, ingress and access logs: "
    "this form is for development. Elsewhere, search with `POST /journeys/runs/search`.",
    dependencies=[require(Scope.RUNS_READ)],
    responses={**AUTH_ERRORS, 422: VALIDATION["cursor"], 503: UNAVAILABLE},
    openapi_extra=audited(AuditAction.RUN_LIST),
)
async def list_runs(
    resources: ResourcesDep,
    journey_id: Annotated[UUID | None, Query(alias="journeyId")] = None,
    patient_id: Annotated[
        str | None,
        Query(alias="patientId", min_length=1, max_length=255,
              description="kept in logs along the way: search by body instead"),
    ] = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page")] = None,
) -> RunPage:  # fmt: skip
    if patient_id is not None and "\x00" in patient_id:
        raise invalid(("query", "patientId"), "must not contain the NUL character (U+0000)")
    filters = _filter(resources, journey_id, patient_id, status)
    return await _runs(resources, filters, limit, decode_cursor(cursor))


@router.post(
    "/search",
    summary="Search runs, oldest first, by journey, patient and status in the body",
    description="The filters and page of `GET /journeys/runs`, sent as JSON: the patient id "
    "stays out of the URL, and so out of proxy, ingress and access logs.",
    dependencies=[require(Scope.RUNS_READ)],
    responses={**AUTH_ERRORS, 413: TOO_LARGE, 422: VALIDATION["search"], 503: UNAVAILABLE},
    openapi_extra=audited(AuditAction.RUN_LIST),
)
async def search_runs(
    search: Annotated[RunSearch, Body(openapi_examples=SEARCH_EXAMPLES)],
    resources: ResourcesDep,
) -> RunPage:
    filters = _filter(resources, search.journey_id, search.patient_id, search.status)
    after = decode_cursor(search.cursor, ("body", "cursor"))
    return await _runs(resources, filters, search.limit, after)


def _filter(
    resources: Resources, journey_id: UUID | None, patient_id: str | None, status: str | None
) -> RunFilter:
    patient_key = None if patient_id is None else resources.patient_key(patient_id)
    return RunFilter(
        journey_id=journey_id, patient_id=patient_id, patient_key=patient_key, status=status
    )


async def _runs(resources: Resources, filters: RunFilter, limit: int, after: Key | None) -> RunPage:
    """One page of runs, noted for the audit record: a patient looked up and not found was
    still looked up. A sealed run whose patient was erased is left out (the page may then
    hold fewer items; the cursor still follows the rows read)."""
    if filters.patient_key is not None:
        touched(patient_key=filters.patient_key)
    if filters.journey_id is not None:
        touched(journey_id=filters.journey_id)
    rows = await resources.read_models.runs(filters, after, limit + 1)
    keys = [Key(row["created_at"], row["run_id"]) for row in rows]
    opened = await _opened(resources, rows[:limit])
    for row in opened:
        touched(run_id=row["run_id"], patient_key=resources.patient_key_of(row))
    return RunPage(items=[_view(row) for row in opened], next_cursor=next_cursor(keys, limit))


async def _opened(resources: Resources, rows: list[Row]) -> list[Row]:
    """The rows with their patient data in clear, those whose key is gone left out."""
    keys = await resources.data_keys.open_many(sealed_rows.sealed_patient_keys(rows))
    return [opened for row in rows if (opened := sealed_rows.open_run(row, keys)) is not None]


async def _readable_run(resources: Resources, run_id: UUID) -> Row:
    """The run's row in clear; 404 when there is none or its patient was erased."""
    row = await resources.read_models.run(run_id)
    opened = [] if row is None else await _opened(resources, [row])
    if not opened:
        raise not_found("run", run_id)
    return opened[0]


@router.get(
    "/{runId}", summary="Read a run's current state", responses=_RUN_ERRORS,
    dependencies=[require(Scope.RUNS_READ)], openapi_extra=audited(AuditAction.RUN_READ),
)  # fmt: skip
async def get_run(run_id: RunIdPath, resources: ResourcesDep) -> RunView:
    row = await _readable_run(resources, run_id)
    touched(patient_key=resources.patient_key_of(row))
    return _view(row)


@router.get(
    "/{runId}/events", summary="Read a run's events in seq order", responses=_RUN_ERRORS,
    dependencies=[require(Scope.RUNS_READ)], openapi_extra=audited(AuditAction.RUN_EVENTS_READ),
)  # fmt: skip
async def get_run_events(run_id: RunIdPath, resources: ResourcesDep) -> RunTimeline:
    found = await resources.read_models.run_events(run_id)
    if found is None:
        raise not_found("run", run_id)
    run, rows = found
    patient_key = resources.patient_key_of(run)
    key = None
    if sealed_rows.is_sealed(run) or any(map(sealed_rows.is_sealed_event, rows)):
        key = await resources.data_keys.get(patient_key)
    keys = {} if key is None else {patient_key: key}
    events = [sealed_rows.open_event(row, key) for row in rows]
    # Sealed under a key that is gone: the patient was erased, the projector not there yet.
    if not sealed_rows.readable(run, keys) or None in events:
        raise not_found("run", run_id)
    touched(patient_key=patient_key)
    return RunTimeline(run_id=run_id, events=[RunEvent.model_validate(e) for e in events])


@router.post(
    "/{runId}/cancel",
    status_code=202,
    summary="Ask for a run to stop",
    dependencies=[require(Scope.RUNS_CANCEL)],
    responses={**_RUN_ERRORS, 409: CONFLICT},
    openapi_extra=audited(AuditAction.RUN_CANCEL),
)
async def cancel_run(
    run_id: RunIdPath,
    resources: ResourcesDep,
    request: Annotated[CancelRequest | None, Body(openapi_examples=CANCEL_EXAMPLES)] = None,
) -> RunCancelling:
    """202 means the CancelRun command is in Kafka; the executor decides, the run then shows it."""
    row = await _readable_run(resources, run_id)
    patient_key = resources.patient_key_of(row)
    touched(patient_key=patient_key)
    if row["status"] in TERMINAL_STATUSES:
        raise HTTPException(
            409, f"Expected a run that has not ended, but run {run_id} is {row['status']}"
        )
    command = CancelRun(
        run_id=run_id, requested_at=datetime.now(UTC), reason=request.reason if request else None
    )
    await _publish_cancel(resources, command, patient_key, row)
    # Read-your-writes for a cancel: the executor's run.cancelled has no offset known here,
    # so watch the run itself, bounded like every other wait for the read side.
    until = time.monotonic() + allowed(resources.settings.read_your_writes_timeout_seconds)
    while time.monotonic() < until:
        await asyncio.sleep(0.02)
        now = await resources.read_models.run(run_id)
        if now is not None and now["status"] in TERMINAL_STATUSES:
            return RunCancelling(run_id=run_id, status=now["status"])
    return RunCancelling(run_id=run_id)


async def _publish_cancel(
    resources: Resources, command: CancelRun, patient_key: str, row: Row
) -> None:
    """A sealed run's cancel is produced while the key that sealed it is held, as a trigger's
    StartRun is, its reason (free text, which may quote patient data) sealed; 404 when the key
    is gone by then (the patient was erased since the run was read), and nothing is sent. An
    unsealed run's goes as CancelRun in clear, like the rest of its data: the executor holds
    that run unsealed and would refuse a sealed cancel of it."""
    topic, event_id = resources.topics.commands, str(uuid.uuid4())
    if not sealed_rows.was_sealed(row):
        await resources.publish(
            topic, patient_key, command, subject=command.run_id, event_id=event_id, wait=False
        )
        return
    async with resources.data_keys.held(patient_key, create=False) as held:
        if held is None or not sealed_rows.sealed_under(row, held.key):
            raise not_found("run", command.run_id)
        record: CancelRun | CancelRunSealed = command
        if command.reason is not None:  # no reason, nothing to seal
            record = seal_cancel_run(command, held.key, patient_key)
        await resources.publish(
            topic, patient_key, record, subject=command.run_id, event_id=event_id, wait=False
        )


def _view(row: Row) -> RunView:
    return RunView.model_validate(row)
