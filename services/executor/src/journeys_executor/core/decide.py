"""`decide`: given a run's state, one command and the time, return the events or a rejection.

One processor per command type. A command the run cannot take (a late, duplicate or stale
timer, a cancel after the end, a second start) is rejected with a reason that reads
"Expected X, but Y", and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_contracts.definition import (
    CHANNELS,
    ChannelName,
    ConditionalNode,
    DelayNode,
    MessageNode,
    WaitForEventNode,
)
from journeys_contracts.templates import TemplateRenderError, choose, render
from journeys_executor.core.conditions import evaluate, matches
from journeys_executor.core.evolve import evolve
from journeys_executor.core.guard import NO_GUARD, FrequencyCap, Guard
from journeys_executor.core.inputs import EventInput, ExitRun, MatchEvent, PatientEvent, TriggerRun
from journeys_executor.core.quiet import QuietHours, next_allowed
from journeys_executor.core.state import RunState

MAX_STEPS_PER_COMMAND = 10_000


@dataclass(frozen=True)
class Rejection:
    reason: str


Input = cmd.RunCommand | EventInput
"""What `decide` takes: a command about one run, or what a patient event asks of one run."""


@dataclass(frozen=True)
class Policy:
    """The deployment's rules for messages: its quiet hours (a journey may set its own), the
    time zone of a patient whose context names none, the channel of a message whose node and
    patient context name none, and the frequency cap."""

    quiet: QuietHours | None = None
    zone_of: Callable[[object], tzinfo] = lambda _: UTC
    """The patient's zone from their context's `timezone` (the deployment's default else)."""
    default_channel: ChannelName = "console"
    cap: FrequencyCap | None = None


DEFAULT_POLICY = Policy()


def decide(
    state: RunState | None,
    command: Input,
    now: datetime,
    recent: Sequence[PatientEvent] = (),
    policy: Policy = DEFAULT_POLICY,
    guard: Guard = NO_GUARD,
) -> Decision | Rejection:
    """`recent`: the patient's kept events, oldest first, for the look-back of any
    WAIT_FOR_EVENT node the run reaches; `policy`: the deployment's rules for messages;
    `guard`: the patient's consent and latest messages, checked before any message goes out
    (`Guard.after` tells what the decision's messages make of it)."""
    if isinstance(command, cmd.StartRun | TriggerRun):
        return _start(state, command, now, recent, policy, guard)
    if state is None:
        return Rejection(f"Expected run {command.run_id} to exist, but it has not started")
    if isinstance(command, cmd.FireTimer):
        return _fire_timer(state, command, now, recent, policy, guard)
    if isinstance(command, cmd.CancelRun):
        return _cancel(state, command, now)
    if isinstance(command, cmd.RecordDelivery):
        return _record_delivery(state, command, now, recent, policy, guard)
    if isinstance(command, MatchEvent):
        return _match(state, command, now, recent, policy, guard)
    if isinstance(command, ExitRun):
        return _exit(state, command, now)
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

    def __init__(
        self,
        state: RunState | None,
        now: datetime,
        recent: Sequence[PatientEvent] = (),
        policy: Policy = DEFAULT_POLICY,
        guard: Guard = NO_GUARD,
    ) -> None:
        self.state = state
        self.now = now
        self.recent = recent
        self.policy = policy
        self.guard = guard
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
    command: Input,
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
    if not isinstance(command, cmd.StartRun | TriggerRun):
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


def _start(
    state: RunState | None,
    command: cmd.StartRun | TriggerRun,
    now: datetime,
    recent: Sequence[PatientEvent],
    policy: Policy,
    guard: Guard,
) -> Decision | Rejection:
    if state is not None:
        return Rejection(
            f"Expected no run with id {command.run_id}, but it exists ({state.status})"
        )
    out = _started(command, now, recent, policy, guard)
    _walk(out, command.definition.start_node_id)
    return out.decision


def _started(
    command: cmd.StartRun | TriggerRun,
    now: datetime,
    recent: Sequence[PatientEvent] = (),
    policy: Policy = DEFAULT_POLICY,
    guard: Guard = NO_GUARD,
) -> _Emitter:
    out = _Emitter(None, now, recent, policy, guard)
    trigger: dict[str, Any] = {}
    if isinstance(command, TriggerRun):
        trigger = {
            "trigger_event_id": command.event.event_id,
            "trigger_event_type": command.event.type,
            "trigger_receipt_id": command.event.receipt_id,
        }
    out.emit(
        ev.RunStarted,
        run_id=command.run_id,
        journey_id=command.journey_id,
        patient_id=command.patient_id,
        journey_name=command.definition.name,
        start_node_id=command.definition.start_node_id,
        patient_context=command.patient_context,
        definition=command.definition,
        **trigger,
    )
    return out


def _fire_timer(
    state: RunState,
    command: cmd.FireTimer,
    now: datetime,
    recent: Sequence[PatientEvent],
    policy: Policy,
    guard: Guard,
) -> Decision | Rejection:
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
    node = state.definition.node(timer.node_id)
    out = _Emitter(state, now, recent, policy, guard)
    if isinstance(node, MessageNode):
        _retry_message(out, node)
        return out.decision
    if isinstance(node, WaitForEventNode):
        out.emit(
            ev.EventTimedOut,
            node_id=node.id,
            timer_id=timer.timer_id,
            due_at=timer.due_at,
            fired_at=command.fired_at,
        )
        _walk(out, node.on_timeout_next_node_id)
        return out.decision
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
    state: RunState,
    command: cmd.RecordDelivery,
    now: datetime,
    recent: Sequence[PatientEvent],
    policy: Policy,
    guard: Guard,
) -> Decision | Rejection:
    pending = state.pending_message
    if state.ended or pending is None or pending.message_id != command.message_id:
        return Rejection(
            f"Expected run to await delivery of message {command.message_id}, "
            f"but it is {state.status} and awaits {pending.message_id if pending else 'none'}"
        )
    if command.attempt != pending.attempt or state.pending_timer is not None:
        waits = "a retry timer" if state.pending_timer is not None else "its report"
        return Rejection(
            f"Expected the report of attempt {pending.attempt} at message {pending.message_id}, "
            f"but got attempt {command.attempt} while the message awaits {waits}"
        )
    out = _Emitter(state, now, recent, policy, guard)
    node = state.definition.node(pending.node_id)
    assert isinstance(node, MessageNode)
    later = None if pending.attempt == 1 else pending.attempt
    if command.delivered:
        out.emit(ev.MessageSent, node_id=pending.node_id, message_id=pending.message_id,
                 channel=command.channel, attempt=later,
                 recipient_key=command.recipient_key)  # fmt: skip
        _walk(out, node.next_node_id)
        return out.decision
    reason = command.reason or "delivery failed"
    if command.retry_after_seconds is not None:
        due = now + timedelta(seconds=command.retry_after_seconds)
        # Another attempt falls outside quiet hours too: a retry is a message going out.
        due = _quiet_until(out, state.patient_context, due) or due
        out.emit(
            ev.MessageRetrying, node_id=pending.node_id, message_id=pending.message_id,
            channel=command.channel, attempt=pending.attempt, reason=reason,
            timer_id=uuid.uuid5(state.run_id, f"timer:{state.seq + 1}"), due_at=due,
        )  # fmt: skip
        return out.decision
    out.emit(ev.MessageFailed, node_id=pending.node_id, message_id=pending.message_id,
             channel=command.channel, reason=reason, attempt=later)  # fmt: skip
    _walk(out, node.on_failure_next_node_id or node.next_node_id)
    return out.decision


def _retry_message(out: _Emitter, node: MessageNode) -> None:
    """The timer of a message fired (a retry's, or the end of a deferral): ask for the same
    message, one attempt on, if the patient's protections still let it go out now."""
    pending = out.run.pending_message
    assert pending is not None
    attempt = pending.attempt + 1
    channel = pending.channel or out.policy.default_channel
    if _held(out, node, pending.message_id, pending.message, channel, None, first=attempt == 1):
        if out.run.pending_message is None:  # suppressed: on to the next node
            _walk(out, node.next_node_id)
        return
    out.emit(
        ev.MessageRequested, node_id=node.id, message_id=pending.message_id,
        message=pending.message, channel=channel, attempt=attempt if attempt > 1 else None,
    )  # fmt: skip


def _match(
    state: RunState,
    command: MatchEvent,
    now: datetime,
    recent: Sequence[PatientEvent],
    policy: Policy,
    guard: Guard,
) -> Decision | Rejection:
    node = _waiting_at(state)
    if node is None or not matches(node.event, node.when, command.event, state.patient_context):
        awaits = f"'{node.event}' at node {node.id}" if node else f"nothing ({state.status})"
        return Rejection(
            f"Expected run to wait for an event like '{command.event.type}', "
            f"but it waits for {awaits}"
        )
    out = _Emitter(state, now, recent, policy, guard)
    timer = state.pending_timer
    _matched(out, node, command.event, timer.timer_id if timer else None)
    _walk(out, node.on_event_next_node_id)
    return out.decision


def _waiting_at(state: RunState) -> WaitForEventNode | None:
    if state.status != "waiting_event" or state.current_node_id is None:
        return None
    node = state.definition.node(state.current_node_id)
    return node if isinstance(node, WaitForEventNode) else None


def _matched(
    out: _Emitter, node: WaitForEventNode, event: PatientEvent, timer_id: uuid.UUID | None
) -> None:
    out.emit(
        ev.EventMatched,
        node_id=node.id,
        event_id=event.event_id,
        event_type=event.type,
        receipt_id=event.receipt_id,
        event_occurred_at=event.occurred_at,
        event_data=event.data,
        lookback=timer_id is None,
        cancelled_timer_id=timer_id,
    )


def _exit(state: RunState, command: ExitRun, now: datetime) -> Decision | Rejection:
    if state.ended:
        return Rejection(f"Expected run to be active to exit it, but it is {state.status}")
    if not any(
        matches(rule.event, rule.when, command.event, state.patient_context)
        for rule in state.definition.exit_on
    ):
        return Rejection(
            f"Expected an event the journey exits on, but '{command.event.type}' is not one"
        )
    out = _Emitter(state, now)
    event = command.event
    out.emit(
        ev.RunExited,
        node_id=state.current_node_id,
        event_id=event.event_id,
        event_type=event.type,
        receipt_id=event.receipt_id,
    )
    timer = state.pending_timer
    out.emit(
        ev.RunCancelled,
        node_id=state.current_node_id,
        reason=f"exited on event {event.type}",
        cancelled_timer_id=timer.timer_id if timer else None,
        exit_event_id=event.event_id,
        exit_event_type=event.type,
    )
    return out.decision


def _lookback(out: _Emitter, node: WaitForEventNode) -> PatientEvent | None:
    """The first of the patient's kept events that meets the wait and arrived at most
    `lookback_seconds` before now, the events the run has taken left out (an event that came
    before the run started counts too: that is what look-back is for)."""
    if node.lookback_seconds <= 0 or not out.recent:
        return None
    run = out.run
    taken = set(run.taken_events)
    since = out.now - timedelta(seconds=node.lookback_seconds)
    for kept in out.recent:
        if kept.receipt_id in taken:
            continue
        if since <= kept.received_at <= out.now and matches(
            node.event, node.when, kept, run.patient_context
        ):
            return kept
    return None


def _quiet_until(
    out: _Emitter, context: dict[str, Any], at: datetime | None = None
) -> datetime | None:
    """When a message due `at` (default: now) may go out, if that is inside the journey's quiet
    hours (else the deployment's) in the patient's time zone; None if it may go then."""
    journey = out.run.definition.quiet_hours
    window = QuietHours.parse(journey) if journey is not None else out.policy.quiet
    if window is None:
        return None
    zone = out.policy.zone_of(context.get("timezone"))
    return next_allowed(out.now if at is None else at, window, zone)


def _held(
    out: _Emitter,
    node: MessageNode,
    message_id: uuid.UUID,
    message: str,
    channel: ChannelName,
    language: str | None,
    *,
    first: bool,
) -> bool:
    """Whether the patient's protections keep the message from going out now, having said so
    (`message.suppressed`, or `message.deferred` with a timer). Consent is checked first and
    for every attempt; the cap, for a message not yet sent (`first`): a retry is the same
    message; quiet hours, for a message not yet sent too (a retry's timer already avoids them).
    """
    if not out.guard.consents(channel):
        out.emit(ev.MessageSuppressed, node_id=node.id, message_id=message_id,
                 channel=channel, reason="consent")  # fmt: skip
        return True
    if not first:
        return False
    context = out.run.patient_context
    reason: Literal["quiet_hours", "frequency_cap"] = "quiet_hours"
    due = None
    capped = out.guard.capped_until(out.now, out.policy.cap)
    if capped is not None:
        assert out.policy.cap is not None
        if out.policy.cap.mode == "suppress":
            out.emit(ev.MessageSuppressed, node_id=node.id, message_id=message_id,
                     channel=channel, reason="frequency_cap")  # fmt: skip
            return True
        reason, due = "frequency_cap", _quiet_until(out, context, capped) or capped
    else:
        due = _quiet_until(out, context)
    if due is None:
        return False
    out.emit(
        ev.MessageDeferred, node_id=node.id, message_id=message_id, message=message,
        channel=channel, language=language, reason=reason,
        timer_id=uuid.uuid5(out.run.run_id, f"timer:{out.run.seq + 1}"), due_at=due,
    )  # fmt: skip
    return True


def preferred_channel(context: dict[str, Any]) -> ChannelName | None:
    """The channel the patient context prefers (`preferred_channel`, e.g. "sms"), if it names
    one we have; anything else leaves the choice to the deployment's default channel."""
    wanted = context.get("preferred_channel")
    return wanted if isinstance(wanted, str) and wanted in CHANNELS else None  # type: ignore[return-value]


def _walk(out: _Emitter, node_id: str | None) -> None:
    """Enter nodes until the run must wait (a message to deliver, a delay, an event) or ends."""
    for _ in range(MAX_STEPS_PER_COMMAND):
        if node_id is None:
            out.emit(ev.RunCompleted, last_node_id=out.run.current_node_id)
            return
        node = out.run.definition.node(node_id)
        out.emit(ev.NodeEntered, node_id=node.id, node_type=node.type)
        if isinstance(node, MessageNode):
            message_id = uuid.uuid5(out.run.run_id, f"message:{out.run.seq + 1}")
            context = out.run.patient_context
            channel = node.channel or preferred_channel(context) or out.policy.default_channel
            text, language = choose(node.templates or {}, node.message, context.get("language"))
            try:
                rendered = render(text, context)
            except TemplateRenderError:
                # Nothing to send: the message fails here, and the run goes on as after any
                # final failure. Only the word: the error could quote the context.
                out.emit(ev.MessageFailed, node_id=node.id, message_id=message_id,
                         channel=channel, reason="template")  # fmt: skip
                node_id = node.on_failure_next_node_id or node.next_node_id
                continue
            if _held(out, node, message_id, rendered, channel, language, first=True):
                if out.run.pending_message is None:  # suppressed: on to the next node
                    node_id = node.next_node_id
                    continue
                return
            out.emit(
                ev.MessageRequested, node_id=node.id, message_id=message_id, message=rendered,
                channel=channel, language=language,
            )  # fmt: skip
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
        if isinstance(node, WaitForEventNode):
            early = _lookback(out, node)
            if early is not None:
                _matched(out, node, early, None)
                node_id = node.on_event_next_node_id
                continue
            timer_id = uuid.uuid5(out.run.run_id, f"timer:{out.run.seq + 1}")
            out.emit(
                ev.EventWaiting,
                node_id=node.id,
                event_type=node.event,
                timer_id=timer_id,
                timeout_seconds=node.timeout_seconds,
                due_at=out.now + timedelta(seconds=node.timeout_seconds),
                lookback_seconds=node.lookback_seconds,
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
