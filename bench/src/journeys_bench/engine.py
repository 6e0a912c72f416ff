"""The engine: runs injected straight onto the commands topic, completions read from events."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import psycopg
from aiokafka import TopicPartition

from journeys_bench.harness import Deployment, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import (
    COMPLETED,
    ENDED,
    Watch,
    ce_subject,
    ce_type,
    producer,
    send,
    start_runs,
    wait_until,
)
from journeys_bench.memory import RssSampler

log = logging.getLogger(__name__)


class Completions:
    """Counts ended runs (and events) seen on the events topic; notes when each run ended."""

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}
        self.completed = 0
        self.events = 0
        self.last_at = 0.0
        self.last_offsets: dict[int, int] = {}  # partition -> offset of its last event

    def __call__(self, tp: TopicPartition, record: Any, now: float) -> None:
        self.events += 1
        self.last_offsets[tp.partition] = record.offset
        kind = ce_type(record)
        if kind in ENDED:
            self.ended[ce_subject(record) or ""] = now
            self.completed += kind == COMPLETED
            self.last_at = now


async def throughput(dep: Deployment, runs: int, patience: float = 600) -> dict[str, Any]:
    """Inject `runs` five-step runs at once; time from the first send to the last completion."""
    records = start_runs(runs)
    done = Completions()
    with RssSampler(dep.pids()) as rss:
        async with Watch(dep.kafka_bootstrap, dep.topics.events, dep.partitions, done), \
                producer(dep.kafka_bootstrap) as p:  # fmt: skip
            started = time.monotonic()
            sends = [await send(p, dep.topics.commands, r) for r in records]
            await asyncio.gather(*sends)
            injected = time.monotonic() - started
            finished = await wait_until(lambda: len(done.ended) >= runs, patience)
    seconds = done.last_at - started
    return {
        "runs": runs,
        "ended": len(done.ended),
        "completed": done.completed,
        "finished": finished,
        "seconds": round(seconds, 2),
        "inject_seconds": round(injected, 2),
        "runs_per_s": round(len(done.ended) / seconds, 1),
        "events": done.events,
        "events_per_s": round(done.events / seconds, 1),
        "last_offsets": done.last_offsets,
        "rss": rss.summary(),
    }


def engine_throughput(infra: Infra, runs: int, replicas: tuple[int, ...]) -> dict[str, Any]:
    """The default deployment (one executor) first, then the same load on more replicas."""
    results: dict[str, Any] = {}
    for n in replicas:
        with deployment(infra, f"engine-{n}", {"executor": n}) as dep:
            log.info("engine throughput: %d runs, %d executor replica(s)", runs, n)
            results[str(n)] = asyncio.run(throughput(dep, runs))
            log.info("engine throughput, %d replica(s): %s", n, results[str(n)])
    return results


class ProjectionLag:
    """Per event: from the moment it is readable in Kafka (committed, seen by our consumer) to
    the moment the projector's committed offsets in PostgreSQL pass it, polled every `poll`."""

    def __init__(self, database_url: str, topic: str, poll: float = 0.02) -> None:
        self._url, self._topic, self._poll = database_url, topic, poll
        self._pending: dict[int, collections.deque[tuple[int, float]]] = {}
        self.lag = Latencies()

    def seen(self, tp: TopicPartition, record: Any, now: float) -> None:
        self._pending.setdefault(tp.partition, collections.deque()).append((record.offset, now))

    async def run(self) -> None:
        query = "SELECT partition, next_offset FROM projector_offsets WHERE topic = %s"
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
            while True:
                rows = await (await conn.execute(query, (self._topic,))).fetchall()
                now = time.monotonic()
                for partition, next_offset in rows:
                    queue = self._pending.get(partition)
                    while queue and queue[0][0] < next_offset:
                        _, at = queue.popleft()
                        self.lag.record(max(now - at, 0.0))
                await asyncio.sleep(self._poll)

    @property
    def unprojected(self) -> int:
        return sum(len(q) for q in self._pending.values())


async def steady(dep: Deployment, rate: int, seconds: float) -> dict[str, Any]:
    """`rate` runs per second for `seconds`; trigger-to-completed of each run, and the
    projector's lag behind the events those runs emit."""
    total = int(rate * seconds)
    records = start_runs(total)
    sent: dict[str, float] = {}
    done = Completions()
    lag = ProjectionLag(dep.database_url, dep.topics.events)

    def on_event(tp: TopicPartition, record: Any, now: float) -> None:
        done(tp, record, now)
        lag.seen(tp, record, now)

    tick = 0.01  # sends go out every 10 ms, those due by then
    with RssSampler(dep.pids()) as rss:
        async with Watch(dep.kafka_bootstrap, dep.topics.events, dep.partitions, on_event), \
                producer(dep.kafka_bootstrap, linger_ms=1) as p:  # fmt: skip
            poller = asyncio.create_task(lag.run())
            started = time.monotonic()
            i = 0
            while i < total:
                due = int((time.monotonic() - started) * rate) + 1
                while i < min(due, total):
                    record = records[i]
                    sent[record.id] = time.monotonic()
                    await send(p, dep.topics.commands, record)
                    i += 1
                await asyncio.sleep(tick)
            load_seconds = time.monotonic() - started
            await wait_until(lambda: len(done.ended) >= total, 60)
            await wait_until(lambda: lag.unprojected == 0, 30)
            poller.cancel()
    latency = Latencies()
    for run_id, at in sent.items():
        if run_id in done.ended:
            latency.record(done.ended[run_id] - at)
    return {
        "rate": rate,
        "seconds": round(load_seconds, 1),
        "runs": total,
        "completed": done.completed,
        "missing": total - len(done.ended),
        "achieved_runs_per_s": round(total / load_seconds, 1),
        "latency": latency.summary(),
        "projection_lag": lag.lag.summary(),
        "unprojected": lag.unprojected,
        "rss": rss.summary(),
    }


def engine_latency(infra: Infra, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """The target's rate first, then lower ones: where the engine keeps up, if it does not."""
    results = {}
    for rate in rates:
        with deployment(infra, f"latency-{rate}", {"projector": 1, "executor": 1}) as dep:
            log.info("engine latency: %d runs/s for %.0f s", rate, seconds)
            results[str(rate)] = asyncio.run(steady(dep, rate, seconds))
            log.info("engine latency at %d runs/s: %s", rate, results[str(rate)])
    return results
