"""`/events`: record what happened to patients (an appointment booked, a form submitted).

Each accepted event becomes one `RecordPatientEvent` command on the commands topic, keyed by
its patient's key, in order with the patient's runs, so the executor starts, resumes and ends
their runs from it. Sealed (`RecordPatientEventSealed`) when the API seals patient data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from journeys_api import events_body, patient_events
from journeys_api.audit import AuditedRoute, audited, touched, touched_patients
from journeys_api.auth import Scope, require
from journeys_api.deps import ResourcesDep
from journeys_api.errors import not_found
from journeys_api.events_body import InboundEvent
from journeys_api.events_docs import DESCRIPTION, RESPONSES, openapi_body
from journeys_api.openapi import AUTH_ERRORS, NOT_FOUND, UNAVAILABLE, VALIDATION
from journeys_api.resources import Resources
from journeys_api.views import EventsAccepted, EventView
from journeys_contracts.audit import AuditAction

router = APIRouter(prefix="/events", tags=["events"], route_class=AuditedRoute)

SOURCE = "api"


@router.post(
    "",
    status_code=202,
    summary="Record patient events: one, or a batch of up to 1,000",
    description=DESCRIPTION,
    dependencies=[require(Scope.EVENTS_WRITE)],
    responses=RESPONSES,
    openapi_extra={**audited(AuditAction.EVENTS_RECORD), "requestBody": openapi_body()},
)
async def record_events(request: Request, resources: ResourcesDep) -> EventsAccepted:
    """Accepted means durable: every command is in Kafka when this answers 202."""
    events = events_body.parse(request.headers.get("content-type"), await request.body())
    return await record(resources, events, SOURCE)


async def record(resources: Resources, events: list[InboundEvent], source: str) -> EventsAccepted:
    """Send `events` from `source` (`api`, `hook:<name>`) as commands, each repeat of a
    patient and event id once; the answer of every HTTP way in."""
    received_at = datetime.now(UTC)
    accepted = patient_events.unique(events, resources.patient_key)
    touched_patients(a.patient_key for a in accepted)
    if accepted:
        await patient_events.publish(resources, accepted, received_at, source)
    return EventsAccepted(accepted=len(accepted), duplicates=len(events) - len(accepted))


@router.get(
    "/{eventId}",
    summary="Whether a patient event was received, and what it did",
    description="Every receipt of a patient event with this id (event ids are unique per "
    "patient, so several patients' events may share one; none is named here) and the runs "
    "each started, resumed or exited. Read models follow Kafka within milliseconds: an "
    "event answered 202 a moment ago may still be a 404, or show no effect yet.",
    dependencies=[require(Scope.EVENTS_READ)],
    responses={
        **AUTH_ERRORS,
        404: NOT_FOUND["event"],
        422: VALIDATION["eventId"],
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.EVENTS_READ),
)
async def get_event(
    event_id: Annotated[
        str, Path(alias="eventId", min_length=1, max_length=200, description="the sender's id")
    ],
    resources: ResourcesDep,
) -> EventView:
    rows = await resources.read_models.event(event_id)
    if not rows:
        raise not_found("event", event_id)
    receipts: dict[Any, dict[str, Any]] = {}
    for row in rows:
        receipt = receipts.get(row["receipt_id"])
        if receipt is None:
            touched_patients([row["patient_key"]])
            receipt = receipts[row["receipt_id"]] = {
                "receiptId": row["receipt_id"], "type": row["event_type"],
                "source": row["source"], "occurredAt": row["occurred_at"],
                "receivedAt": row["received_at"], "effects": [],
            }  # fmt: skip
        if row["effect"] is not None:
            touched(run_id=row["run_id"])
            receipt["effects"].append({
                "effect": row["effect"], "runId": row["run_id"], "journeyId": row["journey_id"],
                "nodeId": row["node_id"], "at": row["effect_at"],
            })  # fmt: skip
    return EventView.model_validate({"eventId": event_id, "receipts": list(receipts.values())})
