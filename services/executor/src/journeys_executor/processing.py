"""One command in, the run's new state and its events out.

The executor never sends a message itself: a MESSAGE node's `journeys.message.requested` is
where the run waits, and the partition adds the delivery request the delivery service acts on
(in the same transaction). The outcome comes back later as a `RecordDelivery` command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from journeys_contracts import events as ev
from journeys_executor.core import PatientEvent, Rejection, RunState, decide
from journeys_executor.core.decide import DEFAULT_POLICY, Input, Policy
from journeys_executor.core.guard import NO_GUARD, Guard


@dataclass
class Outcome:
    state: RunState | None
    events: list[ev.RunEvent] = field(default_factory=list)
    rejection: Rejection | None = None
    guard: Guard = NO_GUARD


def process(
    state: RunState | None,
    command: Input,
    clock: Callable[[], datetime],
    recent: Sequence[PatientEvent] = (),
    policy: Policy = DEFAULT_POLICY,
    guard: Guard = NO_GUARD,
) -> Outcome:
    """Decide `command` for its run at the clock's time, under the deployment's `policy` and
    the patient's `guard`; the outcome carries the guard as its messages leave it."""
    now = clock()
    decision = decide(state, command, now, recent, policy, guard)
    if isinstance(decision, Rejection):
        return Outcome(state=state, rejection=decision, guard=guard)
    events = list(decision)
    return Outcome(state=decision.state, events=events, guard=guard.after(events, now, policy.cap))
