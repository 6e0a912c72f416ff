"""Commands on `journeys.commands.v1`: requests, in the imperative, that the executor decides on."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.keys import PatientKey
from journeys_contracts.sealed import SealedValue, WrappedDataKey
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type


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
    """The outcome of handing message `message_id` to a channel."""

    type: Literal["journeys.command.record_delivery.v1"] = "journeys.command.record_delivery.v1"
    message_id: UUID
    channel: str
    delivered: bool
    reason: str | None = None
    at: UtcDatetime


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


RunCommand = StartRun | FireTimer | CancelRun | RecordDelivery | StartRunSealed | CancelRunSealed
"""Every command about one run: a `CommandBase`, with `runId`."""
Command = Annotated[RunCommand | ErasePatient, Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES: tuple[type[WireModel], ...] = (
    StartRun,
    FireTimer,
    CancelRun,
    RecordDelivery,
    ErasePatient,
    StartRunSealed,
    CancelRunSealed,
)


def decode_command(data: bytes) -> Command:
    """Parse a command value; raises `UnknownRecordType` for a command type of a newer version
    (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return COMMAND_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
