"""One command in, the run's new state and its events out: the core plus message delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.channels import Channel
from journeys_executor.core import Rejection, RunState, decide, fold


@dataclass
class Outcome:
    state: RunState | None
    events: list[ev.Event] = field(default_factory=list)
    rejection: Rejection | None = None


async def process(
    state: RunState | None,
    command: cmd.Command,
    channel: Channel,
    clock: Callable[[], datetime],
) -> Outcome:
    """Decide, then deliver each requested message and record its outcome, until the run waits.

    Delivery happens before the transaction commits, so a crash re-delivers with the same
    message id: the channel's idempotency key makes that safe.
    """
    decision = decide(state, command, clock())
    if isinstance(decision, Rejection):
        return Outcome(state=state, rejection=decision)
    outcome = Outcome(state=fold(state, decision), events=list(decision))
    while outcome.state is not None and not outcome.state.ended:
        pending = outcome.state.pending_message
        if pending is None:
            break
        result = await channel.deliver(
            pending.message_id, outcome.state.patient_id, pending.message
        )
        record = cmd.RecordDelivery(
            run_id=outcome.state.run_id,
            message_id=pending.message_id,
            channel=channel.name,
            delivered=result.delivered,
            reason=result.reason,
            at=clock(),
        )
        more = decide(outcome.state, record, record.at)
        if isinstance(more, Rejection):  # cannot happen: the core asked for this delivery
            raise RuntimeError(more.reason)
        outcome.state = fold(outcome.state, more)
        outcome.events.extend(more)
    return outcome
