"""Commands on `journeys.commands.v1`: requests, in the imperative, that the executor decides on."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import Field, TypeAdapter, ValidationError

from journeys_contracts.definition import ChannelName, EventType, JourneyDefinition
from journeys_contracts.deliveries import DeliveryRequested, DeliveryRequestedSealed
from journeys_contracts.envelope import uuid5_text
from journeys_contracts.keys import PatientKey, RecipientKey
from journeys_contracts.sealed import SealedValue, WrappedDataKey
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type

MAX_RETRY_AFTER_SECONDS = 7 * 86400
"""The longest wait before another attempt at a message: a week."""


def _unset(value: object) -> bool:
    return value is None  # as in `events._unset`


class CommandBase(WireModel):
    run_id: UUID


class StartRun(CommandBase):
    """Start a run of `definition` (the journey's immutable snapshot) for one patient."""

    type: Literal["journeys.command.start_run.v1"] = "journeys.command.start_run.v1"
    journey_id: UUID
    patient_id: str
    patient_context: dict[str, Any]
    definition: JourneyDefinition
    requested_at: UtcDatetime


class FireTimer(CommandBase):
    """A timer came due; the executor applies it only if the run still waits on `timer_id`."""

    type: Literal["journeys.command.fire_timer.v1"] = "journeys.command.fire_timer.v1"
    timer_id: UUID
    due_at: UtcDatetime
    fired_at: UtcDatetime


class CancelRun(CommandBase):
    """Stop a run that has not ended; its pending timer, if any, is cancelled with it."""

    type: Literal["journeys.command.cancel_run.v1"] = "journeys.command.cancel_run.v1"
    requested_at: UtcDatetime
    reason: Annotated[str, Field(max_length=500)] | None = None


class RecordDelivery(CommandBase):
    """The outcome of handing message `message_id` to a channel (send number `attempt`).

    A failure with `retry_after_seconds` is worth another attempt that long from now; one
    without it is final. `reason` is the delivery service's own words (a status code, an error
    type), never a provider's text."""

    type: Literal["journeys.command.record_delivery.v1"] = "journeys.command.record_delivery.v1"
    message_id: UUID
    channel: str
    delivered: bool
    reason: str | None = None
    at: UtcDatetime
    attempt: Annotated[int, Field(ge=1)] = 1
    retry_after_seconds: Annotated[
        float | None, Field(ge=0, le=MAX_RETRY_AFTER_SECONDS, exclude_if=_unset)
    ] = None
    recipient_key: Annotated[RecipientKey | None, Field(exclude_if=_unset)] = None
    """Of a message sent by SMS: `recipient_key(secret, "sms", number)` of the number it went
    to, so a reply from that number finds the patient; never the number itself."""


class StartRunSealed(CommandBase):
    """`journeys.command.start_run.v1` with the patient's id and context sealed under their data
    key, which travels wrapped in `dataKey` so the executor can open them and seal what the run
    publishes. The API writes this type when it seals patient data; the executor reads both."""

    type: Literal["journeys.command.start_run.v2"] = "journeys.command.start_run.v2"
    journey_id: UUID
    patient_key: PatientKey
    patient_id: SealedValue
    patient_context: SealedValue
    data_key: WrappedDataKey
    definition: JourneyDefinition
    requested_at: UtcDatetime


class CancelRunSealed(CommandBase):
    """`journeys.command.cancel_run.v1` whose caller's reason (free text that may quote patient
    data) is sealed under the patient's data key."""

    type: Literal["journeys.command.cancel_run.v2"] = "journeys.command.cancel_run.v2"
    requested_at: UtcDatetime
    patient_key: PatientKey
    reason: SealedValue | None = None


EventId = Annotated[str, Field(min_length=1, max_length=200)]
"""A patient event's id, as its sender gave it: unique per patient, not globally."""


class ClinicFacts(WireModel):
    """What a clinic's weekly figures count of a patient event, read from its data where it
    names a clinic (`clinic_id` or `clinicId`): the clinic, the revenue as an exact decimal
    (`revenue_amount` or `revenueAmount`, a non-negative decimal; else none) and the treatment
    type (`treatment_type` or `treatmentType`). Clear in a sealed command too: operational
    figures, no identifier of the patient (the analytics keep them apart from the patient's
    key)."""

    clinic_id: Annotated[str, Field(min_length=1, max_length=200)]
    revenue_amount: Annotated[
        str | None, Field(pattern=r"^\d{1,13}(\.\d{1,6})?$", exclude_if=_unset)
    ] = None
    treatment_type: Annotated[str | None, Field(max_length=200, exclude_if=_unset)] = None


REPLIED = "message.replied"
"""The patient event a patient's reply to a message is (an SMS texted back: data `channel`,
`body`, `keyword`). The read models keep a reply's data, for the patient's conversation; of
every other patient event, only its receipt."""


class RecordPatientEvent(WireModel):
    """Something happened to a patient (an appointment booked, a form submitted): the executor
    starts the runs it triggers, resumes the runs waiting for it, ends the runs it exits, and
    keeps it a while for waits that begin later (look-back). The same `eventId` for the same
    patient has effect once.

    About a patient, not a run: no `runId`. Keyed by `patientKey`, in order with the patient's
    other commands. The CloudEvents subject is `receiptId`.
    """

    type: Literal["journeys.command.record_patient_event.v1"] = (
        "journeys.command.record_patient_event.v1"
    )
    receipt_id: UUID
    """`receipt_id(patient_key, event_id)`: names this event of this patient everywhere."""
    event_id: EventId
    patient_key: PatientKey
    patient_id: str
    event_type: EventType
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    source: Annotated[str, Field(min_length=1, max_length=300)]
    """The way in: `api`, `hook:<source>`, `topic:<topic>`, `sms` or `import:<importId>`;
    never patient data."""
    event_data: dict[str, Any] = Field(default_factory=dict)
    clinic: Annotated[ClinicFacts | None, Field(exclude_if=_unset)] = None
    """The event's clinic figures, when its data names a clinic."""


class RecordPatientEventSealed(WireModel):
    """`journeys.command.record_patient_event.v1` with the patient's id and the event's data
    sealed under the patient's data key, which travels wrapped in `dataKey`."""

    type: Literal["journeys.command.record_patient_event.v2"] = (
        "journeys.command.record_patient_event.v2"
    )
    receipt_id: UUID
    event_id: EventId
    patient_key: PatientKey
    patient_id: SealedValue
    event_type: EventType
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    source: Annotated[str, Field(min_length=1, max_length=300)]
    event_data: SealedValue
    data_key: WrappedDataKey
    clinic: Annotated[ClinicFacts | None, Field(exclude_if=_unset)] = None


RECEIPTS = UUID("6c1b3f0e-2d7a-5b8e-9f41-8a0c5d3e7b12")
"""The namespace of receipt ids."""


def receipt_id(patient_key: str, event_id: str) -> UUID:
    """The id of patient event `event_id` of the patient `patient_key`: stable across every way
    in and every retry, so it names the event in the executor's de-duplication, the read model
    and the CloudEvents id, without the patient's id."""
    return uuid5(RECEIPTS, f"{patient_key}:{event_id}")


def receipt_text(patient_key: str, event_id: str) -> str:
    """`str(receipt_id(patient_key, event_id))`, computed without building UUID objects (an
    import names a million events)."""
    return uuid5_text(_RECEIPTS_BYTES, f"{patient_key}:{event_id}".encode())


_RECEIPTS_BYTES = RECEIPTS.bytes


class ErasePatient(WireModel):
    """Forget a patient: the executor cancels the patient's runs that have not ended, drops the
    state of all of them and answers with `journeys.patient.erased.v1`.

    About a patient, not a run, so it has no `runId` and carries no patient id: the Kafka key
    (the patient key, which routes it in order with the patient's other commands) and
    `patientKey` name the patient. The CloudEvents subject is the erasure id.
    """

    type: Literal["journeys.command.erase_patient.v1"] = "journeys.command.erase_patient.v1"
    erasure_id: UUID
    patient_key: PatientKey
    requested_at: UtcDatetime
    run_ids: list[UUID] = Field(default_factory=list)
    """Runs of the patient the requester knows of (the API: its read model). The executor adds
    them to the runs it holds, so a run it has already forgotten is still erased downstream."""


class SetConsent(WireModel):
    """Grant or revoke a patient's consent to be messaged on some channels: the executor keeps
    it with the patient's state and checks it before every message (a message to a channel
    without consent is `journeys.message.suppressed.v1`, never sent). Channels not named keep
    what they had; every channel has consent until it is revoked.

    About a patient, not a run, and carrying no patient id: the Kafka key and `patientKey`
    name the patient, as `ErasePatient`'s do. The CloudEvents subject is the consent id.
    """

    type: Literal["journeys.command.set_consent.v1"] = "journeys.command.set_consent.v1"
    consent_id: UUID
    patient_key: PatientKey
    channels: dict[ChannelName, bool] = Field(min_length=1)
    """Each channel named: true grants consent, false revokes it."""
    source: Literal["api", "sms"]
    """Who asked: an operator or system through the API (`PUT /patients/{patientId}/consent`),
    or the patient's own STOP or START text (`POST /channels/sms/inbound`)."""
    changed_at: UtcDatetime


class RetryMessage(WireModel):
    """An operator asks for a message given up to be sent again (`POST
    /deliveries/{messageId}/retry`): `request` is its delivery request, built as the executor
    built the first (sealed as its run is). The executor checks the patient's consent to the
    request's channel, in order with the patient's other commands, and writes the request to
    the deliveries topic in its transaction, or dead-letters this command (stage `consent`)
    when the channel has no consent any more. The run is not involved: it went on when the
    message was given up.

    About a patient: the Kafka key and `patientKey` name the patient. The CloudEvents subject
    is the message id.
    """

    type: Literal["journeys.command.retry_message.v1"] = "journeys.command.retry_message.v1"
    patient_key: PatientKey
    request: Annotated[DeliveryRequested | DeliveryRequestedSealed, Field(discriminator="type")]
    requested_at: UtcDatetime


RunCommand = StartRun | FireTimer | CancelRun | RecordDelivery | StartRunSealed | CancelRunSealed
"""Every command about one run: a `CommandBase`, with `runId`."""
PatientCommand = (
    ErasePatient | RecordPatientEvent | RecordPatientEventSealed | SetConsent | RetryMessage
)
"""Every command about a patient rather than one run: keyed by `patientKey`, no `runId`."""
Command = Annotated[RunCommand | PatientCommand, Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES: tuple[type[WireModel], ...] = (
    StartRun,
    FireTimer,
    CancelRun,
    RecordDelivery,
    ErasePatient,
    StartRunSealed,
    CancelRunSealed,
    RecordPatientEvent,
    RecordPatientEventSealed,
    SetConsent,
    RetryMessage,
)


def decode_command(data: bytes) -> Command:
    """Parse a command value; raises `UnknownRecordType` for a command type of a newer version
    (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return COMMAND_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
