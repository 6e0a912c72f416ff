"""A steady load of triggers over a mix of journeys, recording every accepted run."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

JOURNEYS: dict[str, dict[str, Any]] = {
    "branch": {
        "name": "faults: branch",
        "start_node_id": "hello",
        "nodes": [
            {"id": "hello", "type": "MESSAGE", "message": "hello", "next_node_id": "age"},
            {"id": "age", "type": "CONDITIONAL",
             "condition": {"field": "age", "operator": ">=", "value": 50},
             "on_true_next_node_id": "senior", "on_false_next_node_id": None},
            {"id": "senior", "type": "MESSAGE", "message": "senior care", "next_node_id": None},
        ],
    },
    "delays": {
        "name": "faults: delays",
        "start_node_id": "first",
        "nodes": [
            {"id": "first", "type": "MESSAGE", "message": "first", "next_node_id": "wait1"},
            {"id": "wait1", "type": "DELAY", "duration_seconds": 1, "next_node_id": "mid"},
            {"id": "mid", "type": "MESSAGE", "message": "mid", "next_node_id": "wait2"},
            {"id": "wait2", "type": "DELAY", "duration_seconds": 3, "next_node_id": "last"},
            {"id": "last", "type": "MESSAGE", "message": "last", "next_node_id": None},
        ],
    },
    "long": {
        "name": "faults: long delay",
        "start_node_id": "wait",
        "nodes": [
            {"id": "wait", "type": "DELAY", "duration_seconds": 5, "next_node_id": "done"},
            {"id": "done", "type": "MESSAGE", "message": "done", "next_node_id": None},
        ],
    },
}  # fmt: skip


@dataclass
class Accepted:
    run_id: str
    journey: str
    at: float
    cancel_requested: bool = False


@dataclass
class LoadResult:
    accepted: dict[str, Accepted] = field(default_factory=dict)
    unanswered: int = 0  # requests that never got an answer (retried with the same key)
    unanswered_kinds: dict[str, int] = field(default_factory=dict)  # httpx error -> count
    rejected: dict[int, int] = field(default_factory=dict)  # status -> count, non-202
    errors: dict[str, int] = field(default_factory=dict)  # exception type -> count
    attempted: int = 0
    bad_answers: int = 0  # a 5xx other than 503, or a 503 without Retry-After: never allowed
    loop_lag_max: float = 0.0  # seconds this process's event loop fell behind, at worst


async def create_journeys(client: httpx.AsyncClient) -> dict[str, str]:
    ids = {}
    for name, body in JOURNEYS.items():
        response = await client.post("/journeys", json=body)
        response.raise_for_status()
        ids[name] = response.json()["journeyId"]
    return ids


async def _trigger(
    client: httpx.AsyncClient, journey_id: str, context: dict[str, Any], result: LoadResult
) -> str | None:
    """Retry on no answer or 503 with the same Idempotency-Key: at most one run per key."""
    key = str(uuid.uuid4())
    for _ in range(20):
        try:
            response = await client.post(f"/journeys/{journey_id}/trigger", json=context,
                                         headers={"Idempotency-Key": key})  # fmt: skip
        except httpx.HTTPError as exc:
            result.unanswered += 1
            kind = type(exc).__name__
            result.unanswered_kinds[kind] = result.unanswered_kinds.get(kind, 0) + 1
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 202:
            return str(response.json()["runId"])
        result.rejected[response.status_code] = result.rejected.get(response.status_code, 0) + 1
        if response.status_code >= 500 and not (
            response.status_code == 503 and "Retry-After" in response.headers
        ):
            result.bad_answers += 1
        if response.status_code != 503:
            return None
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return None


async def _cancel_later(client: httpx.AsyncClient, accepted: Accepted, delay: float) -> None:
    await asyncio.sleep(delay)
    accepted.cancel_requested = True  # sent: it may apply even if no answer comes back
    with contextlib.suppress(httpx.HTTPError):  # unanswered: applied or not, both are fine
        await client.post(f"/journeys/runs/{accepted.run_id}/cancel")


async def run_load(
    api_url: str, api_key: str, rate: float, seconds: float, cancel_fraction: float = 0.1,
    seed: int = 7,
) -> LoadResult:  # fmt: skip
    """`rate` triggers per second for `seconds`; some delayed runs are cancelled mid-way."""
    rng = random.Random(seed)
    result = LoadResult()
    # More connections than the API takes requests at once (API_MAX_IN_FLIGHT, 128): past
    # that, the API sheds with 503 and Retry-After, as it would for many callers, instead of
    # requests queueing in this one client's pool.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=api_url, timeout=15, limits=limits,
                                 headers={"X-API-Key": api_key}) as client:  # fmt: skip
        journey_ids = await create_journeys(client)
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            try:
                await attempt(i)
            except Exception as exc:  # counted and reported: a load that loses requests lies
                kind = type(exc).__name__
                result.errors[kind] = result.errors.get(kind, 0) + 1

        async def attempt(i: int) -> None:
            result.attempted += 1
            name = rng.choice(list(JOURNEYS))
            context = {"id": f"fault-patient-{i % 500}", "age": rng.randint(20, 90)}
            run_id = await _trigger(client, journey_ids[name], context, result)
            if run_id is None:
                return
            accepted = Accepted(run_id, name, time.monotonic())
            result.accepted[run_id] = accepted
            if name != "branch" and rng.random() < cancel_fraction:
                await _cancel_later(client, accepted, rng.uniform(0.2, 2.5))

        lag = asyncio.create_task(_watch_loop_lag(result))
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
        lag.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag
    return result


async def _watch_loop_lag(result: LoadResult, every: float = 0.1) -> None:
    """How late a timer fires here: when this loop is behind, what the load measures (its
    rate, how long an answer took) is the generator's, not the API's."""
    while True:
        due = time.monotonic() + every
        await asyncio.sleep(every)
        result.loop_lag_max = max(result.loop_lag_max, time.monotonic() - due)
