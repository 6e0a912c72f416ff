"""Events on `journeys.events.v2`: the events of `journeys.events.v1` with patient data sealed.

Each `.v2` type has every field of its `.v1` twin, with the same name and meaning, except that
`patientId`, `patientContext`, `message`, `reason`, `note` and `eventData` hold a
`SealedValue` (see `journeys_contracts.sealed`), and `patientKey` names the patient (the
Kafka key, also in the value). Same key, same partition count, same CloudEvents headers as
v1. Erasing a patient deletes the data key, after which the sealed fields of every copy are
noise while the rest of each event (ids, nodes, times, outcomes) stays readable history.

`journeys.patient.erased.v1` carries no patient data and is published on this topic as it is.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from journeys_contracts.definition import ChannelName, JourneyDefinition
from journeys_contracts.events import NodeType, PatientErased
from journeys_contracts.keys import PatientKey, RecipientKey
from journeys_contracts.sealed import SealedValue
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type


def _unset(value: object) -> bool:
    return value is None  # as in `events._unset`


class SealedEventBase(WireModel):
    """Every v2 run event names its run and its patient key; the patient id is sealed."""

    run_id: UUID
    journey_id: UUID
    patient_key: PatientKey
    patient_id: SealedValue
    seq: Annotated[int, Field(ge=1)]
    occurred_at: UtcDatetime


class RunStartedSealed(SealedEventBase):
    type: Literal["journeys.run.started.v2"] = "journeys.run.started.v2"
    journey_name: str
    start_node_id: str
    patient_context: SealedValue
    definition: JourneyDefinition
    trigger_event_id: Annotated[str | None, Field(exclude_if=_unset)] = None
    trigger_event_type: Annotated[str | None, Field(exclude_if=_unset)] = None
    trigger_receipt_id: Annotated[UUID | None, Field(exclude_if=_unset)] = None


class NodeEnteredSealed(SealedEventBase):
    type: Literal["journeys.node.entered.v2"] = "journeys.node.entered.v2"
    node_id: str
    node_type: NodeType


class MessageRequestedSealed(SealedEventBase):
    type: Literal["journeys.message.requested.v2"] = "journeys.message.requested.v2"
    node_id: str
    message_id: UUID
    message: SealedValue
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None
    language: Annotated[SealedValue | None, Field(exclude_if=_unset)] = None


class MessageSentSealed(SealedEventBase):
    type: Literal["journeys.message.sent.v2"] = "journeys.message.sent.v2"
    node_id: str
    message_id: UUID
    channel: str
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None
    recipient_key: Annotated[RecipientKey | None, Field(exclude_if=_unset)] = None


class MessageFailedSealed(SealedEventBase):
    type: Literal["journeys.message.failed.v2"] = "journeys.message.failed.v2"
    node_id: str
    message_id: UUID
    channel: str
    reason: SealedValue
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None


class MessageDeferredSealed(SealedEventBase):
    type: Literal["journeys.message.deferred.v2"] = "journeys.message.deferred.v2"
    node_id: str
    message_id: UUID
    message: SealedValue
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    language: Annotated[SealedValue | None, Field(exclude_if=_unset)] = None
    reason: SealedValue
    timer_id: UUID
    due_at: UtcDatetime


class MessageSuppressedSealed(SealedEventBase):
    type: Literal["journeys.message.suppressed.v2"] = "journeys.message.suppressed.v2"
    node_id: str
    message_id: UUID
    channel: str
    reason: SealedValue


class MessageRetryingSealed(SealedEventBase):
    type: Literal["journeys.message.retrying.v2"] = "journeys.message.retrying.v2"
    node_id: str
    message_id: UUID
    channel: str
    attempt: Annotated[int, Field(ge=1)]
    reason: SealedValue
    timer_id: UUID
    due_at: UtcDatetime


class ConditionEvaluatedSealed(SealedEventBase):
    type: Literal["journeys.condition.evaluated.v2"] = "journeys.condition.evaluated.v2"
    node_id: str
    field: str
    operator: str
    result: bool
    next_node_id: str | None
    note: SealedValue | None = None


class DelayStartedSealed(SealedEventBase):
    type: Literal["journeys.delay.started.v2"] = "journeys.delay.started.v2"
    node_id: str
    timer_id: UUID
    duration_seconds: float
    due_at: UtcDatetime


class DelayElapsedSealed(SealedEventBase):
    type: Literal["journeys.delay.elapsed.v2"] = "journeys.delay.elapsed.v2"
    node_id: str
    timer_id: UUID
    due_at: UtcDatetime
    fired_at: UtcDatetime


class RunCompletedSealed(SealedEventBase):
    type: Literal["journeys.run.completed.v2"] = "journeys.run.completed.v2"
    last_node_id: str | None


class RunFailedSealed(SealedEventBase):
    type: Literal["journeys.run.failed.v2"] = "journeys.run.failed.v2"
    node_id: str | None
    reason: SealedValue


class RunCancelledSealed(SealedEventBase):
    type: Literal["journeys.run.cancelled.v2"] = "journeys.run.cancelled.v2"
    node_id: str | None
    reason: SealedValue | None = None
    cancelled_timer_id: UUID | None = None
    exit_event_id: Annotated[str | None, Field(exclude_if=_unset)] = None
    exit_event_type: Annotated[str | None, Field(exclude_if=_unset)] = None


class EventWaitingSealed(SealedEventBase):
    type: Literal["journeys.event.waiting.v2"] = "journeys.event.waiting.v2"
    node_id: str
    event_type: str
    timer_id: UUID
    timeout_seconds: float
    due_at: UtcDatetime
    lookback_seconds: float = 0


class EventMatchedSealed(SealedEventBase):
    type: Literal["journeys.event.matched.v2"] = "journeys.event.matched.v2"
    node_id: str
    event_id: str
    event_type: str
    receipt_id: UUID
    event_occurred_at: UtcDatetime
    event_data: SealedValue
    lookback: bool = False
    cancelled_timer_id: UUID | None = None


class EventTimedOutSealed(SealedEventBase):
    type: Literal["journeys.event.timed_out.v2"] = "journeys.event.timed_out.v2"
    node_id: str
    timer_id: UUID
    due_at: UtcDatetime
    fired_at: UtcDatetime


class RunExitedSealed(SealedEventBase):
    type: Literal["journeys.run.exited.v2"] = "journeys.run.exited.v2"
    node_id: str | None
    event_id: str
    event_type: str
    receipt_id: UUID


SealedRunEvent = (
    RunStartedSealed
    | NodeEnteredSealed
    | MessageRequestedSealed
    | MessageSentSealed
    | MessageFailedSealed
    | ConditionEvaluatedSealed
    | DelayStartedSealed
    | DelayElapsedSealed
    | RunCompletedSealed
    | RunFailedSealed
    | RunCancelledSealed
    | EventWaitingSealed
    | EventMatchedSealed
    | EventTimedOutSealed
    | RunExitedSealed
    | MessageRetryingSealed
    | MessageDeferredSealed
    | MessageSuppressedSealed
)
"""Every v2 event about one run: a `SealedEventBase`, with `runId` and `seq`."""

SealedEvent = Annotated[SealedRunEvent | PatientErased, Field(discriminator="type")]
SEALED_EVENT_ADAPTER: TypeAdapter[SealedEvent] = TypeAdapter(SealedEvent)
SEALED_EVENT_TYPES: tuple[type[WireModel], ...] = (
    RunStartedSealed,
    NodeEnteredSealed,
    MessageRequestedSealed,
    MessageSentSealed,
    MessageFailedSealed,
    ConditionEvaluatedSealed,
    DelayStartedSealed,
    DelayElapsedSealed,
    RunCompletedSealed,
    RunFailedSealed,
    RunCancelledSealed,
    EventWaitingSealed,
    EventMatchedSealed,
    EventTimedOutSealed,
    RunExitedSealed,
    MessageRetryingSealed,
    MessageDeferredSealed,
    MessageSuppressedSealed,
)
"""The v2 run event types (`PatientErased` is v1's, listed in `events.EVENT_TYPES`)."""
TERMINAL_SEALED_EVENT_TYPES = frozenset(
    {RunCompletedSealed.model_fields["type"].default,
     RunFailedSealed.model_fields["type"].default,
     RunCancelledSealed.model_fields["type"].default}
)  # fmt: skip


def decode_sealed_event(data: bytes) -> SealedEvent:
    """Parse a value of `journeys.events.v2`; raises `UnknownRecordType` for a type of a newer
    version (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return SEALED_EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
