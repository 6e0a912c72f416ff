"""`/events`: record what happened to patients (an appointment booked, a form submitted).

Each accepted event becomes one `RecordPatientEvent` command on the commands topic, keyed by
its patient's key, in order with the patient's runs, so the executor starts, resumes and ends
their runs from it. Sealed (`RecordPatientEventSealed`) when the API seals patient data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from journeys_api import deadline, events_body
from journeys_api.audit import AuditedRoute, audited, touched, touched_patients
from journeys_api.auth import Scope, require
from journeys_api.data_keys import HeldKey
from journeys_api.deps import ResourcesDep
from journeys_api.errors import TooLargeError, not_found
from journeys_api.events_body import InboundEvent
from journeys_api.events_docs import DESCRIPTION, RESPONSES, openapi_body
from journeys_api.openapi import AUTH_ERRORS, NOT_FOUND, UNAVAILABLE, VALIDATION
from journeys_api.publisher import Message
from journeys_api.resources import Resources
from journeys_api.views import EventsAccepted, EventView
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import RecordPatientEvent, RecordPatientEventSealed, receipt_id
from journeys_contracts.sealed import SealedValue, WrappedDataKey
from journeys_runtime.sealing import seal_value, to_wire

router = APIRouter(prefix="/events", tags=["events"], route_class=AuditedRoute)

SOURCE = "api"


@dataclass(frozen=True)
class _Accepted:
    """An event to send, with its body index (for a 413) and its patient's key."""

    index: int
    event: InboundEvent
    patient_key: str


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
    received_at = datetime.now(UTC)
    keys: dict[str, str] = {}
    unique: dict[tuple[str, str], _Accepted] = {}
    for index, event in enumerate(events):
        key = keys.get(event.patient_id)
        if key is None:
            key = keys[event.patient_id] = resources.patient_key(event.patient_id)
        unique.setdefault((key, event.event_id), _Accepted(index, event, key))
    touched_patients(keys.values())
    accepted = list(unique.values())
    if accepted:
        await _publish(resources, accepted, received_at)
    return EventsAccepted(accepted=len(accepted), duplicates=len(events) - len(accepted))


async def _publish(resources: Resources, accepted: list[_Accepted], received_at: datetime) -> None:
    """Every command produced before any acknowledgement is awaited. Sealed: while every
    patient's data key is held, as a trigger holds its patient's, so no erasure of these
    patients comes between their key and their events on the partition."""
    send = resources.publisher.send_many
    topic = resources.topics.commands
    max_wait = deadline.allowed(resources.settings.produce_timeout_seconds)
    if not resources.settings.patient_data_sealing:
        await send(topic, _messages(resources, accepted, received_at, None), max_wait=max_wait)
        return
    async with resources.data_keys.held_many(a.patient_key for a in accepted) as held:
        messages = _messages(resources, accepted, received_at, held)
        await send(topic, messages, max_wait=max_wait)


def _messages(
    resources: Resources, accepted: list[_Accepted], received_at: datetime,
    held: Mapping[str, HeldKey] | None,
) -> list[Message]:  # fmt: skip
    """The commands as Kafka records; 413 naming the event when one cannot fit a record."""
    messages = []
    patients: dict[str, _SealedPatient] = {}
    for item in accepted:
        receipt = str(receipt_id(item.patient_key, item.event.event_id))
        record = (
            _command(item, receipt, received_at) if held is None
            else _sealed(item, receipt, received_at, held[item.patient_key], patients)
        )  # fmt: skip
        try:
            messages.append(resources.publisher.prepare(
                item.patient_key, record, subject=receipt, event_id=receipt
            ))  # fmt: skip
        except TooLargeError as exc:
            raise TooLargeError(f"event {item.index}: {exc.detail}") from exc
    return messages


def _fields(item: _Accepted, receipt: str, received_at: datetime) -> dict[str, Any]:
    event = item.event
    return {
        "receipt_id": receipt, "event_id": event.event_id, "patient_key": item.patient_key,
        "event_type": event.type, "occurred_at": event.occurred_at or received_at,
        "received_at": received_at, "source": SOURCE,
    }  # fmt: skip


def _command(item: _Accepted, receipt: str, received_at: datetime) -> RecordPatientEvent:
    return RecordPatientEvent(
        **_fields(item, receipt, received_at),
        patient_id=item.event.patient_id, event_data=item.event.data,
    )  # fmt: skip


@dataclass(frozen=True)
class _SealedPatient:
    """What every sealed event of one patient in the request carries alike, made once."""

    patient_id: SealedValue
    data_key: WrappedDataKey


def _sealed(
    item: _Accepted, receipt: str, received_at: datetime, held: HeldKey,
    patients: dict[str, _SealedPatient],
) -> RecordPatientEventSealed:  # fmt: skip
    """The patient id and the event's data sealed under the patient's key, each bound to its
    field's wire name, as `journeys_runtime.sealing.seal_fields` seals them; the patient's
    sealed id and wrapped key once per patient and request (`patients`)."""
    patient = patients.get(item.patient_key)
    if patient is None:
        sealed_id = seal_value(held.key, item.patient_key, "patientId", item.event.patient_id)
        patient = patients[item.patient_key] = _SealedPatient(sealed_id, to_wire(held.wrapped))
    return RecordPatientEventSealed(
        **_fields(item, receipt, received_at),
        patient_id=patient.patient_id,
        event_data=seal_value(held.key, item.patient_key, "eventData", item.event.data),
        data_key=patient.data_key,
    )  # fmt: skip


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
