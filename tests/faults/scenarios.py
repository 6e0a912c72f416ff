"""The scenarios: each breaks the running stack under load in one way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from journeys_runtime.kafka import producer
from journeys_stack.ports import free_port
from journeys_stack.supervisor import ServiceProcess, ServiceStartError
from tests.faults.checkers import (
    CHECKERS,
    check,
    injected_dead_letters,
    injected_failed,
    redelivered,
)
from tests.faults.delivery import (
    DELIVERY_CHECKERS,
    delivery_stack,
    kill_delivery,
    observe_gateway,
    provider_down,
    provider_hangs,
    provider_throttles,
)
from tests.faults.event_cases import MIXES
from tests.faults.event_checkers import EVENT_CHECKERS, check_events, outcomes
from tests.faults.events_load import (
    INGEST_SOURCES,
    INGEST_TOPIC,
    WEBHOOK_SOURCES,
    EventLoad,
    run_event_load,
)
from tests.faults.inject import inject_oversized, inject_poison
from tests.faults.load import run_load
from tests.faults.observe import Observed, observe
from tests.faults.proxy import TcpProxy
from tests.faults.stack import FaultStack

Fault = Callable[[FaultStack], Awaitable[dict[str, int]]]


@dataclass
class Load:
    rate: float = 30.0
    seconds: float = 12.0
    fault_at: float = 4.0


# Scenarios whose fault takes long need the load to go on meanwhile (commits, due timers).
MIN_LOAD_SECONDS = {"7": 60.0, "8a": 50.0, "8b": 80.0, "18": 45.0, "19": 30.0, "20": 30.0}


def load_for(key: str, rate: float, seconds: float) -> Load:
    seconds = max(seconds, MIN_LOAD_SECONDS.get(key, 0.0))
    return Load(rate=rate, seconds=seconds, fault_at=min(seconds / 3, 7.0))


@dataclass
class ScenarioResult:
    name: str
    accepted: int
    seconds: float
    counts: dict[str, int]
    examples: dict[str, list[str]]
    redelivered: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(n == 0 for n in self.counts.values())


async def _restart(stack: FaultStack, name: str, down_for: float) -> None:
    stack.supervisor.kill(name, signal.SIGKILL)
    await asyncio.sleep(down_for)
    await asyncio.to_thread(stack.supervisor.restart, name)


async def kill_executor(stack: FaultStack) -> dict[str, int]:
    await _restart(stack, "executor", down_for=1.0)
    return {}


async def kill_executor_for_long(stack: FaultStack) -> dict[str, int]:
    """Down long enough for many waiting runs' events (and due timers) to pile up."""
    await _restart(stack, "executor", down_for=8.0)
    return {}


async def kill_scheduler(stack: FaultStack) -> dict[str, int]:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM scheduler_timers WHERE due_at < now() + interval '5 seconds'"
        ).fetchone()
    await _restart(stack, "scheduler", down_for=3.0)
    return {"timers_due_within_5s_at_kill": int(row[0]) if row else 0}


async def kill_projector(stack: FaultStack) -> dict[str, int]:
    await _restart(stack, "projector", down_for=2.0)
    return {}


async def kill_api(stack: FaultStack) -> dict[str, int]:
    """Requests in flight get no answer; the load retries them with the same key."""
    await _restart(stack, "api", down_for=2.0)
    return {}


async def kill_api_and_ingest(stack: FaultStack) -> dict[str, int]:
    """The two processes events come in through, one after the other: requests in flight get
    no answer and are sent again; records the ingest read but had not committed are read
    again."""
    await _restart(stack, "api", down_for=2.0)
    if "ingest" not in stack.supervisor.services:
        return {}
    await _restart(stack, "ingest", down_for=2.0)
    return {"ingest_restarted": 1}


async def scheduler_down_past_due_times(stack: FaultStack) -> dict[str, int]:
    stack.supervisor.kill("scheduler", signal.SIGKILL)
    await asyncio.sleep(8.0)  # every delay started meanwhile (1-5 s) comes due while down
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM scheduler_timers WHERE due_at < now()").fetchone()
    await asyncio.to_thread(stack.supervisor.restart, "scheduler")
    return {"timers_overdue_at_restart": int(row[0]) if row else 0}


def _add_executor(stack: FaultStack, n: int) -> str:
    """Another executor replica: same command, its own ops port."""
    base = stack.supervisor.services["executor"]
    name, port = f"executor-{n}", free_port()
    env = {**base.env, "EXECUTOR_OPS_PORT": str(port)}
    stack.supervisor.services[name] = ServiceProcess(
        name,
        base.argv,
        env,
        f"http://127.0.0.1:{port}/ready",
        base.log_path.with_name(f"{name}.log"),
    )
    return name


async def zombie_executor(stack: FaultStack) -> dict[str, int]:
    """SIGSTOP past the session timeout while a second replica takes over, then SIGCONT:
    the first one's transactions must be fenced, never committed."""
    second = _add_executor(stack, 2)
    await asyncio.to_thread(stack.supervisor.start, second)
    stack.supervisor.kill("executor", signal.SIGSTOP)
    await asyncio.sleep(15.0)  # executor session timeout is 10 s
    stack.supervisor.kill("executor", signal.SIGCONT)
    await asyncio.sleep(5.0)
    return {"zombie_still_running": int(stack.supervisor.running("executor"))}


async def scale_executor(stack: FaultStack) -> dict[str, int]:
    """1 → 3 → 1 replicas under load: two rebalances each way."""
    added = [_add_executor(stack, n) for n in (2, 3)]
    for name in added:
        await asyncio.to_thread(stack.supervisor.start, name)
    await asyncio.sleep(4.0)
    for name in added:
        await asyncio.to_thread(stack.supervisor.stop, name)
    return {"replicas_at_peak": 1 + len(added)}


# The scheduler first: its window needs timers coming due, which stop soon after the load.
CRASH_WINDOWS = [
    ("scheduler", "scheduler.after_fire@3"),
    ("projector", "projector.before_commit@5"),
    ("projector", "projector.after_commit@5"),
    ("executor", "executor.before_commit@5"),
    ("executor", "executor.after_commit@5"),
]
CRASHED = "crash point reached"


async def _crash_at(stack: FaultStack, service: str, spec: str, within: float = 20.0) -> bool:
    """Restart `service` with one crash point armed, wait until it kills itself there, then
    start it again unarmed. True when the log says the point was reached."""
    process = stack.supervisor.services[service]
    before = _count_in(process.log_path, CRASHED)
    process.env["JOURNEYS_CRASH_AT"] = spec
    try:
        stack.supervisor.kill(service, signal.SIGKILL)
        with contextlib.suppress(ServiceStartError):  # it may crash before it is ready
            await asyncio.to_thread(stack.supervisor.start, service)
        if process.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.process.wait, within)
    finally:
        del process.env["JOURNEYS_CRASH_AT"]
    reached = _count_in(process.log_path, CRASHED) > before
    await asyncio.to_thread(stack.supervisor.restart, service)
    return reached


def _count_in(path: Path, text: str) -> int:
    return path.read_text(errors="replace").count(text) if path.exists() else 0


async def crash_in_commit_windows(stack: FaultStack) -> dict[str, int]:
    """Each service killed (by its own test-only crash point) inside each commit window."""
    reached = {spec: await _crash_at(stack, service, spec) for service, spec in CRASH_WINDOWS}
    missed = {f"missed {spec}": 1 for spec, hit in reached.items() if not hit}
    return {"crash_points_reached": sum(reached.values()),
            "crash_points_missed": len(missed), **missed}  # fmt: skip


async def _outage(proxy: TcpProxy | None, seconds: float) -> dict[str, int]:
    assert proxy is not None, "this scenario needs its stack behind a proxy (OUTAGE_STACKS)"
    await asyncio.to_thread(proxy.down)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(proxy.up)
    return {"outage_seconds": int(seconds)}


async def kafka_away(stack: FaultStack) -> dict[str, int]:
    return await _outage(stack.kafka_proxy, stack.outage_seconds)


async def postgres_away(stack: FaultStack) -> dict[str, int]:
    return await _outage(stack.database_proxy, 2 * stack.outage_seconds)


# How `fault_stack` builds the stack of the scenarios that cut a dependency off.
OUTAGE_STACKS: dict[str, dict[str, Any]] = {
    "8a": {"proxy_kafka": True},
    "8b": {"proxy_database": True},
}
# The patient-event checkers read the commands topic after the load: the executor must not
# trim what it consumed meanwhile. The load also sends events as signed webhooks and as
# records on another team's topic, which the ingest reads.
EVENTS_STACK: dict[str, Any] = {"service_env": {
    "EXECUTOR_COMMANDS_TRIM_SECONDS": "0", "API_WEBHOOK_SOURCES": json.dumps(WEBHOOK_SOURCES),
    "INGEST_SOURCES": json.dumps(INGEST_SOURCES),
}}  # fmt: skip
STACK_OPTIONS: dict[str, dict[str, Any]] = {**OUTAGE_STACKS, **dict.fromkeys(MIXES, EVENTS_STACK)}
DELIVERY_SCENARIOS = ("17", "18", "19", "20")


def stack_options(key: str) -> dict[str, Any]:
    """How `fault_stack` builds scenario `key`'s stack."""
    if key in DELIVERY_SCENARIOS:  # the gateway starts (or is reset) only when one runs
        return delivery_stack()
    return STACK_OPTIONS.get(key, {})


# Malformed, each of them; a record of a type a newer version added is not poison (readers skip
# and count it), so none is spelled like one of our type names.
POISON = [b"not json", b'{"type": "no such type"}', b'{"runId": 42}']
# The readers of each topic: the projector; + the executor (commands) or the scheduler (events).
CONSUMERS = {"definitions": 1, "commands": 2, "events": 2, "sealed_events": 2}


async def poison_every_topic(stack: FaultStack) -> dict[str, int]:
    p = producer(stack.kafka_bootstrap)
    await p.start()
    try:
        for kind in CONSUMERS:
            topic = getattr(stack.topics, kind)
            for value in POISON:
                await p.send_and_wait(topic, value, key=b"poison")
    finally:
        await p.stop()
    return {"poison_records": len(POISON) * len(CONSUMERS)}


async def poison_commands(stack: FaultStack) -> dict[str, int]:
    """Commands that make the core raise (after a message went out, at the start, on a timer
    the scheduler fires): each run fails, the executor never stops."""
    stack.injected = await inject_poison(stack.kafka_bootstrap, stack.topics)
    return {"poison_commands": len(stack.injected)}


async def oversized_records(stack: FaultStack) -> dict[str, int]:
    """Commands whose records cannot be produced (a command that fits whose RunStarted does
    not, a command over the limit): each run fails, no partition stalls."""
    stack.injected = await inject_oversized(stack.kafka_bootstrap, stack.topics)
    return {"oversized_commands": len(stack.injected)}


SCENARIOS: dict[str, tuple[str, Fault]] = {
    "1": ("SIGKILL the executor mid-load, start it again", kill_executor),
    "2": ("SIGKILL the scheduler with timers coming due, start it again", kill_scheduler),
    "3": ("SIGKILL the projector mid-load, start it again", kill_projector),
    "4": ("SIGKILL the API with triggers in flight, start it again", kill_api),
    "5": (
        "SIGSTOP the executor past its session timeout, a second replica takes over, SIGCONT",
        zombie_executor,
    ),
    "6": ("scale the executor 1 -> 3 -> 1 replicas under load", scale_executor),
    "7": (
        "crash inside each commit window (executor, projector, scheduler)",
        crash_in_commit_windows,
    ),
    "8a": ("Kafka unreachable for 30 s, then back", kafka_away),
    "8b": ("PostgreSQL unreachable for 60 s, then back", postgres_away),
    "9": ("poison records on every topic", poison_every_topic),
    "10": ("the scheduler down past many due times, then back", scheduler_down_past_due_times),
    "11": ("poison commands that make the executor's core raise", poison_commands),
    "12": ("oversized records: runs whose records can never be produced", oversized_records),
    "13": ("SIGKILL the executor while events come for waiting runs, start it again",
           kill_executor_for_long),
    "14": ("the same events re-sent through POST /events (every body form), signed webhooks "
           "and another team's topic, the API and the ingest SIGKILLed meanwhile",
           kill_api_and_ingest),
    "15": ("events that come before their wait (look-back), the executor SIGKILLed between",
           kill_executor_for_long),
    "16": ("exits during pending delays and waits, the scheduler SIGKILLed meanwhile",
           kill_scheduler),
    "17": ("SIGKILL the delivery service with sends in flight, start it again", kill_delivery),
    "18": ("the messaging gateway down (503) for 30 s, then back", provider_down),
    "19": ("the messaging gateway throttling: 429, then 503, with Retry-After",
           provider_throttles),
    "20": ("the messaging gateway hanging past the channel's timeout for 15 s", provider_hangs),
}  # fmt: skip


async def _settle(stack: FaultStack, ids: list[str], within: float = 90) -> None:
    """Wait until every run of `ids` has ended in the read model, or the bound passes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM runs WHERE run_id = ANY(%s::uuid[]) "
                "AND status IN ('completed', 'failed', 'cancelled')", (ids,)
            ).fetchone()  # fmt: skip
        if row is not None and row[0] == len(ids):
            return
        await asyncio.sleep(0.5)


async def timer_order(stack: FaultStack) -> int:
    """FireTimer commands out of due order within a partition (the scheduler fires in due
    order, and one partition keeps the order it was given)."""
    from tests.faults.observe import drain

    last: dict[int, datetime] = {}
    inversions = 0
    for record in await drain(stack.kafka_bootstrap, stack.topics.commands):
        try:
            command = json.loads(record.value)
        except ValueError:
            continue
        if command.get("type") != "journeys.command.fire_timer.v1":
            continue
        due = datetime.fromisoformat(command["dueAt"])
        if record.partition in last and due < last[record.partition]:
            inversions += 1
        last[record.partition] = max(due, last.get(record.partition, due))
    return inversions


def _dlq_missing(stack: FaultStack, dlq: list[dict[str, str | None]]) -> int:
    missing = 0
    for kind, consumers in CONSUMERS.items():
        topic = getattr(stack.topics, kind)
        found = sum(1 for d in dlq if d["dlq_source_topic"] == topic and d["dlq_error"])
        missing += max(0, len(POISON) * consumers - found)
    return missing


async def run_scenario(key: str, stack: FaultStack, load: Load) -> ScenarioResult:
    name, fault = SCENARIOS[key]
    started = time.monotonic()
    load_task = asyncio.create_task(run_load(stack.api_url, stack.api_key, load.rate, load.seconds))
    events_task = None
    if key in MIXES:
        ingest = (stack.kafka_bootstrap, INGEST_TOPIC.format(topic_prefix=stack.topics.prefix))
        events_task = asyncio.create_task(run_event_load(
            stack.api_url, stack.api_key, MIXES[key], max(2.0, load.rate / 8), load.seconds,
            ingest if "ingest" in stack.supervisor.services else None,
        ))  # fmt: skip
    await asyncio.sleep(load.fault_at)
    fault_began, began_at = time.monotonic(), datetime.now(UTC)
    extra = await fault(stack)
    fault_ended, ended_at = time.monotonic(), datetime.now(UTC)
    result = await load_task
    events = await events_task if events_task is not None else None
    await _settle(stack, [*result.accepted, *(events.runs if events else ())])
    seen = await observe(stack.kafka_bootstrap, stack.topics, stack.database_url,
                         stack.delivery_logs, commands=events is not None)  # fmt: skip
    if key in DELIVERY_SCENARIOS:
        observe_gateway(seen)
    found = check(result.accepted, seen)
    counts = {k: len(found[k]) for k in CHECKERS}
    if key in DELIVERY_SCENARIOS:
        found.update({k: checker(seen) for k, checker in DELIVERY_CHECKERS.items()})
        counts.update({k: len(found[k]) for k in DELIVERY_CHECKERS})
    counts["bad_answer"] = result.bad_answers
    if events is not None:
        found.update(check_events(events.sent, seen))
        counts.update({k: len(found[k]) for k in EVENT_CHECKERS})
        counts["bad_answer"] += events.bad_answers
        extra.update(_event_extra(events, fault_began, fault_ended))
        extra.update(outcomes(seen, began_at, ended_at))
    if key == "9":
        counts["dlq_missing"] = _dlq_missing(stack, seen.dlq)
        extra["dlq_records"] = len(seen.dlq)
    if key == "10":
        counts["timer_order"] = await timer_order(stack)
    if stack.injected:  # each injected run failed, and its command is in the DLQ
        found["injected_not_failed"] = [f"{stack.injected[r].kind} {r}"
                                        for r in injected_failed(stack.injected, seen)]  # fmt: skip
        found["injected_not_dead_lettered"] = [
            f"{stack.injected[r].kind} {r}" for r in injected_dead_letters(stack.injected, seen)
        ]
        counts["injected_not_failed"] = len(found["injected_not_failed"])
        counts["injected_not_dead_lettered"] = len(found["injected_not_dead_lettered"])
    if key == "7":  # a crash point never reached proves nothing about its window
        counts["crash_points_missed"] = extra.pop("crash_points_missed")
    # Runs nobody got a 202 for (a request that got no answer): allowed, never twice per key.
    extra["unacknowledged_runs"] = len(
        set(seen.events)
        - set(result.accepted)
        - set(stack.injected)
        - set(events.runs if events else ())
        - _triggered(seen)
    )
    extra["triggers_sent"] = result.attempted
    extra["load_loop_lag_max_ms"] = round(result.loop_lag_max * 1000)
    extra["unanswered_requests"] = result.unanswered
    extra.update({f"unanswered_{kind}": n for kind, n in result.unanswered_kinds.items()})
    extra.update({f"http_{status}": n for status, n in result.rejected.items()})
    extra.update({f"error_{kind}": n for kind, n in result.errors.items()})
    return ScenarioResult(
        name=f"{key}. {name}",
        accepted=len(result.accepted),
        seconds=round(time.monotonic() - started, 1),
        counts=counts,
        examples={k: v[:3] for k, v in found.items() if v},
        redelivered=len(redelivered(seen)),
        extra=extra,
    )


def _triggered(seen: Observed) -> set[str]:
    """Runs a patient event started (their events name it): nobody got a 202 for those."""
    return {r for r, events in seen.events.items() if events[:1]
            and events[0].get("triggerEventId")}  # fmt: skip


def _event_extra(events: EventLoad, began: float, ended: float) -> dict[str, int]:
    """What the event load did: events answered 202 (and while the fault lasted), repeats the
    API answered as duplicates, cases by kind, and cases that gave up (no 202, or a run the
    read model never showed waiting)."""
    accepted = [s for s in events.sent.values() if s.forms]
    out = {
        "events_accepted": len(accepted),
        "events_accepted_during_fault": sum(any(began <= t <= ended for t in s.at)
                                            for s in accepted),
        "events_sent_twice_or_more": sum(len(s.forms) > 1 for s in accepted),
        "event_duplicates_answered": events.duplicates_answered,
        "event_unanswered_requests": events.unanswered,
        "event_runs": len(events.runs),
    }  # fmt: skip
    forms = Counter(form for s in accepted for form in s.forms)
    out.update({f"accepted_as_{form}": n for form, n in sorted(forms.items())})
    out.update({f"cases_{kind}": n for kind, n in events.cases.items()})
    out.update({f"cases_unfinished_{kind}": n for kind, n in events.unfinished.items()})
    return out
