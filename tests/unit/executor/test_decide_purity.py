"""The core is a pure function: same inputs, same events; no clock, no randomness, no I/O."""

from __future__ import annotations

import ast
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import journeys_executor.core
from journeys_contracts import events as ev
from journeys_executor.core import Rejection, decide
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    RUN,
    WEEKLY,
    Run,
    cancel,
    delivery,
    given,
    start,
    timer_fired,
)

CORE = Path(journeys_executor.core.__file__).parent


def weekly_run(run_id: uuid.UUID = RUN, at: datetime | None = None) -> Run:
    """Start, deliver, fire, deliver: a message id, a timer id, a second message and timer."""
    run = Run()
    run.when(start(WEEKLY, {"id": "p-1", "opted_in": True}, run_id), at)
    run.deliver()
    run.fire(late=timedelta(seconds=1))
    run.deliver()
    return run


def ids_of(events: list[ev.Event]) -> list[uuid.UUID]:
    return [
        e.message_id if isinstance(e, ev.MessageRequested) else e.timer_id
        for e in events
        if isinstance(e, ev.MessageRequested | ev.DelayStarted)
    ]


def test_same_state_command_and_now_give_equal_outcomes_for_every_command() -> None:
    run = given(MSG_DELAY_MSG)
    assert decide(None, start(MSG_DELAY_MSG), run.now) == decide(None, start(MSG_DELAY_MSG),
                                                                 run.now)  # fmt: skip
    for command in (delivery(run.s), delivery(run.s, ok=False), cancel()):
        assert decide(run.s, command, run.now) == decide(run.s, command, run.now)
    run.deliver()
    assert decide(run.s, timer_fired(run.s), run.now) == decide(run.s, timer_fired(run.s), run.now)


def test_replaying_the_same_commands_gives_the_same_message_and_timer_ids() -> None:
    first, second = weekly_run(), weekly_run()
    assert first.events == second.events
    assert len(ids_of(first.events)) == 4


def test_message_and_timer_ids_are_derived_from_the_run_id() -> None:
    ids = ids_of(weekly_run().events)
    assert all(i.version == 5 for i in ids)
    assert len(set(ids)) == len(ids)


def test_two_runs_of_one_journey_never_share_a_message_or_timer_id() -> None:
    other = uuid.UUID("33333333-3333-4333-8333-333333333333")
    assert not set(ids_of(weekly_run().events)) & set(ids_of(weekly_run(other).events))


@pytest.mark.parametrize("now", [datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
                                 datetime(2099, 6, 1, tzinfo=UTC)])  # fmt: skip
def test_every_time_in_the_events_comes_from_now(now: datetime) -> None:
    run = given(MSG_DELAY_MSG, at=now)
    run.deliver()
    assert {e.occurred_at for e in run.events} == {now}
    assert run.last(ev.DelayStarted).due_at == now + timedelta(seconds=90)
    assert run.s.updated_at == now


def test_decide_draws_no_random_ids_and_reads_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_: object) -> None:
        raise AssertionError("the core must not draw randomness or read the clock")

    for module, name in [(uuid, "uuid1"), (uuid, "uuid4"), (random, "random"),
                         (random, "getrandbits"), (time, "time"), (time, "time_ns"),
                         (time, "monotonic")]:  # fmt: skip
        monkeypatch.setattr(module, name, forbidden)
    run = weekly_run()
    run.when(cancel())
    assert run.s.status == "cancelled"


def test_the_core_imports_only_the_standard_library_and_the_contracts() -> None:
    allowed = set(sys.stdlib_module_names) - {"random", "secrets", "time", "socket", "os"}
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed | {"journeys_contracts", "journeys_executor", "pydantic"}, (
                    f"{path.name} imports {name}"
                )
                if top == "journeys_executor":
                    assert name.startswith("journeys_executor.core"), f"{path.name}: {name}"


@pytest.mark.parametrize("call", ["now", "utcnow", "today", "uuid1", "uuid4"])
def test_the_core_never_calls_the_clock_or_random_ids(call: str) -> None:
    for path in CORE.glob("*.py"):
        calls = {
            node.func.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        assert call not in calls, f"{path.name} calls .{call}()"


def test_a_rejection_is_a_value_not_an_exception() -> None:
    outcome = decide(None, cancel(), datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(outcome, Rejection)
    assert outcome == Rejection(outcome.reason)
