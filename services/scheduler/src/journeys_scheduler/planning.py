"""Turn a batch of event records into the timer changes and offsets to store (pure).

Records come from `journeys.events.v1` and `journeys.events.v2`. A sealed run's events are on
v2, read by their clear fields (run, timer, due time; the scheduler needs no patient data),
and their clear copies on v1 (`sealedTwin`) are skipped, so each timer is armed once.

A run has a timer while it waits: at a DELAY (`delay.started`), for a patient event until a
timeout (`event.waiting`), before another attempt at a message (`message.retrying`), or until
quiet hours end or the frequency cap has room (`message.deferred`). All are armed and fired
alike; the executor tells which it was. A matching event (`event.matched`) cancels the wait's
timer; a fired one ends with `delay.elapsed` or `event.timed_out`, a run's end with its
terminal event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from pydantic import ValidationError

from journeys_contracts.envelope import header
from journeys_contracts.events import (
    DelayElapsed,
    DelayStarted,
    EventBase,
    EventMatched,
    EventTimedOut,
    EventWaiting,
    MessageDeferred,
    MessageRetrying,
    PatientErased,
    RunCancelled,
    RunCompleted,
    RunFailed,
    decode_event,
    type_of,
)
from journeys_contracts.events_sealed import (
    DelayElapsedSealed,
    DelayStartedSealed,
    EventMatchedSealed,
    EventTimedOutSealed,
    EventWaitingSealed,
    MessageDeferredSealed,
    MessageRetryingSealed,
    RunCancelledSealed,
    RunCompletedSealed,
    RunFailedSealed,
    decode_sealed_event,
)
from journeys_runtime.dlq import describe_validation_error
from journeys_scheduler.timers import Timer

STARTS_WAIT = (
    DelayStarted, EventWaiting, MessageRetrying, MessageDeferred,
    DelayStartedSealed, EventWaitingSealed, MessageRetryingSealed, MessageDeferredSealed,
)  # fmt: skip
ENDS_WAIT = (
    DelayElapsed, EventTimedOut, RunCompleted, RunFailed, RunCancelled,
    DelayElapsedSealed, EventTimedOutSealed, RunCompletedSealed, RunFailedSealed,
    RunCancelledSealed,
)  # fmt: skip
CANCELS_TIMER = (EventMatched, EventMatchedSealed)
RELEVANT_TYPES = frozenset(
    type_of(t) for t in (*STARTS_WAIT, *ENDS_WAIT, *CANCELS_TIMER, PatientErased)
)

Position = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Record:
    """What the planner needs of a consumed Kafka record; `sealed`: from journeys.events.v2."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    sealed: bool = False


@dataclass
class Plan:
    """The net effect of a batch, applied in one transaction: deletes first, then inserts.

    Inserts followed by a delete of the same timer or run within the batch are dropped here,
    so a timer started after an earlier delay of its run ended (same batch) survives.
    """

    inserts: dict[UUID, tuple[Timer, datetime]] = field(default_factory=dict)
    delete_timer_ids: set[UUID] = field(default_factory=set)
    delete_run_ids: set[UUID] = field(default_factory=set)
    first_offsets: dict[Position, int] = field(default_factory=dict)
    offsets: dict[Position, int] = field(default_factory=dict)
    dead_letters: list[tuple[Record, str]] = field(default_factory=list)
    ignored: int = 0
    skipped_twins: int = 0
    """v1 events of sealed runs, taken from their v2 copies instead."""

    @property
    def timers(self) -> list[Timer]:
        return [timer for timer, _ in self.inserts.values()]


class _PoisonError(Exception):
    """`reason` is ours: a field location and error kind, or a sentence; never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def plan_batch(records: Iterable[Record]) -> Plan:
    """Records of each partition must come in offset order; partitions never share a run."""
    plan = Plan()
    for record in records:
        position = (record.topic, record.partition)
        plan.first_offsets.setdefault(position, record.offset)
        plan.offsets[position] = record.offset + 1
        try:
            _apply(plan, record)
        except _PoisonError as exc:
            plan.dead_letters.append((record, exc.reason))
    return plan


def _apply(plan: Plan, record: Record) -> None:
    declared = header(record.headers, "ce_type")
    if declared is not None and declared not in RELEVANT_TYPES:
        # Only eleven event types (per topic) concern timers; skip decoding the rest (run starts
        # carry whole definitions). Their own consumers judge whether they are well formed.
        plan.ignored += 1
        return
    if record.value is None:
        raise _PoisonError("record has no value")
    decode = decode_sealed_event if record.sealed else decode_event
    try:
        event = decode(record.value)
    except (ValidationError, ValueError, UnicodeDecodeError) as exc:
        raise _PoisonError(describe_validation_error(exc)) from exc
    if isinstance(event, EventBase) and event.sealed_twin:
        plan.skipped_twins += 1
        return
    if isinstance(event, STARTS_WAIT):
        plan.inserts[event.timer_id] = (_timer(event, record), event.occurred_at)
        return
    if isinstance(event, CANCELS_TIMER):
        # Only the wait's own timer: a look-back match never armed one, and the run goes on.
        if event.cancelled_timer_id is None:
            plan.ignored += 1
        else:
            _cancel_timer(plan, event.cancelled_timer_id)
        return
    if isinstance(event, PatientErased):
        # Each run's own end normally deleted its timers already; a timer left over would only
        # fire for a run the executor has forgotten.
        _end_runs(plan, set(event.run_ids))
        return
    if not isinstance(event, ENDS_WAIT):
        plan.ignored += 1
        return
    if isinstance(event, RunCancelled | RunCancelledSealed) and event.cancelled_timer_id:
        _cancel_timer(plan, event.cancelled_timer_id)
    _end_runs(plan, {event.run_id})


def _cancel_timer(plan: Plan, timer_id: UUID) -> None:
    """Drop the timer if the batch armed it, and delete it if it is stored."""
    plan.inserts.pop(timer_id, None)
    plan.delete_timer_ids.add(timer_id)


def _end_runs(plan: Plan, run_ids: set[UUID]) -> None:
    """Drop the batch's own timers of these runs and delete their stored ones."""
    for timer_id in [k for k, (t, _) in plan.inserts.items() if t.run_id in run_ids]:
        del plan.inserts[timer_id]
    plan.delete_run_ids |= run_ids


def _timer(
    event: DelayStarted
    | EventWaiting
    | MessageRetrying
    | MessageDeferred
    | DelayStartedSealed
    | EventWaitingSealed
    | MessageRetryingSealed
    | MessageDeferredSealed,
    record: Record,
) -> Timer:
    name = type(event).__name__.removesuffix("Sealed")
    if not record.key:
        raise _PoisonError(f"{name} record has no key: its FireTimer could not be keyed")
    try:
        key = record.key.decode()
    except UnicodeDecodeError as exc:
        raise _PoisonError(f"{name} record key is not UTF-8") from exc
    return Timer(event.timer_id, event.run_id, key, record.partition, event.due_at)
