"""Response bodies: camelCase field names, as integrations read them; times in UTC ISO 8601."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.alias_generators import to_camel

from journeys_api import examples
from journeys_api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from journeys_contracts.definition import ChannelName, JourneyDefinition
from journeys_contracts.statuses import TERMINAL, RunStatus
from journeys_contracts.wire import UtcDatetime

TERMINAL_STATUSES = TERMINAL


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class JourneyCreated(_View):
    journey_id: UUID


class JourneyView(JourneyDefinition):
    """The definition exactly as submitted, plus its id and creation time. Tolerant like the
    read model it comes from: a row a newer version stored may carry fields this one ignores."""

    model_config = ConfigDict(
        populate_by_name=True, json_schema_extra={"examples": [examples.JOURNEY_VIEW]}
    )

    journey_id: UUID = Field(alias="journeyId")
    created_at: UtcDatetime = Field(alias="createdAt")


class JourneyPage(_View):
    items: list[JourneyView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class RunAccepted(_View):
    run_id: UUID


class EventsAccepted(_View):
    """How many events of the request were sent, and how many repeated an earlier one of the
    same request (the same patient and `eventId`) and were sent once."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 2, "duplicates": 1}]})

    accepted: int
    duplicates: int


class EventEffect(_View):
    """What a patient event did to one run: `started` it (a journey's trigger), `resumed` it
    (a WAIT_FOR_EVENT node met; `nodeId` the wait) or `exited` it (the journey's `exit_on`;
    `nodeId` where the run was)."""

    effect: Literal["started", "resumed", "exited"]
    run_id: UUID
    journey_id: UUID
    node_id: str | None
    at: UtcDatetime


class EventReceipt(_View):
    """One patient's event with this id, as received: event ids are unique per patient, so
    several patients' events may share one. No patient id: `receiptId` names it."""

    receipt_id: UUID
    type: str
    source: str
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    effects: list[EventEffect]


class EventView(_View):
    """Whether an event was received, and which runs it started, resumed or exited."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "eventId": "ehr-7781",
        "receipts": [{
            "receiptId": "0b7f3c1e-5d2a-5c4e-9a6b-2f1d8e7c6b5a", "type": "appointment.booked",
            "source": "api", "occurredAt": "2026-12-03T10:00:00Z",
            "receivedAt": "2026-12-03T10:00:00.120Z",
            "effects": [{"effect": "started", "runId": "5f0c2d9e-8b1a-5e4f-a3c7-6d2b1e9f0a8c",
                         "journeyId": "9a7e6d5c-4b3a-4c2d-8e1f-0a9b8c7d6e5f",
                         "nodeId": None, "at": "2026-12-03T10:00:00.180Z"}],
        }],
    }]})  # fmt: skip

    event_id: str
    receipts: list[EventReceipt]


class RunCancelling(_View):
    """`cancelled` once the run shows it (normally within milliseconds); else `cancelling`,
    or the other end state the run reached first (a cancel races the run's own end)."""

    run_id: UUID
    status: Literal["cancelling", "cancelled", "completed", "failed"] = "cancelling"


class RunView(_View):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.RUN_VIEW]})

    run_id: UUID
    journey_id: UUID
    patient_id: str
    status: RunStatus
    current_node_id: str | None
    patient_context: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    wake_at: UtcDatetime | None = Field(description="when a waiting delay is due")
    error: str | None = Field(description="why the run failed")
    waiting_for: str | None = Field(
        None, description="the patient event type a `waiting_event` run waits for"
    )
    waiting_until: UtcDatetime | None = Field(
        None, description="when a `waiting_event` run stops waiting and times out"
    )


class RunPage(_View):
    items: list[RunView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class RunEvent(_View):
    seq: int
    type: str
    occurred_at: UtcDatetime
    data: dict[str, Any]


class RunTimeline(_View):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.TIMELINE]})

    run_id: UUID
    events: list[RunEvent]


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str | None = Field(None, max_length=500, description="recorded on run.cancelled")


class RunSearch(BaseModel):
    """The filters and page of `GET /journeys/runs`, in a body: a patient id here stays out
    of the URL, and so out of proxy, ingress and access logs."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False,
        json_schema_extra={"examples": [{"patientId": "patient-123", "limit": 50}]},
    )  # fmt: skip

    journey_id: UUID | None = None
    patient_id: str | None = Field(None, min_length=1, max_length=255)
    status: RunStatus | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="`nextCursor` of the previous page")

    @field_validator("patient_id")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


class ErasureRequest(BaseModel):
    """Whom to erase, in a body: the patient id stays out of the URL, and so out of proxy,
    ingress and access logs."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False,
        json_schema_extra={"examples": [{"patientId": "patient-123"}]},
    )  # fmt: skip

    patient_id: str = Field(min_length=1, max_length=255, pattern=r"\S")

    @field_validator("patient_id")
    @classmethod
    def _storable(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


class ConsentRequest(BaseModel):
    """The channels whose consent changes: true grants, false revokes; the others keep theirs."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False,
        json_schema_extra={"examples": [{"channels": {"sms": False}}]},
    )  # fmt: skip

    channels: dict[ChannelName, StrictBool] = Field(min_length=1)


class ConsentAccepted(_View):
    """The change is in Kafka, in order with the patient's other commands: every message the
    executor decides after it is checked against it."""

    consent_id: UUID
    channels: dict[ChannelName, bool]


class ChannelConsent(_View):
    """Whether the patient may be messaged on a channel, and the last change (none: the
    channel was never revoked, so it has consent)."""

    granted: bool
    source: Literal["api", "sms"] | None = None
    """Who made the last change: the API (`PUT .../consent`) or the patient texting STOP or
    START."""
    changed_at: UtcDatetime | None = None
    consent_id: UUID | None = None


class ConsentView(_View):
    """A patient's consent, every channel, as the executor applies it (read models follow
    Kafka within milliseconds)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"channels": {
        "sms": {"granted": False, "source": "sms", "changedAt": "2025-03-01T09:30:01.402117Z",
                "consentId": "6f1d2c3b-4a59-5e6f-8a7b-9c0d1e2f3a4b"},
        "email": {"granted": True, "source": None, "changedAt": None, "consentId": None},
        "webhook": {"granted": True, "source": None, "changedAt": None, "consentId": None},
        "console": {"granted": True, "source": None, "changedAt": None, "consentId": None},
    }}]})  # fmt: skip

    channels: dict[ChannelName, ChannelConsent]


class ConversationRequest(ErasureRequest):
    """Whose conversation, in a body (the patient id stays out of the URL, and so out of
    proxy, ingress and access logs), and how many of its last messages."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"patientId": "patient-123", "limit": 50}]}
    )

    limit: int = Field(100, ge=1, le=500)


MessageStatus = Literal["requested", "retrying", "sent", "failed", "suppressed", "deferred"]


class ConversationMessage(_View):
    """One message of a patient's conversation: out (a journey's message to the patient) or
    in (the patient's reply, the patient event `message.replied`)."""

    direction: Literal["out", "in"]
    at: UtcDatetime
    """Out: when the journey asked for the message; in: when the patient sent the reply."""
    channel: str | None = None
    """Out: the channel that sent it, else the one asked for (none: the default); in: the
    channel the reply came by."""
    text: str | None = None
    """Out: the message as the journey rendered it for the patient (none for a message
    suppressed before it was rendered); in: the reply's text."""
    status: MessageStatus | None = None
    """Out only: what became of it, as the delivery service last reported."""
    reason: str | None = None
    """Out only: why it failed, was suppressed or deferred, in our own words."""
    keyword: Literal["stop", "start", "help"] | None = None
    """In only: the reply was this opt-out, opt-in or help keyword."""
    message_id: UUID | None = None
    run_id: UUID | None = None
    journey_id: UUID | None = None
    node_id: str | None = None
    event_id: str | None = None
    """In only: the patient event's id (an SMS's is `sms:<gateway message id>`)."""


class ConversationView(_View):
    """A patient's messages out and replies in, oldest first: the last `limit` of them."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.CONVERSATION]})

    messages: list[ConversationMessage]
    more: bool
    """Older messages exist beyond `limit`."""


class RetryOutcome(_View):
    """An operator's retry of a message given up: attempt `attempt`, and the delivery
    service's report of it. `pending`: not reported yet, or never sent because the patient
    revoked consent to the channel since (the retry is then in the DLQ, stage `consent`)."""

    attempt: int
    status: Literal["pending", "sent", "failed"]
    reason: str | None = None
    reported_at: UtcDatetime | None = None


class FailedMessage(_View):
    """A message given up: its last attempt failed for good. Our own words for why (`gateway
    answered 410`, `channel sms is not configured`, `template`), never the message's text."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.FAILED_MESSAGE]})

    message_id: UUID
    run_id: UUID
    journey_id: UUID
    node_id: str
    channel: str
    status: Literal["failed"] = "failed"
    reason: str
    attempts: int
    failed_at: UtcDatetime
    retried_at: UtcDatetime | None = Field(
        None, description="when an operator sent it again (`POST .../retry`), once"
    )
    retry: RetryOutcome | None = Field(
        None, description="what became of the operator's retry, once the executor passed it on"
    )


class RetryAccepted(_View):
    """The retry is on its way to the delivery service, once the executor has checked the
    patient's consent. Its outcome is not in the run's timeline (the run went on): `GET
    /deliveries` shows it (`retry`: sent, failed or pending); a retry given up again is also
    parked in the DLQ again."""

    message_id: UUID
    attempt: int
    status: Literal["requested"] = "requested"


class DeliveryPage(_View):
    items: list[FailedMessage]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class ErasureAccepted(_View):
    """The erasure is recorded and its command is in Kafka; follow it at `Location`."""

    erasure_id: UUID
    status: Literal["pending"] = "pending"


class ErasureView(_View):
    """`done` once the read models have forgotten the patient (`doneAt`); until then
    `pending`. Names the erasure only: never the patient."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.ERASURE_VIEW]})

    erasure_id: UUID
    status: Literal["pending", "done"]
    requested_at: UtcDatetime
    done_at: UtcDatetime | None = Field(description="when the read models forgot the patient")


class ImportAccepted(_View):
    """The file is stored; an importer reads it (`GET /imports/{importId}` follows it). The same
    bytes, or the same Idempotency-Key, uploaded again answer the same import."""

    import_id: UUID
    status: Literal["uploading", "queued", "processing", "completed", "failed"]


class RowProblem(_View):
    """A row not imported: its number (the header is row 1), the line it ends on, the column
    (none: the row as a whole) and why, never a cell's value."""

    row: int
    line: int | None = None
    column: str | None = None
    reason: str


class ImportView(_View):
    """An import's state and figures; revenue is exact (a decimal string)."""

    import_id: UUID
    status: Literal["uploading", "queued", "processing", "completed", "failed"]
    file_name: str | None = None
    bytes: int
    rows_read: int
    accepted: int
    rejected: int
    duplicates: int
    revenue: str
    reason: str | None = None
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    rows_per_second: float | None = None
    chat: ChatFigures
    errors: list[RowProblem]
    """The first 100 rows not imported, by row."""


class ChatFigures(_View):
    """What became of the import's messages to the team's chat (the progress webhook, when
    the deployment names one): taken by it, attempts that failed (each retried with
    backoff), messages given up, and the last failure (a status or an error type)."""

    delivered: int
    failed_attempts: int
    given_up: int
    last_error: str | None = None


class ImportPage(_View):
    items: list[ImportView]
    """Each import as `GET /imports/{importId}` answers it, without its `errors`."""
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class RowProblemPage(_View):
    items: list[RowProblem]
    next_after: int | None = Field(description="pass as `after` for the next page; null: last")


class WeeklyFigures(_View):
    """One clinic's ISO week: `week` is its Monday in the zone asked for."""

    week: date
    iso_week: str
    clinic_id: str
    revenue: str
    revenue_by_treatment_type: dict[str, str]
    treatments_completed: int
    appointments: int
    bookings: int
    events: int


class WeeklyPage(_View):
    tz: str
    weeks: list[WeeklyFigures]
    """By week, then clinic."""


class Detail(BaseModel):
    """The body of 404, 409, 413 and 503 answers."""

    detail: str
