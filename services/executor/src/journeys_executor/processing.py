"""One command in, the run's new state and its events out: the core plus message delivery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.channels import Channel, DeliveryResult
from journeys_executor.core import PatientEvent, Rejection, RunState, decide
from journeys_executor.core.decide import Input

log = logging.getLogger(__name__)

BeforeDelivery = Callable[[Sequence[ev.RunEvent]], Awaitable[None]]


@dataclass
class Outcome:
    state: RunState | None
    events: list[ev.RunEvent] = field(default_factory=list)
    rejection: Rejection | None = None
    handed_over: int = 0
    """How many of `events` were already given to `before_delivery`."""

    @property
    def remaining(self) -> list[ev.RunEvent]:
        return self.events[self.handed_over :]


async def process(
    state: RunState | None,
    command: Input,
    channel: Channel | None,
    clock: Callable[[], datetime],
    before_delivery: BeforeDelivery | None = None,
    recent: Sequence[PatientEvent] = (),
) -> Outcome:
    """Decide, then deliver each requested message and record its outcome, until the run waits.

    Without a `channel` (the delivery service sends), a requested message is where the run
    waits: its outcome comes back later as a `RecordDelivery` command.

    Delivery happens before the transaction commits, so a crash re-delivers with the same
    message id: the channel's idempotency key makes that safe. `before_delivery` gets the
    events not yet handed over before each delivery: the executor writes them into its
    transaction and waits for the broker, so a fenced replica (a zombie) fails there instead
    of delivering a message its successor will deliver too.
    """
    decision = decide(state, command, clock(), recent)
    if isinstance(decision, Rejection):
        return Outcome(state=state, rejection=decision)
    outcome = Outcome(state=decision.state, events=list(decision))
    while channel is not None and outcome.state is not None and not outcome.state.ended:
        pending = outcome.state.pending_message
        if pending is None:
            break
        if before_delivery is not None:
            await before_delivery(outcome.remaining)
            outcome.handed_over = len(outcome.events)
        try:
            result = await channel.deliver(
                pending.message_id, outcome.state.patient_id, pending.message
            )
        except Exception as exc:  # a channel should answer, not raise
            # Only the type: the error's text may quote the patient or the message.
            log.warning("channel raised", extra={"error": type(exc).__name__})
            result = DeliveryResult(delivered=False, reason=f"channel error: {type(exc).__name__}")
        record = cmd.RecordDelivery(
            run_id=outcome.state.run_id,
            message_id=pending.message_id,
            channel=channel.name,
            delivered=result.delivered,
            reason=result.reason,
            at=clock(),
        )
        more = decide(outcome.state, record, record.at, recent)
        if isinstance(more, Rejection):  # cannot happen: the core asked for this delivery
            raise RuntimeError(more.reason)
        outcome.state = more.state
        outcome.events.extend(more)
    return outcome
