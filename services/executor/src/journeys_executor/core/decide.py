"""`decide`: given a run's state, one command and the time, return the events or a rejection.

One processor per command type. A command the run cannot take (a late, duplicate or stale
timer, a cancel after the end, a second start) is rejected with a reason that reads
"Expected X, but Y", and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_contracts.definition import ConditionalNode, DelayNode, MessageNode
from journeys_executor.core.conditions import evaluate
from journeys_executor.core.evolve import evolve
from journeys_executor.core.state import RunState

MAX_STEPS_PER_COMMAND = 10_000


@dataclass(frozen=True)
class Rejection:
    reason: str


def decide(state: RunState | None, command: cmd.RunCommand, now: datetime) -> Decision | Rejection:
    if isinstance(command, cmd.StartRun):
        return _start(state, command, now)
    if state is None:
        return Rejection(f"Expected run {command.run_id} to exist, but it has not started")
    if isinstance(command, cmd.FireTimer):
        return _fire_timer(state, command, now)
    if isinstance(command, cmd.CancelRun):
        return _cancel(state, command, now)
    if isinstance(command, cmd.RecordDelivery):
        return _record_delivery(state, command, now)
    # The adapters open a sealed command into its clear twin before deciding.
    return Rejection(f"Expected a command in clear, but {command.type} is sealed")


class Decision(list[ev.RunEvent]):
    """The events decided, and the state they fold into (already folded while deciding, so
    a caller need not fold them again; equal to `fold(state, events)`)."""

    def __init__(self, events: list[ev.RunEvent], state: RunState | None) -> None:
        super().__init__(events)
        self.state = state


class _Emitter:
    """Builds events with the next seq and folds each into the state as it goes."""

    def __init__(self, state: RunState | None, now: datetime) -> None:
        self.state = state
        self.now = now
        self.events: list[ev.RunEvent] = []

    def emit(self, kind: type[ev.EventBase], **fields: Any) -> ev.RunEvent:
        seq = 1 if self.state is None else self.state.seq + 1
        if self.state is not None:
            fields = {
                "run_id": self.state.run_id,
                "journey_id": self.state.journey_id,
                "patient_id": self.state.patient_id,
                **fields,
            }
        event: ev.RunEvent = kind(seq=seq, occurred_at=self.now, **fields)  # type: ignore[assignment]
        self.state = evolve(self.state, event)
        self.events.append(event)
        return event

    @property
    def decision(self) -> Decision:
        return Decision(self.events, self.state)

    @property
    def run(self) -> RunState:
        assert self.state is not None
        return self.state


def fail(
    state: RunState | None,
    command: cmd.RunCommand,
    now: datetime,
    reason: str,
    *,
    record_start: bool = True,
) -> Decision | Rejection:
    """End the run of `command` as failed, from `state`: for a command the executor could not
    carry out (deciding it raised, or a record it produced can never be stored).

    Nothing `command` itself decided is kept, so the run fails where it stood, with the next
    seq. A run the command would have started is recorded as started, then failed, unless
    `record_start` is false (its `run.started` is what cannot be stored): then the failure
    is its only event and there is no state to keep.
    """
    if state is not None:
        if state.ended:
            return Rejection(f"Expected run to be active to fail it, but it is {state.status}")
        out = _Emitter(state, now)
        out.emit(ev.RunFailed, node_id=state.current_node_id, reason=reason)
        return out.decision
    if not isinstance(command, cmd.StartRun):
        return Rejection(f"Expected run {command.run_id} to exist, but it has not started")
    if not record_start:
        failed = ev.RunFailed(
            run_id=command.run_id, journey_id=command.journey_id, patient_id=command.patient_id,
            seq=1, occurred_at=now, node_id=None, reason=reason,
        )  # fmt: skip
        return Decision([failed], None)
    out = _started(command, now)
    out.emit(ev.RunFailed, node_id=None, reason=reason)
    return out.decision


def _start(state: RunState | None, command: cmd.StartRun, now: datetime) -> Decision | Rejection:
    if state is not None:
        return Rejection(
            f"Expected no run with id {command.run_id}, but it exists ({state.status})"
        )
    out = _started(command, now)
    _walk(out, command.definition.start_node_id)
    return out.decision


def _started(command: cmd.StartRun, now: datetime) -> _Emitter:
    out = _Emitter(None, now)
    out.emit(
        ev.RunStarted,
        run_id=command.run_id,
        journey_id=command.journey_id,
        patient_id=command.patient_id,
        journey_name=command.definition.name,
        start_node_id=command.definition.start_node_id,
        patient_context=command.patient_context,
        definition=command.definition,
    )
    return out


def _fire_timer(state: RunState, command: cmd.FireTimer, now: datetime) -> Decision | Rejection:
    timer = state.pending_timer
    if timer is None or timer.timer_id != command.timer_id:
        waiting = f"timer {timer.timer_id}" if timer else f"no timer ({state.status})"
        return Rejection(
            f"Expected run to wait on timer {command.timer_id}, but it waits on {waiting}"
        )
    if command.fired_at < timer.due_at:
        return Rejection(
            f"Expected timer to fire at or after {timer.due_at.isoformat()}, "
            f"but it fired at {command.fired_at.isoformat()}"
        )
    out = _Emitter(state, now)
    node = state.definition.node(timer.node_id)
    assert isinstance(node, DelayNode)
    out.emit(
        ev.DelayElapsed,
        node_id=node.id,
        timer_id=timer.timer_id,
        due_at=timer.due_at,
        fired_at=command.fired_at,
    )
    _walk(out, node.next_node_id)
    return out.decision


def _cancel(state: RunState, command: cmd.CancelRun, now: datetime) -> Decision | Rejection:
    if state.ended:
        return Rejection(f"Expected run to be active to cancel it, but it is {state.status}")
    out = _Emitter(state, now)
    timer = state.pending_timer
    out.emit(
        ev.RunCancelled,
        node_id=state.current_node_id,
        reason=command.reason,
        cancelled_timer_id=timer.timer_id if timer else None,
    )
    return out.decision


def _record_delivery(
    state: RunState, command: cmd.RecordDelivery, now: datetime
) -> Decision | Rejection:
    pending = state.pending_message
    if state.ended or pending is None or pending.message_id != command.message_id:
        return Rejection(
            f"Expected run to await delivery of message {command.message_id}, "
            f"but it is {state.status} and awaits {pending.message_id if pending else 'none'}"
        )
    out = _Emitter(state, now)
    if not command.delivered:
        reason = command.reason or "delivery failed"
        out.emit(
            ev.MessageFailed,
            node_id=pending.node_id,
            message_id=pending.message_id,
            channel=command.channel,
            reason=reason,
        )
        out.emit(ev.RunFailed, node_id=pending.node_id, reason=f"message delivery failed: {reason}")
        return out.decision
    out.emit(
        ev.MessageSent,
        node_id=pending.node_id,
        message_id=pending.message_id,
        channel=command.channel,
    )
    node = state.definition.node(pending.node_id)
    assert isinstance(node, MessageNode)
    _walk(out, node.next_node_id)
    return out.decision


def _walk(out: _Emitter, node_id: str | None) -> None:
    """Enter nodes until the run must wait (a message to deliver, a delay) or ends."""
    for _ in range(MAX_STEPS_PER_COMMAND):
        if node_id is None:
            out.emit(ev.RunCompleted, last_node_id=out.run.current_node_id)
            return
        node = out.run.definition.node(node_id)
        out.emit(ev.NodeEntered, node_id=node.id, node_type=node.type)
        if isinstance(node, MessageNode):
            message_id = uuid.uuid5(out.run.run_id, f"message:{out.run.seq + 1}")
            out.emit(
                ev.MessageRequested, node_id=node.id, message_id=message_id, message=node.message
            )
            return
        if isinstance(node, DelayNode):
            timer_id = uuid.uuid5(out.run.run_id, f"timer:{out.run.seq + 1}")
            out.emit(
                ev.DelayStarted,
                node_id=node.id,
                timer_id=timer_id,
                duration_seconds=node.duration_seconds,
                due_at=out.now + timedelta(seconds=node.duration_seconds),
            )
            return
        assert isinstance(node, ConditionalNode)
        result, note = evaluate(node.condition, out.run.patient_context)
        node_id = node.on_true_next_node_id if result else node.on_false_next_node_id
        out.emit(
            ev.ConditionEvaluated,
            node_id=node.id,
            field=node.condition.field,
            operator=node.condition.operator,
            result=result,
            next_node_id=node_id,
            note=note,
        )
    out.emit(
        ev.RunFailed,
        node_id=out.run.current_node_id,
        reason=f"more than {MAX_STEPS_PER_COMMAND} steps without waiting",
    )
