"""Many runs at once, and a crash of the executor and scheduler while runs wait on delays."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import (
    assert_gapless,
    create_journey,
    duplicates,
    message_journey,
    read_all_events,
    timeline,
    trigger,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


def _check_kafka_log(events: list[dict[str, Any]], run_ids: set[str]) -> dict[str, list[Any]]:
    """Per run on the events topic itself: seq gapless and unique, one message.sent per id."""
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["runId"] in run_ids:
            by_run[e["runId"]].append(e)
    problems: dict[str, list[Any]] = {"missing": sorted(run_ids - set(by_run)), "seq": [],
                                      "dup_sent": [], "early": []}  # fmt: skip
    for run_id, evs in by_run.items():
        seqs = [e["seq"] for e in evs]
        if seqs != list(range(1, len(seqs) + 1)):
            problems["seq"].append((run_id, seqs))
        sent = [e["data"]["messageId"] for e in evs if e["type"] == "journeys.message.sent.v1"]
        if duplicates(sent):
            problems["dup_sent"].append(run_id)
        for e in evs:
            if e["type"] == "journeys.delay.elapsed.v1":
                fired = datetime.fromisoformat(e["data"]["firedAt"])
                if fired < datetime.fromisoformat(e["data"]["dueAt"]):
                    problems["early"].append(run_id)
    return problems


async def test_100_concurrent_triggers_all_complete_with_gapless_events(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    body = message_journey(
        "burst",
        {"type": "MESSAGE", "message": "one"},
        {"type": "CONDITIONAL", "condition": {"field": "age", "operator": ">=", "value": 18},
         "on_true_next_node_id": "n2", "on_false_next_node_id": None},
        {"type": "MESSAGE", "message": "two"},
    )  # fmt: skip
    journey_id = await create_journey(client, body)

    started = time.monotonic()
    run_ids = await asyncio.gather(
        *(trigger(client, journey_id, {"id": f"burst-{i}", "age": 20 + i}) for i in range(100))
    )
    accepted = time.monotonic()
    await asyncio.gather(*(wait_for_status(client, r, {"completed"}, 60) for r in run_ids))
    finished = time.monotonic()
    print(
        f"\n100 concurrent runs: accepted in {accepted - started:.2f}s, all completed in "
        f"{finished - started:.2f}s ({100 / (finished - started):.0f} runs/s end to end)"
    )

    assert len(set(run_ids)) == 100
    for run_id in run_ids:
        assert_gapless(await timeline(client, run_id))
    problems = _check_kafka_log(
        await read_all_events(stack.kafka_bootstrap, stack.topics.events), set(run_ids)
    )
    assert problems == {"missing": [], "seq": [], "dup_sent": [], "early": []}


async def test_runs_waiting_on_delays_complete_exactly_once_after_executor_and_scheduler_crash(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    body = message_journey(
        "crash-proof",
        {"type": "MESSAGE", "message": "before"},
        {"type": "DELAY", "duration_seconds": 4},
        {"type": "MESSAGE", "message": "after"},
    )
    journey_id = await create_journey(client, body)
    run_ids = await asyncio.gather(
        *(trigger(client, journey_id, {"id": f"crash-{i}"}) for i in range(50))
    )
    await asyncio.gather(*(wait_for_status(client, r, {"waiting_delay"}, 30) for r in run_ids))

    stack.supervisor.kill("executor", signal.SIGKILL)
    stack.supervisor.kill("scheduler", signal.SIGKILL)
    await asyncio.sleep(5)  # every delay comes due while both are down
    stack.supervisor.restart("executor")
    stack.supervisor.restart("scheduler")

    await asyncio.gather(*(wait_for_status(client, r, {"completed"}, 90) for r in run_ids))
    for run_id in run_ids:
        events = await timeline(client, run_id)
        assert_gapless(events)
        assert [e["type"] for e in events].count("journeys.message.sent.v1") == 2
    problems = _check_kafka_log(
        await read_all_events(stack.kafka_bootstrap, stack.topics.events), set(run_ids)
    )
    assert problems == {"missing": [], "seq": [], "dup_sent": [], "early": []}
