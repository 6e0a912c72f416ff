"""`/patients`: erase a patient, and follow the erasure until the read models have forgotten them;
set a patient's consent to be messaged per channel, and read it back.

What an erasure removes, where and how fast: docs/security.md. In short, this route stores the
erasure, forgets the API's own traces of the patient's requests, and puts an ErasePatient
command in Kafka under the patient key; the executor drops the patient's runs, the projector
deletes them from the read models and records the erasure, which makes it `done` here.
Nothing here answers, records or logs the patient id: the audit record names the patient key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, get_args
from uuid import UUID

from fastapi import APIRouter, Body, Path, Response

from journeys_api import conversations, outbox
from journeys_api.audit import AuditedRoute, audited, touched
from journeys_api.auth import Principal, Scope, require
from journeys_api.bodies import MAX_PATIENT_ID_LENGTH
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid, not_found
from journeys_api.openapi import (
    AUTH_ERRORS,
    CONSENT_ACCEPTED,
    CONSENT_EXAMPLES,
    ERASURE_ACCEPTED,
    ERASURE_EXAMPLES,
    ERASURE_STATES,
    NOT_FOUND,
    TOO_LARGE,
    UNAVAILABLE,
    VALIDATION,
)
from journeys_api.resources import Resources
from journeys_api.views import (
    ChannelConsent,
    ConsentAccepted,
    ConsentRequest,
    ConsentView,
    ConversationRequest,
    ConversationView,
    ErasureAccepted,
    ErasureRequest,
    ErasureView,
)
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import SetConsent
from journeys_contracts.definition import ChannelName

router = APIRouter(prefix="/patients", tags=["patients"], route_class=AuditedRoute)

Eraser = Annotated[Principal, require(Scope.PATIENTS_ERASE)]
PatientIdPath = Annotated[
    str, Path(alias="patientId", min_length=1, max_length=MAX_PATIENT_ID_LENGTH,
              description="the patient's id, as in the patient context's `id`"),
]  # fmt: skip
_ERASE_ERRORS: dict[int | str, dict[str, Any]] = {**AUTH_ERRORS, 503: UNAVAILABLE}
_AFTER = (
    " Answers once the erasure is stored and its command is in Kafka; when Kafka does not "
    "acknowledge in time, 503 with `Retry-After`, and the erasure still completes (the API "
    "sends it again in the background). A repeat while an erasure of the patient is pending "
    "answers that erasure."
)


@router.post(
    "/erasures",
    status_code=202,
    summary="Erase a patient named in the body (recommended)",
    description="The patient id travels in the body, so it stays out of proxy, ingress and "
    "access logs." + _AFTER,
    responses={
        **_ERASE_ERRORS, 202: ERASURE_ACCEPTED, 413: TOO_LARGE, 422: VALIDATION["erasure"],
    },
    openapi_extra=audited(AuditAction.PATIENT_ERASE),
)  # fmt: skip
async def erase_by_body(
    request: Annotated[ErasureRequest, Body(openapi_examples=ERASURE_EXAMPLES)],
    resources: ResourcesDep,
    response: Response,
    caller: Eraser,
) -> ErasureAccepted:
    return await _erase(resources, response, caller, request.patient_id)


@router.delete(
    "/{patientId}",
    status_code=202,
    summary="Erase a patient named in the path",
    description="The patient id in the path stays in proxy, ingress and access logs: prefer "
    "`POST /patients/erasures`, which also takes ids this form cannot (one holding `/` "
    "names no route here)." + _AFTER,
    responses={**_ERASE_ERRORS, 202: ERASURE_ACCEPTED, 422: VALIDATION["patientId"]},
    openapi_extra=audited(AuditAction.PATIENT_ERASE),
)
async def erase_by_path(
    patient_id: PatientIdPath, resources: ResourcesDep, response: Response, caller: Eraser
) -> ErasureAccepted:
    _check_path_id(patient_id)
    return await _erase(resources, response, caller, patient_id)


@router.put(
    "/{patientId}/consent",
    status_code=202,
    summary="Grant or revoke a patient's consent to be messaged, per channel",
    description="Every channel has consent until it is revoked here. The change goes to the "
    "executor in order with the patient's other commands: a message decided after it to a "
    "channel without consent is `message.suppressed` (reason `consent`) and never sent; a "
    "message already handed to its provider is not called back. Channels not named keep "
    "what they had. Audited. When Kafka does not acknowledge in time, 503 with "
    "`Retry-After`: send it again (setting consent twice is harmless).",
    dependencies=[require(Scope.CONSENT_WRITE)],
    responses={
        **_ERASE_ERRORS, 202: CONSENT_ACCEPTED, 413: TOO_LARGE, 422: VALIDATION["consent"],
    },
    openapi_extra=audited(AuditAction.CONSENT_SET),
)  # fmt: skip
async def set_consent(
    patient_id: PatientIdPath,
    request: Annotated[ConsentRequest, Body(openapi_examples=CONSENT_EXAMPLES)],
    resources: ResourcesDep,
) -> ConsentAccepted:
    _check_path_id(patient_id)
    key = resources.patient_key(patient_id)
    touched(patient_key=key)
    command = SetConsent(
        consent_id=uuid.uuid4(), patient_key=key, channels=request.channels, source="api",
        changed_at=datetime.now(UTC),
    )  # fmt: skip
    await resources.publish(
        resources.topics.commands, key, command, subject=command.consent_id,
        event_id=str(command.consent_id), wait=False,
    )  # fmt: skip
    return ConsentAccepted(consent_id=command.consent_id, channels=command.channels)


@router.get(
    "/{patientId}/consent",
    summary="Read a patient's consent to be messaged, per channel",
    description="Every channel, whether it may message the patient, and the last change: who "
    "made it (`api`, or `sms` for a STOP or START the patient texted) and when. A channel "
    "never revoked has consent and no change; so does every channel of a patient never seen. "
    "As the executor applies the changes, in order; the read models follow Kafka within "
    "milliseconds, so a change answered 202 a moment ago may not show yet. An erased "
    "patient's changes are gone with them.",
    dependencies=[require(Scope.CONSENT_READ)],
    responses={**_ERASE_ERRORS, 422: VALIDATION["patientId"]},
    openapi_extra=audited(AuditAction.CONSENT_READ),
)
async def get_consent(patient_id: PatientIdPath, resources: ResourcesDep) -> ConsentView:
    _check_path_id(patient_id)
    key = resources.patient_key(patient_id)
    touched(patient_key=key)
    rows = {row["channel"]: row for row in await resources.read_models.consent(key)}
    channels: dict[ChannelName, ChannelConsent] = {}
    for channel in get_args(ChannelName):
        row = rows.get(channel)
        channels[channel] = ChannelConsent(granted=True) if row is None else ChannelConsent(
            granted=row["granted"], source=row["source"], changed_at=row["changed_at"],
            consent_id=row["consent_id"],
        )  # fmt: skip
    return ConsentView(channels=channels)


@router.post(
    "/conversation",
    summary="Read a patient's conversation: messages out and replies in",
    description="The patient's last `limit` messages, oldest first: each message their "
    "journeys sent them (its text as rendered for them, its channel and what became of it) "
    "and each reply they sent back (a `message.replied` event: an SMS texted back, or the "
    "same event sent to `POST /events`). The patient id travels in the body, so it stays out "
    "of proxy, ingress and access logs. Patient data, so the scope of the runs' timelines, "
    "`runs:read`; each read is audited. A patient never messaged has an empty conversation. "
    "Read models follow Kafka within milliseconds.",
    dependencies=[require(Scope.RUNS_READ)],
    responses={**_ERASE_ERRORS, 413: TOO_LARGE, 422: VALIDATION["conversation"]},
    openapi_extra=audited(AuditAction.CONVERSATION_READ),
)
async def read_conversation(
    request: ConversationRequest, resources: ResourcesDep
) -> ConversationView:
    key = resources.patient_key(request.patient_id)
    touched(patient_key=key)
    return await conversations.conversation(resources, key, request.limit)


def _check_path_id(patient_id: str) -> None:
    if not patient_id.strip() or "\x00" in patient_id:
        raise invalid(
            ("path", "patientId"),
            f"must have 1 to {MAX_PATIENT_ID_LENGTH} non-blank characters",
        )


@router.get(
    "/erasures/{erasureId}",
    summary="Follow an erasure: pending until the read models have forgotten the patient",
    dependencies=[require(Scope.PATIENTS_ERASE)],
    responses={
        **_ERASE_ERRORS, 200: ERASURE_STATES, 404: NOT_FOUND["erasure"],
        422: VALIDATION["erasureId"],
    },
    openapi_extra=audited(AuditAction.PATIENT_ERASE),
)  # fmt: skip
async def get_erasure(
    erasure_id: Annotated[UUID, Path(alias="erasureId", description="the erasure's id")],
    resources: ResourcesDep,
) -> ErasureView:
    erasure = await resources.erasures.get(erasure_id)
    if erasure is None:
        raise not_found("erasure", erasure_id)
    touched(patient_key=erasure.patient_key)
    return ErasureView(
        erasure_id=erasure.erasure_id, status=erasure.status,
        requested_at=erasure.requested_at, done_at=erasure.done_at,
    )  # fmt: skip


async def _erase(
    resources: Resources, response: Response, caller: Principal, patient_id: str
) -> ErasureAccepted:
    key = resources.patient_key(patient_id)
    touched(patient_key=key)

    # A repeat of an erasure Kafka already has sends nothing again.
    erasure = await resources.erasures.request(
        key, patient_id, caller.subject, outbox.producer(resources.send_erasure)
    )
    response.headers["Location"] = f"/patients/erasures/{erasure.erasure_id}"
    return ErasureAccepted(erasure_id=erasure.erasure_id)
