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


@dataclass
class Outcome:
    state: RunState | None
    events: list[ev.RunEvent] = field(default_factory=list)
    rejection: Rejection | None = None


def process(
    state: RunState | None,
    command: Input,
    clock: Callable[[], datetime],
    recent: Sequence[PatientEvent] = (),
    policy: Policy = DEFAULT_POLICY,
) -> Outcome:
    """Decide `command` for its run at the clock's time, under the deployment's `policy`."""
    decision = decide(state, command, clock(), recent, policy)
    if isinstance(decision, Rejection):
        return Outcome(state=state, rejection=decision)
    return Outcome(state=decision.state, events=list(decision))
