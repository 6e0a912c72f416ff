"""Given/when/then for the pure state machine: build journeys and commands, apply, read back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_contracts.definition import JourneyDefinition
from journeys_executor.core import Rejection, RunState, decide, fold
from journeys_executor.core.decide import DEFAULT_POLICY, Policy, fail
from journeys_executor.core.guard import NO_GUARD, Guard

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RUN = uuid.UUID("11111111-1111-4111-8111-111111111111")
JOURNEY = uuid.UUID("22222222-2222-4222-8222-222222222222")
PATIENT = "p-1"

E = TypeVar("E", bound=ev.EventBase)
Outcome = list[ev.Event] | Rejection


def message(
    node_id: str, nxt: str | None = None, text: str | None = None, on_failure: str | None = None
) -> dict[str, Any]:
    node = {"id": node_id, "type": "MESSAGE", "message": text or f"msg {node_id}",
            "next_node_id": nxt}  # fmt: skip
    return node if on_failure is None else {**node, "on_failure_next_node_id": on_failure}


def delay(node_id: str, seconds: float, nxt: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "DELAY", "duration_seconds": seconds, "next_node_id": nxt}


def conditional(node_id: str, condition: tuple[str, str, Any], yes: str | None,
                no: str | None) -> dict[str, Any]:  # fmt: skip
    field, operator, value = condition
    return {"id": node_id, "type": "CONDITIONAL", "on_true_next_node_id": yes,
            "on_false_next_node_id": no,
            "condition": {"field": field, "operator": operator, "value": value}}  # fmt: skip


def journey(*nodes: dict[str, Any], start: str | None = None) -> JourneyDefinition:
    return JourneyDefinition.model_validate(
        {"name": "spec", "start_node_id": start or nodes[0]["id"], "nodes": list(nodes)}
    )


def start(definition: JourneyDefinition, context: dict[str, Any] | None = None,
          run_id: uuid.UUID = RUN) -> cmd.StartRun:  # fmt: skip
    return cmd.StartRun(run_id=run_id, journey_id=JOURNEY, patient_id=PATIENT,
                        patient_context=context or {"id": PATIENT}, definition=definition,
                        requested_at=T0)  # fmt: skip


def delivery(state: RunState, ok: bool = True, reason: str | None = None,
             message_id: uuid.UUID | None = None,
             retry_after: float | None = None) -> cmd.RecordDelivery:  # fmt: skip
    """The channel's report on the message `state` awaits (or on `message_id`), of the attempt
    in flight; a failure with `retry_after` asks for another attempt."""
    attempt = state.pending_message.attempt if state.pending_message is not None else 1
    if message_id is None:
        assert state.pending_message is not None, "the run awaits no message"
        message_id = state.pending_message.message_id
    return cmd.RecordDelivery(run_id=state.run_id, message_id=message_id, channel="sms",
                              delivered=ok, reason=reason, at=T0, attempt=attempt,
                              retry_after_seconds=retry_after)  # fmt: skip


def timer_fired(state: RunState, late: timedelta = timedelta(0)) -> cmd.FireTimer:
    """The scheduler firing the timer `state` waits on, `late` after its due time."""
    assert state.pending_timer is not None, "the run waits on no timer"
    due = state.pending_timer.due_at
    return cmd.FireTimer(run_id=state.run_id, timer_id=state.pending_timer.timer_id,
                         due_at=due, fired_at=due + late)  # fmt: skip


def cancel(reason: str | None = None, run_id: uuid.UUID = RUN) -> cmd.CancelRun:
    return cmd.CancelRun(run_id=run_id, requested_at=T0, reason=reason)


class Run:
    """A run's state and every event it emitted; `when` decides one command and folds it.

    A rejected command must leave everything as it was: `when` checks that `decide` neither
    emitted events nor changed the state it was handed.
    """

    def __init__(self, policy: Policy = DEFAULT_POLICY, guard: Guard = NO_GUARD) -> None:
        self.state: RunState | None = None
        self.events: list[ev.Event] = []
        self.now = T0
        self.policy = policy
        self.guard = guard
        """The patient's guard, kept as the partition keeps it: what each decision leaves."""

    def when(self, command: cmd.RunCommand, now: datetime | None = None) -> Outcome:
        self.now = now or self.now
        before = None if self.state is None else self.state.model_dump()
        outcome = decide(self.state, command, self.now, policy=self.policy, guard=self.guard)
        assert (None if self.state is None else self.state.model_dump()) == before
        if not isinstance(outcome, Rejection):
            self.guard = self.guard.after(outcome, self.now, self.policy.cap)
            self.state = fold(self.state, outcome)
            assert outcome.state == self.state  # the state `decide` folded on its way
            self.events.extend(outcome)
        return outcome

    def deliver(
        self, ok: bool = True, reason: str | None = None, retry_after: float | None = None
    ) -> Outcome:
        return self.when(delivery(self.s, ok, reason, retry_after=retry_after))

    def fail(self, reason: str = "executor error: KeyError") -> Outcome:
        """The executor failing the run where it stands (deciding a command raised)."""
        outcome = fail(self.s, cancel(), self.now, reason)
        assert not isinstance(outcome, Rejection)
        self.state = fold(self.state, outcome)
        self.events.extend(outcome)
        return outcome

    def fire(self, late: timedelta = timedelta(0)) -> Outcome:
        command = timer_fired(self.s, late)
        return self.when(command, max(self.now, command.fired_at))

    def deliver_all(self) -> None:
        while self.s.pending_message is not None:
            self.deliver()

    @property
    def s(self) -> RunState:
        assert self.state is not None, "the run has not started"
        return self.state

    def last(self, kind: type[E]) -> E:
        """The last event of one type."""
        found = [e for e in self.events if isinstance(e, kind)]
        assert found, f"no {kind.__name__} among {kinds(self.events)}"
        return found[-1]


def given(definition: JourneyDefinition, context: dict[str, Any] | None = None,
          at: datetime = T0) -> Run:  # fmt: skip
    """A run of `definition` that has just started at `at`."""
    run = Run()
    assert not isinstance(run.when(start(definition, context), at), Rejection)
    return run


def kinds(outcome: Outcome) -> list[str]:
    """Event types without the `journeys.` prefix and version: `run.started`, …"""
    assert not isinstance(outcome, Rejection), outcome
    return [e.type.removeprefix("journeys.").removesuffix(".v1") for e in outcome]


def rejected(outcome: Outcome) -> str:
    """The rejection's reason, which always reads "Expected X, but Y"."""
    assert isinstance(outcome, Rejection), f"accepted: {kinds(outcome)}"
    assert outcome.reason.startswith("Expected "), outcome.reason
    assert ", but " in outcome.reason, outcome.reason
    return outcome.reason


MSG_DELAY_MSG = journey(
    message("a", "wait", "first"), delay("wait", 90, "b"), message("b", None, "second")
)
# A weekly check-in: ask, wait a week, ask again while the patient still opts in.
WEEKLY = journey(
    message("ask", "week"),
    delay("week", 7 * 86400, "still"),
    conditional("still", ("opted_in", "==", True), "ask", None),
)
