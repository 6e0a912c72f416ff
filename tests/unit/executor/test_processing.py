"""`process`: the core plus delivery, and the hook that lets the executor fail before delivering."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import pytest

from journeys_contracts import events as ev
from journeys_executor.channels import DeliveryResult
from journeys_executor.processing import process
from tests.unit.executor.helpers import T0, delay, journey, message, start


class Recording:
    """A channel that records every call, in order, with what the hook had seen by then."""

    name = "recording"

    def __init__(self, log: list[str], raises: bool = False) -> None:
        self.log, self.raises = log, raises

    async def deliver(self, message_id: UUID, patient_id: str, text: str) -> DeliveryResult:
        self.log.append(f"deliver {text}")
        if self.raises:
            raise ConnectionError("provider down: patient p-1")
        return DeliveryResult(delivered=True)


TWO_MESSAGES = journey(message("a", "b", "first"), message("b", "w", "second"), delay("w", 60))


async def test_every_event_is_handed_over_before_the_delivery_it_leads_to() -> None:
    log: list[str] = []
    handed: list[ev.Event] = []

    async def before_delivery(events: Sequence[ev.Event]) -> None:
        handed.extend(events)
        log.append(f"hand over {[e.type.split('.')[2] for e in events]}")

    outcome = await process(None, start(TWO_MESSAGES), Recording(log), lambda: T0,
                            before_delivery)  # fmt: skip

    assert log == [
        "hand over ['started', 'entered', 'requested']",
        "deliver first",
        "hand over ['sent', 'entered', 'requested']",
        "deliver second",
    ]
    # Handed over and remaining together are every event, once, in seq order.
    assert [e.seq for e in [*handed, *outcome.remaining]] == [e.seq for e in outcome.events]
    assert [e.seq for e in outcome.events] == list(range(1, len(outcome.events) + 1))
    assert outcome.handed_over == len(handed)
    assert isinstance(outcome.remaining[-1], ev.DelayStarted)


async def test_without_the_hook_nothing_is_handed_over() -> None:
    outcome = await process(None, start(TWO_MESSAGES), Recording([]), lambda: T0)
    assert outcome.handed_over == 0
    assert outcome.remaining == outcome.events


async def test_a_failing_hook_stops_before_the_message_is_delivered() -> None:
    log: list[str] = []

    async def fenced(events: Sequence[ev.Event]) -> None:
        raise RuntimeError("fenced")

    with pytest.raises(RuntimeError, match="fenced"):
        await process(None, start(TWO_MESSAGES), Recording(log), lambda: T0, fenced)
    assert log == []


async def test_a_channel_that_raises_fails_the_message_without_quoting_its_error() -> None:
    outcome = await process(None, start(TWO_MESSAGES), Recording([], raises=True), lambda: T0)
    failed = [e for e in outcome.events if isinstance(e, ev.MessageFailed)]
    assert len(failed) == 2  # each message fails, and the run goes on past it
    assert {e.reason for e in failed} == {"channel error: ConnectionError"}
    assert outcome.state is not None
    assert outcome.state.status == "waiting_delay"
