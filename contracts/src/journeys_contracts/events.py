"""Events on `journeys.events.v1`: facts, in the past tense, that other teams build on."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from journeys_contracts.definition import ChannelName, JourneyDefinition
from journeys_contracts.keys import PatientKey, RecipientKey
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type

NodeType = Literal["MESSAGE", "DELAY", "CONDITIONAL", "WAIT_FOR_EVENT"]


def _unset(value: object) -> bool:
    """Optional fields added to an existing event are left out of it while unset: the event
    of a run that uses no patient events is then byte for byte what it was before them."""
    return value is None


class EventBase(WireModel):
    """Every event names its run and patient and carries a gapless per-run `seq` (1, 2, …)."""

    run_id: UUID
    journey_id: UUID
    patient_id: str
    seq: Annotated[int, Field(ge=1)]
    occurred_at: UtcDatetime
    sealed_twin: bool = False
    """True when the run's events are also published with their patient data sealed on
    `journeys.events.v2`: a reader of both topics takes this run from there and skips it here."""


class RunStarted(EventBase):
    type: Literal["journeys.run.started.v1"] = "journeys.run.started.v1"
    journey_name: str
    start_node_id: str
    patient_context: dict[str, Any]
    definition: JourneyDefinition
    trigger_event_id: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The patient event that started the run through one of the journey's triggers; None for
    a run started by a request."""
    trigger_event_type: Annotated[str | None, Field(exclude_if=_unset)] = None
    trigger_receipt_id: Annotated[UUID | None, Field(exclude_if=_unset)] = None


class NodeEntered(EventBase):
    type: Literal["journeys.node.entered.v1"] = "journeys.node.entered.v1"
    node_id: str
    node_type: NodeType


class MessageRequested(EventBase):
    type: Literal["journeys.message.requested.v1"] = "journeys.message.requested.v1"
    node_id: str
    message_id: UUID
    message: str
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    """The channel the node or the patient's context chose; absent: the delivery service's
    default. The channel that sent it is in `journeys.message.sent.v1`."""
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None
    """Set from the second attempt on (after a `journeys.message.retrying.v1`): the same
    message, the same `messageId`, sent again."""
    language: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The language of the node's `templates` the patient's `language` chose; absent: the
    node's `message` was used."""


class MessageSent(EventBase):
    type: Literal["journeys.message.sent.v1"] = "journeys.message.sent.v1"
    node_id: str
    message_id: UUID
    channel: str
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None
    """The attempt that was sent, from the second on."""
    recipient_key: Annotated[RecipientKey | None, Field(exclude_if=_unset)] = None
    """Set when the message went by SMS: a keyed hash of the number it went to
    (`journeys_contracts.keys.recipient_key`), never the number. A reply from that number is
    matched to the patient by it."""


class MessageFailed(EventBase):
    type: Literal["journeys.message.failed.v1"] = "journeys.message.failed.v1"
    node_id: str
    message_id: UUID
    channel: str
    reason: str
    attempt: Annotated[int | None, Field(ge=2, exclude_if=_unset)] = None
    """The last attempt, from the second on."""


class MessageDeferred(EventBase):
    """Message `messageId` may not go out now: the run waits on timer `timerId` until `dueAt`,
    then asks for it (`journeys.message.requested.v1`). `reason` says why: `quiet_hours`, it
    is due inside quiet hours in the patient's time zone (`dueAt` is the first minute after
    them); `frequency_cap`, the patient has had as many messages as the deployment allows in
    its rolling window (`dueAt` is when the oldest of them leaves the window, or the end of
    quiet hours after that). `message` is the text as rendered now."""

    type: Literal["journeys.message.deferred.v1"] = "journeys.message.deferred.v1"
    node_id: str
    message_id: UUID
    message: str
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    language: Annotated[str | None, Field(exclude_if=_unset)] = None
    reason: Literal["quiet_hours", "frequency_cap"] = "quiet_hours"
    timer_id: UUID
    due_at: UtcDatetime


class MessageSuppressed(EventBase):
    """Message `messageId` is not sent, and never will be: `reason` `consent`, the patient has
    revoked consent to `channel` (`default`: the deployment's default channel); or
    `frequency_cap`, the patient has had as many messages as the deployment allows in its
    rolling window. The run goes on to the node's next node, as after a message sent."""

    type: Literal["journeys.message.suppressed.v1"] = "journeys.message.suppressed.v1"
    node_id: str
    message_id: UUID
    channel: str
    reason: Literal["consent", "frequency_cap"]


class MessageRetrying(EventBase):
    """Attempt `attempt` at message `messageId` failed, and another is worth making: the run
    waits on timer `timerId`, due at `dueAt`, then asks for the message again
    (`journeys.message.requested.v1` with the next `attempt`)."""

    type: Literal["journeys.message.retrying.v1"] = "journeys.message.retrying.v1"
    node_id: str
    message_id: UUID
    channel: str
    attempt: Annotated[int, Field(ge=1)]
    reason: str
    timer_id: UUID
    due_at: UtcDatetime


class ConditionEvaluated(EventBase):
    type: Literal["journeys.condition.evaluated.v1"] = "journeys.condition.evaluated.v1"
    node_id: str
    field: str
    operator: str
    result: bool
    next_node_id: str | None
    note: str | None = None


class DelayStarted(EventBase):
    type: Literal["journeys.delay.started.v1"] = "journeys.delay.started.v1"
    node_id: str
    timer_id: UUID
    duration_seconds: float
    due_at: UtcDatetime


class DelayElapsed(EventBase):
    type: Literal["journeys.delay.elapsed.v1"] = "journeys.delay.elapsed.v1"
    node_id: str
    timer_id: UUID
    due_at: UtcDatetime
    fired_at: UtcDatetime


class RunCompleted(EventBase):
    type: Literal["journeys.run.completed.v1"] = "journeys.run.completed.v1"
    last_node_id: str | None


class RunFailed(EventBase):
    type: Literal["journeys.run.failed.v1"] = "journeys.run.failed.v1"
    node_id: str | None
    reason: str


class RunCancelled(EventBase):
    type: Literal["journeys.run.cancelled.v1"] = "journeys.run.cancelled.v1"
    node_id: str | None
    reason: str | None = None
    cancelled_timer_id: UUID | None = None
    exit_event_id: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The patient event that ended the run through the journey's `exit_on` (after its
    `journeys.run.exited.v1`); None for a cancel by request or erasure."""
    exit_event_type: Annotated[str | None, Field(exclude_if=_unset)] = None


class EventWaiting(EventBase):
    """The run waits at a WAIT_FOR_EVENT node for a patient event of `eventType`, until
    `dueAt`: then timer `timerId` fires and the run times out."""

    type: Literal["journeys.event.waiting.v1"] = "journeys.event.waiting.v1"
    node_id: str
    event_type: str
    timer_id: UUID
    timeout_seconds: float
    due_at: UtcDatetime
    lookback_seconds: float = 0


class EventMatched(EventBase):
    """A patient event met the run's WAIT_FOR_EVENT node: one that came while it waited (its
    timer `cancelledTimerId` is cancelled), or one from up to `lookbackSeconds` before the
    wait began (`lookback` true; the run never waited). `eventData` joins the run's context
    under `events.<nodeId>`."""

    type: Literal["journeys.event.matched.v1"] = "journeys.event.matched.v1"
    node_id: str
    event_id: str
    event_type: str
    receipt_id: UUID
    event_occurred_at: UtcDatetime
    event_data: dict[str, Any]
    lookback: bool = False
    cancelled_timer_id: UUID | None = None


class EventTimedOut(EventBase):
    """No matching patient event came before the WAIT_FOR_EVENT node's timeout."""

    type: Literal["journeys.event.timed_out.v1"] = "journeys.event.timed_out.v1"
    node_id: str
    timer_id: UUID
    due_at: UtcDatetime
    fired_at: UtcDatetime


class RunExited(EventBase):
    """A patient event matched the journey's `exit_on`: the run ends, and its
    `journeys.run.cancelled.v1` (which names the same event) follows at once."""

    type: Literal["journeys.run.exited.v1"] = "journeys.run.exited.v1"
    node_id: str | None
    event_id: str
    event_type: str
    receipt_id: UUID


class PatientErased(WireModel):
    """The executor forgot a patient: it cancelled the patient's runs that had not ended
    (each with its own `journeys.run.cancelled.v1` before this event) and dropped the state of
    every run listed in `runIds` (those it held on the patient's partition, ended or not).
    Readers should delete what they keep about these runs.

    Not a run event: no `runId`, `seq` or `patientId`, and no patient data; keyed by the
    patient key. The CloudEvents subject is the erasure id, and `ce_id` is derived from it, so
    a repeated erasure of the same request keeps its id. Erasing a patient again yields an
    empty `runIds`.
    """

    type: Literal["journeys.patient.erased.v1"] = "journeys.patient.erased.v1"
    erasure_id: UUID
    patient_key: PatientKey
    erased_at: UtcDatetime
    run_ids: list[UUID]


RunEvent = (
    RunStarted
    | NodeEntered
    | MessageRequested
    | MessageSent
    | MessageFailed
    | MessageRetrying
    | MessageDeferred
    | MessageSuppressed
    | ConditionEvaluated
    | DelayStarted
    | DelayElapsed
    | RunCompleted
    | RunFailed
    | RunCancelled
    | EventWaiting
    | EventMatched
    | EventTimedOut
    | RunExited
)
"""Every event about one run: an `EventBase`, with `runId` and `seq`."""

Event = Annotated[RunEvent | PatientErased, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES: tuple[type[WireModel], ...] = (
    RunStarted,
    NodeEntered,
    MessageRequested,
    MessageSent,
    MessageFailed,
    ConditionEvaluated,
    DelayStarted,
    DelayElapsed,
    RunCompleted,
    RunFailed,
    RunCancelled,
    PatientErased,
    EventWaiting,
    EventMatched,
    EventTimedOut,
    RunExited,
    MessageRetrying,
    MessageDeferred,
    MessageSuppressed,
)
TERMINAL_EVENT_TYPES = frozenset(
    {RunCompleted.model_fields["type"].default, RunFailed.model_fields["type"].default,
     RunCancelled.model_fields["type"].default}
)  # fmt: skip


def decode_event(data: bytes) -> Event:
    """Parse an event value; raises `UnknownRecordType` for an event type of a newer version
    (skip it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)


class UnknownEvent(EventBase):
    """An event of a type this version does not know (a newer version added it), read only by
    the fields every event carries.

    `decode_event` raises `UnknownRecordType` for such an event; a reader that keeps a run's
    timeline may then read it with `decode_unknown_event` and keep it as received (its other
    fields are kept, not interpreted), so the run's seq stays gapless during a rolling upgrade.
    What the event means is left to the version that knows its type: never change a run's state
    from it. Not part of `Event`, and no schema is published for it.
    """

    model_config = ConfigDict(extra="allow")

    type: str


def decode_unknown_event(data: bytes) -> UnknownEvent:
    """Read an event `decode_event` refused with `UnknownRecordType` by its common fields;
    raises pydantic.ValidationError when it lacks them (then it cannot join a timeline)."""
    return UnknownEvent.model_validate_json(data)


def erasure_event_id(erasure_id: UUID) -> str:
    """The `ce_id` of the `journeys.patient.erased.v1` answering erasure `erasure_id`."""
    return str(uuid5(erasure_id, "patient.erased"))


def type_of(model: type[WireModel]) -> str:
    """The `type` (and CloudEvents `ce_type`) of a command or event class."""
    return str(model.model_fields["type"].default)
