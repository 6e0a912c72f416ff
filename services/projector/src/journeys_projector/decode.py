"""Turn one record value into the fact it states, nothing (not a fact), a type of a newer
version (an event for its run's timeline, else skipped), a record to skip (the clear twin of a
sealed event), or why it is poison."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, ValidationError

from journeys_contracts.audit import AccessRecorded, decode_audit
from journeys_contracts.commands import (
    RecordDelivery,
    RecordPatientEvent,
    RecordPatientEventSealed,
    RetryMessage,
    SetConsent,
    StartRun,
    StartRunSealed,
    decode_command,
)
from journeys_contracts.events import (
    Event,
    EventBase,
    UnknownEvent,
    decode_event,
    decode_unknown_event,
)
from journeys_contracts.events_sealed import SealedEvent, SealedEventBase, decode_sealed_event
from journeys_contracts.journeys import JourneyDefined, decode_journey
from journeys_contracts.wire import UnknownRecordType
from journeys_runtime.dlq import describe_validation_error

MAX_SEQ = 2**31 - 1  # run_events.seq and runs.last_seq are PostgreSQL integers
_FACT_COMMANDS = (
    StartRun, StartRunSealed, RecordPatientEvent, RecordPatientEventSealed, SetConsent,
    RetryMessage, RecordDelivery,
)  # fmt: skip


class Source(StrEnum):
    """The topics the projector reads, by role; also the `topic` label of its metrics."""

    DEFINITIONS = "definitions"
    COMMANDS = "commands"
    EVENTS = "events"
    SEALED_EVENTS = "sealed_events"
    AUDIT = "audit"


class SkipReason(StrEnum):
    """Why a valid record is skipped; the `reason` label of the skipped-records metric."""

    SEALED_TWIN = "sealed_twin"  # a v1 event whose run is read from journeys.events.v2


@dataclass(frozen=True)
class Poison:
    """A record no projection can take; `reason` names fields and error kinds, never values."""

    stage: str
    reason: str


@dataclass(frozen=True)
class Unknown:
    """A record of a type a newer version added: skipped and counted, never dead-lettered, so
    a rolling upgrade leaves no poison behind. `record_type` is a type name, not patient data."""

    record_type: str


@dataclass(frozen=True)
class Skipped:
    """A valid record whose fact is projected from another record."""

    reason: SkipReason


@dataclass(frozen=True)
class ConsentFact:
    """A patient's consent set (`SetConsent`), with its offset on the commands partition: the
    executor applies a patient's changes in that order, so the read model keeps the change of
    the highest offset, whatever order batches commit in."""

    command: SetConsent
    offset: int


class UnknownSealedEvent(SealedEventBase):
    """A `journeys.events.v2` event of a type this version does not know, read by the fields
    every v2 event carries: like `UnknownEvent` on v1, it enters its run's timeline as received
    and changes nothing else."""

    model_config = ConfigDict(extra="allow")

    type: str


Fact = (
    JourneyDefined
    | StartRun
    | StartRunSealed
    | RecordPatientEvent
    | RecordPatientEventSealed
    | Event
    | UnknownEvent
    | SealedEvent
    | UnknownSealedEvent
    | AccessRecorded
    | ConsentFact
    | RetryMessage
    | RecordDelivery
)
# None: a valid record that states no fact (FireTimer, ...)
Decoded = Fact | Poison | Unknown | Skipped | None


def decode(source: Source, value: bytes | None, offset: int = 0) -> Decoded:
    """`offset`: the record's, kept with the facts whose order the read model must keep."""
    if value is None:
        return Poison("projector.decode", "empty value (tombstone)")
    try:
        fact = _decode(source, value)
    except UnknownRecordType as exc:
        return _unknown(source, value, exc.record_type)
    except (ValidationError, ValueError, UnicodeDecodeError) as exc:
        return Poison("projector.decode", describe_validation_error(exc))
    if fact is None:
        return None
    if isinstance(fact, EventBase) and fact.sealed_twin:
        return Skipped(SkipReason.SEALED_TWIN)
    if isinstance(fact, SetConsent):
        return ConsentFact(fact, offset)
    return _storable(fact, value)


def _decode(source: Source, value: bytes) -> Fact | SetConsent | None:
    if source is Source.DEFINITIONS:
        return decode_journey(value)
    if source is Source.EVENTS:
        return decode_event(value)
    if source is Source.SEALED_EVENTS:
        return decode_sealed_event(value)
    if source is Source.AUDIT:
        return decode_audit(value)
    command = decode_command(value)
    # Only starting a run (a run was accepted), recording a patient event (an event was
    # received), setting consent (the executor applies every one, in order), an operator's
    # retry and the delivery service's reports (a send happened, whatever the executor makes
    # of it) state facts; the other commands are requests the executor may reject, and their
    # effects arrive as events.
    return command if isinstance(command, _FACT_COMMANDS) else None


def _unknown(source: Source, value: bytes, record_type: str) -> Decoded:
    """An event of a newer type still has a place in its run's timeline when it carries the
    fields every event carries: kept there, the timeline has no seq gap. Anything else is
    skipped."""
    event: UnknownEvent | UnknownSealedEvent
    try:
        if source is Source.EVENTS:
            event = decode_unknown_event(value)
        elif source is Source.SEALED_EVENTS:
            event = UnknownSealedEvent.model_validate_json(value)
        else:
            return Unknown(record_type)
    except ValidationError:
        return Unknown(record_type)
    if isinstance(event, UnknownEvent) and event.sealed_twin:
        return Skipped(SkipReason.SEALED_TWIN)
    return _storable(event, value)


def _storable(fact: Fact, value: bytes) -> Fact | Poison:
    """Refuse what PostgreSQL would refuse, so one record can never wedge a whole batch."""
    seq = getattr(fact, "seq", None)
    if seq is not None and seq > MAX_SEQ:
        return Poison("projector.validate", f"seq: greater than {MAX_SEQ}")
    # JSON spells U+0000 as \u0000; the walk runs only when that spelling appears at all. Of
    # a patient event only the receipt's fields are checked here: its patient id is never
    # stored, and a reply's data holding one is kept out by the plan (ReceiptRow.of).
    if b"\\u0000" in value and _has_nul(_stored_part(fact)):
        return Poison("projector.validate", "a string contains U+0000, which PostgreSQL refuses")
    return fact


def _stored_part(fact: Fact) -> Any:
    if isinstance(fact, ConsentFact):  # channel names and a source: no text of anyone's
        return []
    if isinstance(fact, RecordPatientEvent | RecordPatientEventSealed):
        return [fact.event_id, fact.source]
    return fact.model_dump()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False
