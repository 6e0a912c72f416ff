"""`/hooks/{source}`: patient events from senders that sign webhooks (Standard Webhooks).

The signature is the credential: no API key or token here. A request signed under the
source's secret, with a `webhook-timestamp` within five minutes, carries one event (a JSON
object) where the source's mapping says; it lands exactly as `POST /events` lands it, as a
`RecordPatientEvent` command with source `hook:<source>`.

Replays have no effect. With no `eventId` pointer, the event id is the `webhook-id`; with
one, it is read from the signed body, which a replay must repeat byte for byte (the signature
covers id, timestamp and body). Either way a replay within the five minutes is the same event
id of the same patient, so the same receipt id, which the executor takes once; after them the
signature check refuses it.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from journeys_api import event_mapping
from journeys_api.audit import AuditedRoute, audited
from journeys_api.auth import Principal
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid, not_found
from journeys_api.event_mapping import Given, MappingFailedError
from journeys_api.examples import error, json_example, response
from journeys_api.openapi import UNAVAILABLE
from journeys_api.routers.events import record
from journeys_api.views import EventsAccepted
from journeys_api.webhook_sources import verified
from journeys_contracts.audit import AuditAction

router = APIRouter(prefix="/hooks", tags=["hooks"], route_class=AuditedRoute)

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# One answer for every failed check: which part failed would help a forger, not a sender.
UNVERIFIED = "webhook signature or timestamp invalid"


@router.post(
    "/{source}",
    status_code=202,
    summary="Record a patient event a signed webhook carries",
    description="A Standard Webhooks request (`webhook-id`, `webhook-timestamp`, "
    "`webhook-signature`, HMAC-SHA256 under the source's secret, five minutes' tolerance) "
    "whose JSON object body holds one patient event where the source's mapping "
    "(`API_WEBHOOK_SOURCES`) points. 202 once the event is durably in Kafka; a replay has no "
    "effect. 401 for any failed signature or timestamp check, 404 for an unknown source, 422 "
    "naming the JSON pointer of a field the body lacks or holds wrongly.",
    responses={
        401: response(
            UNVERIFIED, unverified=json_example("any failed webhook check", {"detail": UNVERIFIED})
        ),
        404: response(
            "No webhook source of this name is configured",
            unknown=json_example(
                "unknown webhook source", {"detail": "webhook source billing not found"}
            ),
        ),
        422: response(
            "The body is not one JSON object holding an event where the source's "
            "pointers say; each error names the pointer",
            missing=json_example(
                "no patient id at the pointer", error(["body", "/patient/id"], "patientId: missing")
            ),
        ),
        503: UNAVAILABLE,
    },
    openapi_extra=audited(AuditAction.EVENTS_RECORD),
)
async def receive_hook(
    source: Annotated[str, Path(min_length=1, max_length=100, description="the sender's name")],
    request: Request,
    resources: ResourcesDep,
) -> EventsAccepted:
    sender = resources.settings.webhook_sources.get(source)
    if sender is None:
        raise not_found("webhook source", source)
    body = await request.body()
    headers = {name: request.headers.get(name, "") for name in HEADERS}
    if not verified(sender, body, headers):
        raise HTTPException(401, UNVERIFIED)
    request.state.principal = Principal(f"hook:{source}", frozenset())
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}]
        ) from None
    if not isinstance(document, dict):
        raise invalid(
            ("body",), "Input should be a JSON object: one event per webhook", "model_type"
        )
    sources = event_mapping.sources_of(sender, Given(headers["webhook-id"], "header webhook-id"))
    try:
        event = event_mapping.read(document, sources)
    except MappingFailedError as exc:
        errors = [
            {"type": "value_error", "loc": ("body", e.where), "msg": f"{e.field}: {e.message}"}
            for e in exc.errors
        ]
        raise RequestValidationError(errors) from None
    return await record(resources, [event], f"hook:{source}")
