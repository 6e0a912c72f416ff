"""The scheduler: delays injected as `delay.started` events, `timer.fired` commands watched.

Only the scheduler runs: the delays belong to no executor run, so what is measured is the
scheduler alone, from the moment a timer is due to the moment its FireTimer command is
readable on the commands topic (the bench's consumer clock; same machine, same clock).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition

from journeys_bench.harness import PATIENT_KEY_SECRET, Deployment, Infra, deployment
from journeys_bench.hist import Latencies
from journeys_bench.load import Record, Watch, ce_type, producer, send, wait_until
from journeys_bench.memory import RssSampler
from journeys_contracts.envelope import CloudEvent, event_id
from journeys_contracts.events import DelayStarted
from journeys_contracts.keys import patient_key

log = logging.getLogger(__name__)

FIRE_TIMER = "journeys.command.fire_timer.v1"
FAR_FUTURE = timedelta(days=30)


def delays(due: list[datetime]) -> list[Record]:
    """One `delay.started` per due time, each of its own run and patient."""
    now = datetime.now(UTC)
    journey_id = uuid.uuid4()
    records = []
    for i, due_at in enumerate(due):
        run_id, timer_id = uuid.uuid4(), uuid.uuid4()
        patient = f"bench-timer-{run_id.hex[:12]}-{i}"
        event = DelayStarted(
            run_id=run_id, journey_id=journey_id, patient_id=patient, seq=2, occurred_at=now,
            node_id="wait", timer_id=timer_id,
            duration_seconds=(due_at - now).total_seconds(), due_at=due_at,
        )  # fmt: skip
        ce = CloudEvent(event_id(run_id, 2), event.type, "/bench", str(run_id), now)
        key = patient_key(PATIENT_KEY_SECRET, patient).encode()
        records.append(Record(str(timer_id), key, event.to_json(), ce.headers()))
    return records


class Fired:
    """Each FireTimer of `expected` seen: how late it was readable, whether it fired early."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.lateness = Latencies()
        self.early = 0
        self.timers: set[str] = set()
        self.duplicates = 0

    def __call__(self, tp: TopicPartition, record: Any, now: float) -> None:
        if ce_type(record) != FIRE_TIMER:
            return
        seen_at = time.time()
        body = json.loads(record.value)
        if body["timerId"] not in self.expected:
            return
        if body["timerId"] in self.timers:
            self.duplicates += 1
            return
        self.timers.add(body["timerId"])
        due = datetime.fromisoformat(body["dueAt"]).timestamp()
        fired = datetime.fromisoformat(body["firedAt"]).timestamp()
        self.early += fired < due
        self.lateness.record(seen_at - due)

    def summary(self) -> dict[str, Any]:
        return {
            "expected": len(self.expected),
            "fired": len(self.timers),
            "missing": len(self.expected) - len(self.timers),
            "duplicates": self.duplicates,
            "early": self.early + self.lateness.negative,
            "lateness": self.lateness.summary(),
        }


async def _inject(p: AIOKafkaProducer, topic: str, records: list[Record]) -> float:
    started = time.monotonic()
    for chunk in range(0, len(records), 10_000):
        sends = [await send(p, topic, r) for r in records[chunk : chunk + 10_000]]
        await asyncio.gather(*sends)
    return time.monotonic() - started


async def _ingested(dep: Deployment, total: int, patience: float) -> float:
    """Seconds until the scheduler's stored offsets cover `total` events."""
    started = time.monotonic()
    query = "SELECT coalesce(sum(next_offset), 0) FROM scheduler_offsets WHERE topic = %s"
    async with await psycopg.AsyncConnection.connect(dep.database_url, autocommit=True) as conn:
        while time.monotonic() - started < patience:
            row = await (await conn.execute(query, (dep.topics.events,))).fetchone()
            if row is not None and row[0] >= total:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the scheduler did not store {total} events in {patience:.0f}s")


async def _near(dep: Deployment, p: AIOKafkaProducer, count: int, lead: float,
                spread: float) -> dict[str, Any]:  # fmt: skip
    """`count` timers due between `lead` and `lead + spread` seconds from now; waits for all."""
    start = datetime.now(UTC) + timedelta(seconds=lead)
    due = sorted(start + timedelta(seconds=random.uniform(0, spread)) for _ in range(count))
    records = delays(due)
    fired = Fired({r.id for r in records})
    async with Watch(dep.kafka_bootstrap, dep.topics.commands, dep.partitions, fired):
        injected = await _inject(p, dep.topics.events, records)
        if injected > lead:
            log.warning("injecting took %.1fs, longer than the %.0fs lead", injected, lead)
        await wait_until(lambda: len(fired.timers) >= count, lead + spread + 60)
        await asyncio.sleep(1)  # a duplicate would come right behind
    return fired.summary() | {"inject_seconds": round(injected, 1)}


async def punctuality(dep: Deployment, count: int, spread: float, lead: float) -> dict[str, Any]:
    with RssSampler(dep.pids()) as rss:
        async with producer(dep.kafka_bootstrap, linger_ms=20) as p:
            result = await _near(dep, p, count, lead, spread)
    return result | {"count": count, "window_seconds": spread, "rss": rss.summary()}


def timer_punctuality(infra: Infra, count: int, spread: float, lead: float) -> dict[str, Any]:
    with deployment(infra, "timers", {"scheduler": 1}) as dep:
        log.info("timer punctuality: %d timers due within %.0f s", count, spread)
        return asyncio.run(punctuality(dep, count, spread, lead))


async def scale(dep: Deployment, steps: tuple[int, ...], near: int) -> dict[str, Any]:
    """Pending far-future timers grown to each of `steps`; at each, `near` new timers due in
    the next seconds, their lateness, and the scheduler's memory."""
    results: dict[str, Any] = {}
    pending = 0
    produced = 0
    (pid,) = dep.pids().values()
    with RssSampler({"scheduler": pid}) as rss:
        async with producer(dep.kafka_bootstrap, linger_ms=20) as p:
            for target in steps:
                now = datetime.now(UTC)
                far = [now + FAR_FUTURE + timedelta(seconds=i) for i in range(target - pending)]
                log.info("timer scale: %d more pending timers", len(far))
                inject = await _inject(p, dep.topics.events, delays(far))
                produced += len(far)
                ingest = await _ingested(dep, produced, patience=1200)
                pending = target
                at_rest = rss.now("scheduler")
                fired = await _near(dep, p, near, lead=5, spread=10)
                produced += near
                results[str(target)] = fired | {
                    "pending": target,
                    "inject_seconds": round(inject, 1),
                    "ingest_seconds_after_inject": round(ingest, 1),
                    "scheduler_rss_mb": round(at_rest, 1),
                    "scheduler_peak_rss_mb": round(rss.peak.get("scheduler", 0), 1),
                }
                log.info("timer scale at %d pending: %s", target, results[str(target)])
    return {"steps": results, "rss": rss.summary()}


def timer_scale(infra: Infra, steps: tuple[int, ...], near: int) -> dict[str, Any]:
    with deployment(infra, "timer-scale", {"scheduler": 1}) as dep:
        return asyncio.run(scale(dep, steps, near))
