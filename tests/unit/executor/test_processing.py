"""`process`: the core at the clock's time; a message is where the run waits, since the
executor sends nothing itself."""

from __future__ import annotations

from journeys_executor.processing import process
from tests.unit.executor.helpers import T0, delay, journey, kinds, message, start

TWO_MESSAGES = journey(message("a", "b", "first"), message("b", "w", "second"), delay("w", 60))


def test_a_run_waits_at_its_first_message_for_the_delivery_report() -> None:
    outcome = process(None, start(TWO_MESSAGES), lambda: T0)
    assert kinds(outcome.events) == ["run.started", "node.entered", "message.requested"]
    assert outcome.state is not None
    assert outcome.state.pending_message is not None
    assert outcome.state.pending_message.message == "first"
    assert outcome.state.status == "in_progress"
    assert outcome.rejection is None


def test_a_rejected_command_keeps_the_state_it_was_given() -> None:
    first = process(None, start(TWO_MESSAGES), lambda: T0)
    again = process(first.state, start(TWO_MESSAGES), lambda: T0)
    assert again.rejection is not None
    assert again.state is first.state
    assert again.events == []
