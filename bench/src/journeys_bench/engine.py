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
    COMPLETED_SEALED,
    ENDED,
    ENDED_SEALED,
    Watch,
    ce_subject,
    ce_type,
    count_records,
    producer,
    send,
    start_runs,
    wait_until,
)
from journeys_bench.memory import RssSampler
from journeys_runtime.keyring import DEV_KEK_ID, DEV_KEKS, Keyring

log = logging.getLogger(__name__)

# How `engine-throughput` starts its runs, and the executor's EXECUTOR_EMIT_EVENTS_V1 for each:
# "off", StartRun v1 (unsealed runs, events on v1 only); "twins", StartRunSealed with the
# executor's default (sealed events on v2 and their clear twins on v1, in one transaction);
# "v2-only", StartRunSealed with the v1 twins turned off.
SEALINGS: dict[str, str | None] = {"off": None, "twins": "true", "v2-only": "false"}


class Completions:
    """Counts ended runs (and events) seen on the events topic; notes when each run ended.
    `completed` and `ended` are the event types that end a run on the topic read."""

    def __init__(
        self, completed: str = COMPLETED, ended: frozenset[str] | set[str] = ENDED
    ) -> None:
        self._completed, self._ended = completed, ended
        self.ended: dict[str, float] = {}
        self.completed = 0
        self.events = 0
        self.last_at = 0.0
        self.last_offsets: dict[int, int] = {}  # partition -> offset of its last event

    def __call__(self, tp: TopicPartition, record: Any, now: float) -> None:
        self.events += 1
        self.last_offsets[tp.partition] = record.offset
        kind = ce_type(record)
        if kind in self._ended:
            self.ended[ce_subject(record) or ""] = now
            self.completed += kind == self._completed
            self.last_at = now


async def throughput(
    dep: Deployment, runs: int, patience: float = 600, sealing: str = "off"
) -> dict[str, Any]:
    """Inject `runs` five-step runs at once; time from the first send to the last completion.

    Sealed runs are followed on the sealed events topic, where their completion is whether
    or not the executor also writes clear twins on v1 (same transaction, so equally soon).
    Once the clock has stopped, the other events topic is counted: what the executor wrote
    there (the twins, or nothing)."""
    sealed = SEALINGS[sealing] is not None
    keyring = Keyring.parse(DEV_KEKS, DEV_KEK_ID) if sealed else None
    records = start_runs(runs, keyring=keyring)
    watched, other = dep.topics.events, dep.topics.sealed_events
    done = Completions()
    if sealed:
        watched, other = other, watched
        done = Completions(COMPLETED_SEALED, ENDED_SEALED)
    with RssSampler(dep.pids()) as rss:
        async with Watch(dep.kafka_bootstrap, watched, dep.partitions, done), \
                producer(dep.kafka_bootstrap) as p:  # fmt: skip
            started = time.monotonic()
            sends = [await send(p, dep.topics.commands, r) for r in records]
            await asyncio.gather(*sends)
            injected = time.monotonic() - started
            finished = await wait_until(lambda: len(done.ended) >= runs, patience)
    seconds = done.last_at - started
    others = await count_records(dep.kafka_bootstrap, other, dep.partitions)
    by_topic = {"v1": others, "v2": done.events} if sealed else {"v1": done.events, "v2": others}
    return {
        "sealing": sealing,
        "runs": runs,
        "ended": len(done.ended),
        "completed": done.completed,
        "finished": finished,
        "seconds": round(seconds, 2),
        "inject_seconds": round(injected, 2),
        "runs_per_s": round(len(done.ended) / seconds, 1),
        "events": done.events,
        "events_per_s": round(done.events / seconds, 1),
        "event_records": by_topic,
        "event_records_per_s": round(sum(by_topic.values()) / seconds, 1),
        "last_offsets": done.last_offsets,
        "rss": rss.summary(),
    }


def engine_throughput(
    infra: Infra, runs: int, replicas: tuple[int, ...], sealing: str = "off"
) -> dict[str, Any]:
    """The default deployment (one executor) first, then the same load on more replicas."""
    emit_v1 = SEALINGS[sealing]
    env = {} if emit_v1 is None else {"EXECUTOR_EMIT_EVENTS_V1": emit_v1}
    results: dict[str, Any] = {}
    for n in replicas:
        with deployment(infra, f"engine-{n}", {"executor": n}, env) as dep:
            log.info("engine throughput: %d runs, %d executor replica(s), sealing %s",
                     runs, n, sealing)  # fmt: skip
            results[str(n)] = asyncio.run(throughput(dep, runs, sealing=sealing))
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
            # This round's runs only: the watch also sees runs an earlier round started here.
            await wait_until(lambda: len(done.ended.keys() & sent.keys()) >= total, 60)
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
        "missing": total - len(done.ended.keys() & sent.keys()),
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
