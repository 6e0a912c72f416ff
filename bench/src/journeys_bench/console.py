"""`console`: the operator console under the two loads its users bring.

Paging: `runs` runs of one journey in the read model (written straight into it, as the
projector would), then `GET /console/runs?journey=...` signed in: the first page, and a page
`deep` pages in (following the cursors), each asked `asks` times one after another; the time
is the client's, which includes the server's.

Viewers: the engine's trigger-to-end latency (runs injected onto the commands topic at
`rate` runs/s for `seconds`, as `engine-latency` does; after a warm-up round of half that)
with no console open, then with `viewers` live timelines open on the API (Server-Sent Events,
each on a run of its own, so each has a watcher polling the read model), then with none
again; the p99 with viewers against the mean of the two without.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from journeys_bench.engine import steady
from journeys_bench.harness import PATIENT_KEY_SECRET, Deployment, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import FIVE_STEP
from journeys_contracts.keys import patient_key

log = logging.getLogger(__name__)


def console(
    infra: Infra, runs: int, deep: int, asks: int, viewers: int, rate: int, seconds: float
) -> dict[str, Any]:
    services = {"projector": 1, "executor": 1, "api": 1}
    with deployment(infra, "console", services) as dep:
        journey_id, waiting = _runs(dep.database_url, runs)
        result: dict[str, Any] = {"runs": runs}
        result["paging"] = asyncio.run(_paging(dep, journey_id, deep, asks))
        result["viewers"] = asyncio.run(_viewers(dep, waiting, viewers, rate, seconds))
    log.info("console: %s", result)
    return result


def _runs(database_url: str, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A journey and `count` of its runs in the read model (one in five still waiting); the
    ids of the waiting ones, for the live timelines to watch."""
    journey_id = uuid.uuid4()
    definition = {**FIVE_STEP, "name": "Console bench"}
    start = datetime.now(UTC) - timedelta(days=1)
    rows = []
    for i in range(count):
        at = start + timedelta(milliseconds=10 * i)
        status = "waiting_delay" if i % 5 == 0 else "completed"
        patient = f"bench-console-{i}"
        rows.append((uuid.uuid4(), journey_id, patient, patient_key(PATIENT_KEY_SECRET, patient),
                     status, "{}", at, at))  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO journeys (journey_id, name, definition, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (journey_id, definition["name"], json.dumps(definition), start),
        )
        with conn.cursor() as cur, cur.copy(
            "COPY runs (run_id, journey_id, patient_id, patient_key, status, patient_context, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:  # fmt: skip
            for row in rows:
                copy.write_row(row)
    return journey_id, [row[0] for row in rows if row[4] == "waiting_delay"]


@contextlib.asynccontextmanager
async def _signed_in(dep: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dep.api_url, timeout=30,
                                 limits=httpx.Limits(max_connections=1000)) as client:  # fmt: skip
        answer = await client.post("/console/sign-in", data={"api_key": dep.stack.api_key})
        if answer.status_code != 303:
            raise RuntimeError(f"console sign-in refused: {answer.status_code}")
        # The cookie is Secure, and httpx keeps Secure cookies off plain http (browsers make
        # an exception for 127.0.0.1): sent by hand, as the browser would.
        cookie = answer.headers["set-cookie"].split(";", 1)[0]
        client.cookies.clear()
        client.headers["Cookie"] = cookie
        yield client


async def _paging(dep: Deployment, journey_id: uuid.UUID, deep: int, asks: int) -> dict[str, Any]:
    async with _signed_in(dep) as client:
        first = f"/console/runs?journey={journey_id}"
        url = first
        for _ in range(deep):  # follow the "Next page" links down
            answer = await client.get(url)
            answer.raise_for_status()
            page = answer.text
            marker = 'rel="next" href="'
            url = page[page.index(marker) + len(marker) :].split('"', 1)[0].replace("&amp;", "&")
        results = {}
        for name, target in (("first_page", first), (f"page_{deep + 1}", url)):
            latency = Latencies()
            for _ in range(asks):
                began = time.monotonic()
                answer = await client.get(target)
                answer.raise_for_status()
                latency.record(time.monotonic() - began)
            results[name] = latency.summary()
    return results


async def _viewers(
    dep: Deployment, waiting: list[uuid.UUID], viewers: int, rate: int, seconds: float
) -> dict[str, Any]:
    """Each viewer on a run of its own (as many as there are waiting runs): no two pages
    share a watcher, the API's most expensive case."""
    await steady(dep, rate, seconds / 2)  # a warm-up round: the first one's tail is the start's
    before = await steady(dep, rate, seconds)
    opened = 0
    stop, all_open = asyncio.Event(), asyncio.Event()
    async with _signed_in(dep) as client:

        async def watch(run_id: uuid.UUID) -> None:
            nonlocal opened
            async with client.stream("GET", f"/console/runs/{run_id}/stream") as answer:
                answer.raise_for_status()
                opened += 1
                if opened == viewers:
                    all_open.set()
                async for _ in answer.aiter_lines():
                    if stop.is_set():
                        return

        tasks = [asyncio.create_task(watch(waiting[i % len(waiting)])) for i in range(viewers)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.wait(), timeout=30)
        during = await steady(dep, rate, seconds)
        stop.set()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await asyncio.gather(*tasks, return_exceptions=True)
    after = await steady(dep, rate, seconds)
    baseline = (before["latency"]["p99_ms"] + after["latency"]["p99_ms"]) / 2
    return {
        "viewers": viewers, "opened": opened, "rate": rate, "seconds": seconds,
        "p99_ms_without": [before["latency"]["p99_ms"], after["latency"]["p99_ms"]],
        "p99_ms_with": during["latency"]["p99_ms"],
        "p50_ms_without": [before["latency"]["p50_ms"], after["latency"]["p50_ms"]],
        "p50_ms_with": during["latency"]["p50_ms"],
        "increase": round(during["latency"]["p99_ms"] / baseline - 1, 3) if baseline else None,
        "missing": before["missing"] + during["missing"] + after["missing"],
        "rss": during["rss"],
    }  # fmt: skip
