"""`evolve`: apply one event to a run's state. Replaying a run's events rebuilds its state."""

from __future__ import annotations

from collections.abc import Iterable
from functools import singledispatch
from typing import Any

from journeys_contracts import events as ev
from journeys_executor.core.state import (
    MAX_TAKEN_EVENTS,
    PendingMessage,
    PendingTimer,
    RunState,
)


class EvolveError(ValueError):
    """An event that cannot follow the state it is applied to: a bug or a corrupted log."""


def evolve(state: RunState | None, event: ev.RunEvent) -> RunState:
    if isinstance(event, ev.RunStarted):
        if state is not None:
            raise EvolveError(
                f"Expected no state before run.started, but run is at seq {state.seq}"
            )
        return RunState(
            run_id=event.run_id,
            journey_id=event.journey_id,
            patient_id=event.patient_id,
            patient_context=event.patient_context,
            definition=event.definition,
            status="in_progress",
            current_node_id=None,
            seq=event.seq,
            updated_at=event.occurred_at,
            taken_events=() if event.trigger_receipt_id is None else (event.trigger_receipt_id,),
        )
    if state is None:
        raise EvolveError(f"Expected run.started first, but got {event.type}")
    if event.seq != state.seq + 1:
        raise EvolveError(f"Expected seq {state.seq + 1}, but got {event.seq}")
    changes: dict[str, Any] = {"seq": event.seq, "updated_at": event.occurred_at}
    if isinstance(event, ev.EventMatched):  # the only change that reads the state
        changes.update(_matched(state, event))
    else:
        changes.update(_changes(event))
    return state.model_copy(update=changes)


def fold(state: RunState | None, events: Iterable[ev.RunEvent]) -> RunState | None:
    for event in events:
        state = evolve(state, event)
    return state


@singledispatch
def _changes(event: Any) -> dict[str, Any]:
    return {}


@_changes.register
def _(event: ev.NodeEntered) -> dict[str, Any]:
    return {"current_node_id": event.node_id, "status": "in_progress"}


@_changes.register
def _(event: ev.MessageRequested) -> dict[str, Any]:
    pending = PendingMessage(
        message_id=event.message_id, node_id=event.node_id, message=event.message,
        channel=event.channel, attempt=event.attempt or 1,
    )  # fmt: skip
    return {"pending_message": pending, "pending_timer": None}


@_changes.register
def _(event: ev.MessageDeferred) -> dict[str, Any]:
    # Attempt 0: asked for, not sent yet; the timer's fire asks for attempt 1.
    pending = PendingMessage(
        message_id=event.message_id, node_id=event.node_id, message=event.message,
        channel=event.channel, attempt=0,
    )  # fmt: skip
    timer = PendingTimer(timer_id=event.timer_id, node_id=event.node_id, due_at=event.due_at)
    return {"pending_message": pending, "pending_timer": timer}


@_changes.register
def _(event: ev.MessageRetrying) -> dict[str, Any]:
    timer = PendingTimer(timer_id=event.timer_id, node_id=event.node_id, due_at=event.due_at)
    return {"pending_timer": timer}


@_changes.register
def _(event: ev.MessageSent) -> dict[str, Any]:
    return {"pending_message": None}


@_changes.register
def _(event: ev.MessageSuppressed) -> dict[str, Any]:
    return {"pending_message": None, "pending_timer": None}


@_changes.register
def _(event: ev.MessageFailed) -> dict[str, Any]:
    return {"pending_message": None}


@_changes.register
def _(event: ev.DelayStarted) -> dict[str, Any]:
    timer = PendingTimer(timer_id=event.timer_id, node_id=event.node_id, due_at=event.due_at)
    return {"status": "waiting_delay", "pending_timer": timer}


@_changes.register
def _(event: ev.DelayElapsed) -> dict[str, Any]:
    return {"status": "in_progress", "pending_timer": None}


@_changes.register
def _(event: ev.RunCompleted) -> dict[str, Any]:
    return {"status": "completed", "pending_timer": None, "pending_message": None}


@_changes.register
def _(event: ev.RunFailed) -> dict[str, Any]:
    return {"status": "failed", "pending_timer": None, "pending_message": None}


@_changes.register
def _(event: ev.RunCancelled) -> dict[str, Any]:
    return {"status": "cancelled", "pending_timer": None, "pending_message": None}


@_changes.register
def _(event: ev.EventWaiting) -> dict[str, Any]:
    timer = PendingTimer(timer_id=event.timer_id, node_id=event.node_id, due_at=event.due_at)
    return {"status": "waiting_event", "pending_timer": timer}


@_changes.register
def _(event: ev.EventTimedOut) -> dict[str, Any]:
    return {"status": "in_progress", "pending_timer": None}


@_changes.register
def _(event: ev.RunExited) -> dict[str, Any]:
    return {}  # the run.cancelled that follows ends the run


def _matched(state: RunState, event: ev.EventMatched) -> dict[str, Any]:
    events = state.patient_context.get("events")
    matched = {**(events if isinstance(events, dict) else {}), event.node_id: event.event_data}
    return {
        "status": "in_progress",
        "pending_timer": None,
        "taken_events": (*state.taken_events, event.receipt_id)[-MAX_TAKEN_EVENTS:],
        "patient_context": {**state.patient_context, "events": matched},
    }
