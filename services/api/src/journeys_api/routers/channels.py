"""`/channels/sms/inbound`: the SMS gateway's webhook for texts patients send back.

The gateway signs each request (`X-Twilio-Signature`) with the account's auth token
(`API_SMS_AUTH_TOKEN`), the credential here: no API key or token. A text from a number is
taken to the patients whose messages went to that number (the read models keep a keyed hash
of it with every `message.sent` by SMS, never the number), the most recently texted first:

- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END or QUIT (the whole text, any case) revokes the
  patient's consent to SMS, START or UNSTOP restores it: a `SetConsent` command with source
  `sms`, in order with the patient's other commands, before the reply's event;
- HELP or INFO is answered with `API_SMS_HELP_TEXT`;
- every text, keyword or not, is the patient event `message.replied` (source `sms`, event id
  `sms:<MessageSid>`), so journeys can wait for replies.

Answers 200 with TwiML once Kafka has every command. A repeat of a `MessageSid` whose
commands are in Kafka changes nothing; the gateway's signature carries no timestamp, so this
is also what makes a captured request useless to replay.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from journeys_api import sealed_rows, sms_inbound
from journeys_api.audit import AuditedRoute, audited, touched_patients
from journeys_api.auth import Principal
from journeys_api.deps import ResourcesDep
from journeys_api.errors import invalid
from journeys_api.events_body import InboundEvent
from journeys_api.examples import error, json_example, response
from journeys_api.metrics import SMS_INBOUND
from journeys_api.openapi import UNAVAILABLE
from journeys_api.resources import Resources
from journeys_api.routers.events import record
from journeys_contracts.audit import AuditAction
from journeys_contracts.commands import REPLIED, SetConsent
from journeys_contracts.keys import recipient_key

router = APIRouter(prefix="/channels", tags=["channels"], route_class=AuditedRoute)

SOURCE = "sms"
# One answer for every failed check: which part failed would help a forger, not a gateway.
UNVERIFIED = "SMS gateway signature invalid"
NOT_CONFIGURED = "inbound SMS is not configured"
_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")
CONSENT_IDS = uuid.UUID("3f0c2a9e-6d41-5b7a-9c8e-1b2d3e4f5a60")
"""The namespace of the consent ids of texted STOPs and STARTs (one per message and patient)."""

_FORM = {
    "required": ["MessageSid", "From"],
    "properties": {
        "MessageSid": {"type": "string", "pattern": _SID.pattern,
                       "description": "the gateway's id of the text"},
        "From": {"type": "string", "description": "the patient's number, E.164"},
        "To": {"type": "string", "description": "our number"},
        "Body": {"type": "string", "description": "the text"},
        "AccountSid": {"type": "string"},
    },
    "type": "object",
}  # fmt: skip


@router.post(
    "/sms/inbound",
    summary="Take a text a patient sent back (the SMS gateway's webhook)",
    description="Twilio's inbound-message webhook: a form signed in `X-Twilio-Signature` "
    "with the account's auth token over the URL the gateway called (`API_SMS_INBOUND_URL`). "
    "STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT revoke the sender's consent to SMS, START "
    "and UNSTOP restore it, HELP and INFO are answered with the configured help text; every "
    "text becomes the patient event `message.replied` (data: `channel`, `body`, `keyword`) "
    "of each patient whose messages went to the number. 200 with TwiML once Kafka has every "
    "command, also for a number no message went to (nothing is recorded then). 401 for a "
    "failed signature, 404 when inbound SMS is not configured, 422 naming a missing field.",
    responses={
        200: {"description": "TwiML: the help text for HELP, empty otherwise",
              "content": {"application/xml": {"example": sms_inbound.answer("help", "…")}}},
        401: response(UNVERIFIED, unverified=json_example(
            "any failed SMS signature check", {"detail": UNVERIFIED})),
        404: response(NOT_CONFIGURED, unconfigured=json_example(
            "no SMS auth token configured", {"detail": NOT_CONFIGURED})),
        422: response("A field the gateway always sends is missing or malformed",
                      no_sender=json_example("no From", error(["body", "From"],
                                                              "Field required", "missing"))),
        503: UNAVAILABLE,
    },
    openapi_extra={
        **audited(AuditAction.SMS_INBOUND),
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": _FORM}}},
    },
)  # fmt: skip
async def receive_sms(request: Request, resources: ResourcesDep) -> Response:
    settings = resources.settings
    if settings.sms_auth_token is None:
        raise HTTPException(404, NOT_CONFIGURED)
    try:
        form = sms_inbound.form_of(await request.body())
    except UnicodeDecodeError:
        raise invalid(("body",), "the form must be UTF-8") from None
    url = settings.sms_inbound_url or str(request.url)
    if not sms_inbound.verified(
        settings.sms_auth_token.get_secret_value(), url, form, request.headers
    ):
        raise HTTPException(401, UNVERIFIED)
    request.state.principal = Principal("sms:gateway", frozenset())
    sid, sender, text = _fields(form)
    keyword = sms_inbound.keyword_of(text)
    twiml = Response(sms_inbound.answer(keyword, settings.sms_help_text),
                     media_type=sms_inbound.TWIML)  # fmt: skip
    if not await sms_inbound.claim(resources.pool, sid):
        SMS_INBOUND.labels(keyword or "none", "repeat").inc()
        return twiml
    secret = settings.patient_key_secret.get_secret_value()
    patients = await _patients_of(resources, recipient_key(secret, "sms", sender))
    SMS_INBOUND.labels(keyword or "none", "matched" if patients else "unknown_sender").inc()
    if patients:
        await _publish(resources, patients, sid, text, keyword)
    await sms_inbound.mark_published(resources.pool, sid)
    return twiml


def _fields(form: Any) -> tuple[str, str, str]:
    errors = [
        {"type": "missing", "loc": ("body", name), "msg": "Field required"}
        for name in ("MessageSid", "From") if not form.get(name)
    ]  # fmt: skip
    if errors:
        raise RequestValidationError(errors)
    sid = form["MessageSid"]
    if not _SID.match(sid):
        raise invalid(
            ("body", "MessageSid"), f"must match {_SID.pattern}", "string_pattern_mismatch"
        )
    return sid, form["From"], form.get("Body", "")


async def _patients_of(resources: Resources, recipient: str) -> list[tuple[str, str]]:
    """(patient key, patient id) of the patients texted at the number, most recent first;
    one whose key is gone (erased, not yet deleted from the read models) is left out."""
    rows = await resources.read_models.sms_recipients(
        recipient, resources.settings.sms_max_patients_per_number
    )
    keys = await resources.data_keys.open_many(sealed_rows.sealed_patient_keys(rows))
    found = []
    for row in rows:
        patient_id = sealed_rows.patient_id_of(row, keys)
        if patient_id is not None:
            found.append((row["patient_key"], patient_id))
    return found


async def _publish(
    resources: Resources,
    patients: list[tuple[str, str]],
    sid: str,
    text: str,
    keyword: sms_inbound.Keyword | None,
) -> None:
    """The consent change first, then the reply, each patient's in order on their partition."""
    touched_patients(key for key, _ in patients)
    now = datetime.now(UTC)
    consent = sms_inbound.CONSENT_OF.get(keyword) if keyword else None
    if consent is not None:
        for key, _ in patients:
            command = SetConsent(
                consent_id=uuid.uuid5(CONSENT_IDS, f"{sid}:{key}"), patient_key=key,
                channels={"sms": consent}, source=SOURCE, changed_at=now,
            )  # fmt: skip
            await resources.publish(
                resources.topics.commands, key, command, subject=command.consent_id,
                event_id=str(command.consent_id), wait=False,
            )  # fmt: skip
    data = {"channel": "sms", "body": text, "keyword": keyword}
    events = [
        InboundEvent(f"sms:{sid}", patient_id, REPLIED, now, data) for _, patient_id in patients
    ]
    await record(resources, events, SOURCE)
