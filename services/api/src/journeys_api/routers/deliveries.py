"""`/deliveries`: the messages given up, for the operators who see to them.

A message is given up when its last attempt failed for good (`message.failed`: a provider's
final refusal, the last of its attempts, a channel not configured, a template the context
cannot fill); the delivery service parks its request in the DLQ. This lists them from the read
model's timelines, oldest first, without their text: who, where and why, in our own words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query

from journeys_api import sealed_rows
from journeys_api.audit import AuditedRoute, audited, touched
from journeys_api.auth import Principal, Scope, require
from journeys_api.deps import ResourcesDep
from journeys_api.errors import UndeliveredError, not_found
from journeys_api.openapi import (
    AUTH_ERRORS,
    NOT_FOUND,
    NOT_GIVEN_UP,
    RETRY_ACCEPTED,
    UNAVAILABLE,
    VALIDATION,
)
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Key, decode_cursor, next_cursor
from journeys_api.read_models import Row
from journeys_api.resources import Resources
from journeys_api.views import DeliveryPage, FailedMessage, RetryAccepted, RetryOutcome
from journeys_contracts import events as ev
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import RetryMessage
from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.deliveries import DeliveryRequested, delivery_id, delivery_request
from journeys_runtime.sealing import seal_delivery, to_wire

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
        touched(run_id=row["run_id"], patient_key=resources.patient_key_of(row))
        items.append(_view(row, opened["data"]))
    return DeliveryPage(items=items, next_cursor=next_cursor(keys, limit))


def _view(row: Row, data: dict[str, Any]) -> FailedMessage:
    return FailedMessage(
        message_id=data["messageId"], run_id=row["run_id"], journey_id=row["journey_id"],
        node_id=data["nodeId"], channel=data["channel"], reason=data["reason"],
        attempts=data.get("attempt") or 1, failed_at=row["occurred_at"],
        retried_at=row.get("retried_at"), retry=_retry(row),
    )  # fmt: skip


def _retry(row: Row) -> RetryOutcome | None:
    if row.get("retry_attempt") is None:
        return None
    delivered = row["retry_delivered"]
    status = "pending" if delivered is None else "sent" if delivered else "failed"
    return RetryOutcome(attempt=row["retry_attempt"], status=status, reason=row["retry_reason"],
                        reported_at=row["retry_reported_at"])  # fmt: skip


@router.post(
    "/{messageId}/retry",
    status_code=202,
    summary="Send a message given up again, once",
    description="Hands the message back to the delivery service as it was asked for (its text, "
    "channel, address and subject), under the same message id, which the provider "
    "de-duplicates on, and the next attempt, through the executor, which sends nothing to a "
    "channel the patient has revoked consent to since (the retry is then parked in the DLQ, "
    "stage `consent`). Once per message: a second retry is a 409, as is a message that was "
    "never asked for (its template could not be filled). The run does not wait for it (it "
    "went on when the message was given up); a retry given up again is parked in the DLQ "
    "again.",
    responses={
        **AUTH_ERRORS, 202: RETRY_ACCEPTED, 404: NOT_FOUND["message"], 409: NOT_GIVEN_UP,
        422: VALIDATION["messageId"], 503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.DELIVERIES_RETRY),
)  # fmt: skip
async def retry_delivery(
    message_id: Annotated[UUID, Path(alias="messageId", description="the message's id")],
    resources: ResourcesDep,
    caller: Annotated[Principal, require(Scope.DELIVERIES_WRITE)],
) -> RetryAccepted:
    events = await resources.read_models.message_events(message_id)
    row = None if not events else await resources.read_models.run(events[0]["run_id"])
    if row is None:
        raise not_found("message", message_id)
    patient_key = resources.patient_key_of(row)
    keys = await resources.data_keys.open_many(sealed_rows.sealed_patient_keys([row]))
    run = sealed_rows.open_run(row, keys)
    opened = [sealed_rows.open_event(e, keys.get(patient_key)) for e in events]
    if run is None or None in opened:  # the patient was erased
        raise not_found("message", message_id)
    touched(run_id=row["run_id"], patient_key=patient_key)
    last = opened[-1]
    assert last is not None
    if last["type"] != ev.type_of(ev.MessageFailed):
        raise HTTPException(
            409,
            "Expected a message given up, but its last outcome is "
            f"{last['type'].removeprefix('journeys.').removesuffix('.v1')}",
        )
    asked = [e["data"] for e in opened if e and e["type"] == ev.type_of(ev.MessageRequested)]
    if not asked:  # failed before it was asked for: nothing was rendered to send
        raise HTTPException(409, "Expected a message that was asked for, but it failed "
                                 f"before ({last['data'].get('reason')})")  # fmt: skip
    journey = await resources.read_models.journey(row["journey_id"])
    definition = None if journey is None else JourneyDefinition.model_validate(
        journey["definition"]
    )  # fmt: skip
    attempt = (last["data"].get("attempt") or 1) + 1
    request = delivery_request(
        message_id=message_id, run_id=row["run_id"], journey_id=row["journey_id"],
        node_id=asked[-1]["nodeId"], patient_key=patient_key, patient_id=run["patient_id"],
        channel=asked[-1].get("channel"), message=asked[-1]["message"], attempt=attempt,
        requested_at=datetime.now(UTC), context=run["patient_context"], definition=definition,
    )  # fmt: skip
    async with resources.pool.connection() as conn:
        claimed = await conn.execute(_CLAIM, (message_id, row["run_id"], attempt, caller.subject))
        if await claimed.fetchone() is None:
            before = await (await conn.execute(_CLAIMED, (message_id,))).fetchone()
            retried = before[0].isoformat() if before else "an earlier time"
            raise HTTPException(409, "Expected a message not retried yet, but it was retried "
                                     f"at {retried}")  # fmt: skip
    try:
        await _publish(resources, request, sealed_rows.was_sealed(row))
    except UndeliveredError:  # on its way to Kafka still: the claim stands
        raise
    except BaseException:  # not handed over: the retry may be asked for again
        async with resources.pool.connection() as conn:
            await conn.execute(_UNCLAIM, (message_id,))
        raise
    return RetryAccepted(message_id=message_id, attempt=attempt)


_CLAIM = (
    "INSERT INTO api_delivery_replays (message_id, run_id, attempt, subject) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING message_id"
)
_CLAIMED = "SELECT requested_at FROM api_delivery_replays WHERE message_id = %s"
_UNCLAIM = "DELETE FROM api_delivery_replays WHERE message_id = %s"


async def _publish(resources: Resources, request: DeliveryRequested, sealed: bool) -> None:
    """A RetryMessage on the commands topic under the patient key, in order with the patient's
    other commands (a consent revoked before it is honoured by the executor), its request
    sealed as its run is, while the patient's key is held (an erasure waits until Kafka has
    it); 404 once the key is gone."""
    topic, key = resources.topics.commands, request.patient_key
    event_id = delivery_id(request.message_id, request.attempt)
    now = datetime.now(UTC)
    if not sealed:
        command = RetryMessage(patient_key=key, request=request, requested_at=now)
        await resources.publish(topic, key, command, subject=request.message_id,
                                event_id=event_id, wait=False)  # fmt: skip
        return
    async with resources.data_keys.held(key, create=False) as held:
        if held is None:
            raise not_found("message", request.message_id)
        sealed_request = seal_delivery(request, held.key, to_wire(held.wrapped))
        command = RetryMessage(patient_key=key, request=sealed_request, requested_at=now)
        await resources.publish(topic, key, command, subject=request.message_id,
                                event_id=event_id, wait=False)  # fmt: skip
