"""The projector catching up on a full events topic: events read and written to PostgreSQL.

The engine throughput load fills a namespace's topics with the executor alone; then the
projector starts and the clock runs until its committed offsets (stored in PostgreSQL with
the rows) cover every event. Its lag under a steady load is measured with the engine
latency benchmark (`engine.ProjectionLag`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

from journeys_bench.engine import throughput
from journeys_bench.harness import Deployment, Infra, deployment
from journeys_bench.memory import RssSampler

log = logging.getLogger(__name__)


def _behind(dep: Deployment, last: dict[int, int]) -> int:
    """Events not yet projected, counted in offsets (which include transaction markers, so
    the count is a bound; zero means done)."""
    query = "SELECT partition, next_offset FROM projector_offsets WHERE topic = %s"
    with psycopg.connect(dep.database_url, autocommit=True) as conn:
        stored: dict[int, int] = dict(conn.execute(query, (dep.topics.events,)).fetchall())
    return sum(max(offset + 1 - stored.get(p, 0), 0) for p, offset in last.items())


def _count(dep: Deployment, table: str) -> int:
    with psycopg.connect(dep.database_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def projection(infra: Infra, runs: int, timeout: float = 600) -> dict[str, Any]:
    with deployment(infra, "projection", {"executor": 1}) as dep:
        log.info("projection: filling the topics with %d runs", runs)
        filled = asyncio.run(throughput(dep, runs))
        dep.stop("executor")
        events, last = filled["events"], filled["last_offsets"]
        log.info("projection: %d events to project", events)
        spawned = time.monotonic()
        dep.start({"projector": 1})
        first = None
        with RssSampler(dep.pids()) as rss:
            while behind := _behind(dep, last):
                now = time.monotonic()
                if first is None and behind < events:
                    first = (now, behind)
                if now - spawned > timeout:
                    break
                time.sleep(0.05)
            finished = time.monotonic()
        seconds = finished - spawned
        steady = first[1] / (finished - first[0]) if first and finished > first[0] else 0.0
        rows = _count(dep, "run_events")
        return {
            "events": events,
            "run_events_rows": rows,
            "unprojected": behind,
            "runs": filled["ended"],
            "seconds_from_start": round(seconds, 2),
            "events_per_s": round(rows / seconds, 1),
            "events_per_s_after_first_batch": round(steady, 1),
            "rss": rss.summary(),
        }
