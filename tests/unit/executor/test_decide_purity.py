"""The core is a pure function: same inputs, same events; no clock, no randomness, no I/O."""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import random
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

import journeys_executor.core
from journeys_contracts import events as ev
from journeys_executor.core import Rejection, decide
from tests.unit.executor.helpers import (
    MSG_DELAY_MSG,
    RUN,
    T0,
    WEEKLY,
    Run,
    cancel,
    delivery,
    given,
    rejected,
    start,
    timer_fired,
)

CORE = Path(journeys_executor.core.__file__).parent
CORE_FILES = sorted(CORE.rglob("*.py"))

# Standard-library modules that compute and do nothing else: no files, network, processes,
# environment, clock, randomness or logging. `zoneinfo` reads tz files, so it is not here.
PURE_STDLIB = {
    "__future__", "abc", "base64", "bisect", "collections", "copy", "dataclasses", "datetime",
    "decimal", "enum", "fractions", "functools", "hashlib", "heapq", "hmac", "itertools",
    "json", "math", "numbers", "operator", "re", "statistics", "string", "types", "typing",
    "unicodedata", "uuid",
}  # fmt: skip
# Outside the standard library: the contracts (their models, not the schema writer) and
# pydantic, which they are made of.
PURE_PACKAGES = {"journeys_contracts", "pydantic"}
IMPURE_CONTRACT_MODULES = {"journeys_contracts.schemas"}
# Calls that read the clock, draw randomness or do I/O, by the name they are called with.
FORBIDDEN_NAMES = {
    "open", "print", "input", "exec", "eval", "compile", "__import__", "breakpoint", "exit",
    "quit", "now", "utcnow", "today", "uuid1", "uuid4", "urandom", "getenv",
}  # fmt: skip
# What a run of the core must never reach, patched to record the call and raise.
SANDBOX: list[tuple[ModuleType, str]] = [
    (builtins, "open"), (builtins, "print"), (builtins, "input"), (io, "open"),
    (os, "open"), (os, "system"), (os, "urandom"), (os, "getenv"), (os, "listdir"),
    (os, "scandir"), (os, "stat"), (socket, "socket"), (socket, "create_connection"),
    (socket, "getaddrinfo"), (subprocess, "Popen"), (subprocess, "run"), (time, "time"),
    (time, "time_ns"), (time, "monotonic"), (time, "perf_counter"), (time, "sleep"),
    (random, "random"), (random, "getrandbits"), (random, "randint"), (random, "choice"),
    (uuid, "uuid1"), (uuid, "uuid4"), (secrets, "token_bytes"), (secrets, "token_hex"),
]  # fmt: skip


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


@contextlib.contextmanager
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Everything in SANDBOX records its call and raises, until the block ends; the list of
    calls is checked too, in case the core swallowed the exception."""
    calls: list[str] = []
    with monkeypatch.context() as m:
        for module, name in SANDBOX:

            def forbidden(
                *_: object, _name: str = f"{module.__name__}.{name}", **__: object
            ) -> NoReturn:
                calls.append(_name)
                raise AssertionError(f"the core called {_name}")

            m.setattr(module, name, forbidden)
        yield calls


def every_kind_of_command() -> None:
    """Each processor of the core, accepted and rejected: start, deliveries that succeed and
    fail, a timer on time and a stale one, a condition both ways, cancels before and after."""
    run = weekly_run()
    stale = timer_fired(run.s)
    run.when(cancel())
    assert run.s.status == "cancelled"
    rejected(run.when(stale))
    rejected(run.when(cancel()))
    failing = given(MSG_DELAY_MSG)
    failing.deliver(ok=False, reason="unreachable")
    opted_out = given(WEEKLY, {"id": "p-2", "opted_in": False})
    opted_out.deliver()
    opted_out.fire()
    assert opted_out.s.status == "completed"
    rejected(opted_out.when(start(WEEKLY)))


def test_the_core_reaches_no_file_socket_process_clock_or_randomness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sandbox(monkeypatch) as calls:
        every_kind_of_command()
    assert calls == []


def test_the_sandbox_catches_a_core_that_does_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def impure(*_: object) -> None:
        print("to the terminal")

    with sandbox(monkeypatch) as calls, pytest.raises(AssertionError):
        impure()
    assert calls == ["builtins.print"]


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every import statement in one file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            found.append((node.module or "", [alias.name for alias in node.names]))
    return found


def impure_imports(path: Path) -> list[str]:
    bad = []
    for module, names in imports(path):
        top = module.split(".")[0]
        if top == "journeys_executor":
            ok = module == "journeys_executor.core" or module.startswith("journeys_executor.core.")
        else:
            ok = top in PURE_STDLIB | PURE_PACKAGES and module not in IMPURE_CONTRACT_MODULES
        ok = ok and not set(names) & FORBIDDEN_NAMES
        if not ok:
            bad.append(f"{module} ({', '.join(names)})" if names else module)
    return bad


def forbidden_calls(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in FORBIDDEN_NAMES:
            bad.append(f"line {node.lineno}: {name}()")
    return bad


def test_the_core_imports_only_pure_standard_modules_and_the_contracts() -> None:
    assert CORE_FILES, f"no source found under {CORE}"
    found = {path.name: impure_imports(path) for path in CORE_FILES}
    assert not {name: bad for name, bad in found.items() if bad}
    assert any(module == "journeys_contracts" or module.startswith("journeys_contracts.")
               for path in CORE_FILES for module, _ in imports(path))  # fmt: skip


def test_the_core_calls_no_clock_randomness_or_io_builtin() -> None:
    found = {path.name: forbidden_calls(path) for path in CORE_FILES}
    assert not {name: bad for name, bad in found.items() if bad}


@pytest.mark.parametrize(
    ("source", "offence"),
    [
        ("import subprocess", "subprocess"),
        ("import urllib.request", "urllib.request"),
        ("from pathlib import Path", "pathlib (Path)"),
        ("import logging", "logging"),
        ("from uuid import uuid4", "uuid (uuid4)"),
        ("from journeys_contracts.schemas import write", "journeys_contracts.schemas (write)"),
        ("import journeys_executor.partition", "journeys_executor.partition"),
    ],
)
def test_the_import_check_refuses_io_modules(tmp_path: Path, source: str, offence: str) -> None:
    path = tmp_path / "impure.py"
    path.write_text(f"{source}\n")
    assert impure_imports(path) == [offence]


@pytest.mark.parametrize(
    "source",
    ["open('/tmp/x')", "print(1)", "datetime.now(UTC)", "datetime.utcnow()", "date.today()",
     "uuid.uuid4()", "os.urandom(8)", "os.getenv('X')"],
)  # fmt: skip
def test_the_call_check_refuses_clock_randomness_and_io(tmp_path: Path, source: str) -> None:
    path = tmp_path / "impure.py"
    path.write_text(f"def f():\n    return {source}\n")
    assert len(forbidden_calls(path)) == 1


def test_a_command_the_run_cannot_take_is_answered_with_a_reason_not_an_exception() -> None:
    outcome = decide(None, cancel(), T0)
    assert isinstance(outcome, Rejection)
    assert str(RUN) in rejected(outcome)
    ended = weekly_run()
    ended.when(cancel())
    assert "cancelled" in rejected(ended.when(cancel()))
