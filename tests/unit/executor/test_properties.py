"""Property tests: any valid journey, any patient, any order of deliveries, timers and cancels."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys_contracts import events as ev
from journeys_contracts.definition import JourneyDefinition, graph_errors
from journeys_executor.core import fold
from tests.unit.contracts.strategies import arbitrary_graphs, contexts, journeys
from tests.unit.executor.driver import Driver

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_whole_log_is_sound(driver: Driver) -> None:
    events = driver.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[0], ev.RunStarted)
    assert sum(isinstance(e, ev.RunStarted) for e in events) == 1
    terminal = [i for i, e in enumerate(events) if e.type in ev.TERMINAL_EVENT_TYPES]
    assert terminal == ([len(events) - 1] if driver.s.ended else [])
    assert fold(None, events) == driver.state
    assert fold(None, [ev.decode_event(e.to_json()) for e in events]) == driver.state


@settings(SETTINGS, max_examples=200)
@given(definition=journeys(), context=contexts, data=st.data())
def test_any_valid_journey_always_waits_on_exactly_one_thing_or_ends_with_a_replayable_log(
    definition: JourneyDefinition, context: dict[str, Any], data: st.DataObject
) -> None:
    assert graph_errors(definition) == []
    driver = Driver(definition, context, data)
    driver.run()
    assert_whole_log_is_sound(driver)


@settings(SETTINGS, max_examples=150)
@given(definition=arbitrary_graphs(), context=contexts, data=st.data())
def test_a_graph_that_graph_errors_accepts_never_makes_a_command_loop(
    definition: JourneyDefinition, context: dict[str, Any], data: st.DataObject
) -> None:
    if graph_errors(definition):
        return
    driver = Driver(definition, context, data)
    driver.run(max_commands=25)
    assert not any(
        isinstance(e, ev.RunFailed) and "without waiting" in e.reason for e in driver.events
    )
    assert_whole_log_is_sound(driver)
