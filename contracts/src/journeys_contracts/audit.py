"""Records on `journeys.audit.v1`: who reached which run or journey, when, with what result.

The API writes one record for every request to a journey, run, patient or event route that
presented credentials, before it answers. A record names people and things by identifiers
only: the caller's subject, run and journey ids, and the patients' keys (keyed hashes, see
`journeys_contracts.keys`), never a patient id, a patient context or a message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field, ValidationError

from journeys_contracts.keys import PatientKey
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type

__all__ = ["AccessRecorded", "AuditAction", "AuditOutcome", "PatientKey", "decode_audit"]


class AuditAction(StrEnum):
    """What the request asked for; one per route."""

    JOURNEY_CREATE = "journeys.create"
    JOURNEY_LIST = "journeys.list"
    JOURNEY_READ = "journeys.read"
    RUN_TRIGGER = "runs.trigger"
    RUN_LIST = "runs.list"
    RUN_READ = "runs.read"
    RUN_EVENTS_READ = "runs.events.read"
    RUN_CANCEL = "runs.cancel"
    PATIENT_ERASE = "patients.erase"
    EVENTS_RECORD = "events.record"
    EVENTS_READ = "events.read"
    CONSENT_SET = "patients.consent"
    CONSENT_READ = "patients.consent.read"
    DELIVERIES_LIST = "deliveries.list"
    DELIVERIES_RETRY = "deliveries.retry"
    SMS_INBOUND = "channels.sms.inbound"
    IMPORTS_CREATE = "imports.create"
    IMPORTS_READ = "imports.read"
    IMPORTS_LIST = "imports.list"
    IMPORTS_ERRORS_READ = "imports.errors.read"
    ANALYTICS_READ = "analytics.read"
    CONVERSATION_READ = "patients.conversation.read"


class AuditOutcome(StrEnum):
    """The result: done (2xx), refused for who asked (401, 403), refused for what was asked
    (other 4xx), or not done on our side (5xx)."""

    SUCCEEDED = "succeeded"
    DENIED = "denied"
    REJECTED = "rejected"
    FAILED = "failed"


def outcome_of(status: int) -> AuditOutcome:
    if status < 400:
        return AuditOutcome.SUCCEEDED
    if status in (401, 403):
        return AuditOutcome.DENIED
    if status < 500:
        return AuditOutcome.REJECTED
    return AuditOutcome.FAILED


class AccessRecorded(WireModel):
    """A request reached a journey or run route; its answer was sent only after this record
    was in Kafka. `patientKeys` holds the keyed hash of each patient whose data the request
    read or changed: to find who reached a patient, compute their key and search for it."""

    type: Literal["journeys.audit.access_recorded.v1"] = "journeys.audit.access_recorded.v1"
    audit_id: UUID
    occurred_at: UtcDatetime = Field(description="when the API answered")
    # No length limit: the issuer chooses `sub`, and a record this model refused would turn
    # the caller's answer into an error.
    subject: str | None = Field(
        description="`jwt:<sub>`, `key:<API key name>` or `dev`; null when the credentials "
        "sent were refused (400, 401) or the body was not JSON (read before credentials)",
    )
    action: AuditAction
    method: str = Field(max_length=16)
    route: str = Field(description="the route template, e.g. `/journeys/runs/{runId}`")
    status: int = Field(ge=100, le=599, description="the HTTP status of the answer")
    outcome: AuditOutcome
    request_id: str = Field(
        description="the request's trace id (W3C traceparent or X-Request-ID), as in the logs",
        max_length=128,
    )
    journey_id: UUID | None = None
    run_ids: list[UUID] = Field(
        default_factory=list, description="the runs the request named, changed or read"
    )
    patient_keys: list[PatientKey] = Field(
        default_factory=list,
        description="keyed hashes (HMAC-SHA256, hex) of the patients the request concerned: "
        "looked up, read, triggered for or changed; never their ids",
    )


def decode_audit(data: bytes) -> AccessRecorded:
    """Parse a audit record; raises `UnknownRecordType` for a record type of a newer version
    (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return AccessRecorded.model_validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
