"""`/deliveries`: the messages given up, for the operators who see to them.

A message is given up when its last attempt failed for good (`message.failed`: a provider's
final refusal, the last of its attempts, a channel not configured, a template the context
cannot fill); the delivery service parks its request in the DLQ. This lists them from the read
model's timelines, oldest first, without their text: who, where and why, in our own words.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from journeys_api import sealed_rows
from journeys_api.audit import AuditedRoute, audited, touched
from journeys_api.auth import Scope, require
from journeys_api.deps import ResourcesDep
from journeys_api.openapi import AUTH_ERRORS, UNAVAILABLE, VALIDATION
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Key, decode_cursor, next_cursor
from journeys_api.read_models import Row
from journeys_api.resources import Resources
from journeys_api.views import DeliveryPage, FailedMessage
from journeys_contracts.audit import AuditAction

router = APIRouter(prefix="/deliveries", tags=["deliveries"], route_class=AuditedRoute)


@router.get(
    "",
    summary="List messages given up, oldest first",
    description="Messages whose last attempt failed for good, with their run, node, channel, "
    "attempts and our reason; never their text. A message of a patient since erased is left "
    "out. `status` is `failed` (the only kind listed yet).",
    dependencies=[require(Scope.DELIVERIES_READ)],
    responses={**AUTH_ERRORS, 422: VALIDATION["cursor"], 503: UNAVAILABLE},
    openapi_extra=audited(AuditAction.DELIVERIES_LIST),
)
async def list_deliveries(
    resources: ResourcesDep,
    status: Literal["failed"] = "failed",
    journey_id: Annotated[UUID | None, Query(alias="journeyId")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`nextCursor` of the previous page")] = None,
) -> DeliveryPage:
    if journey_id is not None:
        touched(journey_id=journey_id)
    rows = await resources.read_models.failed_messages(journey_id, decode_cursor(cursor),
                                                       limit + 1)  # fmt: skip
    keys = [Key(row["occurred_at"], UUID(row["data"]["messageId"])) for row in rows]
    patient_keys = {row["patient_key"] for row in rows[:limit] if sealed_rows.is_sealed_event(row)}
    data_keys = await resources.data_keys.open_many(patient_keys)
    items = []
    for row in rows[:limit]:
        opened = sealed_rows.open_event(row, data_keys.get(row["patient_key"]))
        if opened is None:  # sealed under a key that is gone: the patient was erased
            continue
        touched(run_id=row["run_id"], patient_key=_patient_key(resources, row))
        items.append(_view(row, opened["data"]))
    return DeliveryPage(items=items, next_cursor=next_cursor(keys, limit))


def _patient_key(resources: Resources, row: Row) -> str:
    return row.get("patient_key") or resources.patient_key(row["patient_id"])


def _view(row: Row, data: dict[str, Any]) -> FailedMessage:
    return FailedMessage(
        message_id=data["messageId"], run_id=row["run_id"], journey_id=row["journey_id"],
        node_id=data["nodeId"], channel=data["channel"], reason=data["reason"],
        attempts=data.get("attempt") or 1, failed_at=row["occurred_at"],
    )  # fmt: skip
