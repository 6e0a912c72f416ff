"""The executor's run table after many ended runs: what a fresh replica restores, and its RSS.

N one-message runs go straight onto the commands topic (in chunks, so N can be a million);
once all have ended and the executor has forgotten them (the grace window is short here), the
executor is restarted: a fresh process reads the changelog back. Its restore time is the sum
of its "run table restored" log lines; its RSS is taken once the table is in. Then the
changelog is compacted (its segments rolled and cleaned, as the topic's settings make happen
within hours in production) and a second fresh process restores again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from journeys_bench.harness import Deployment, Infra, deployment
from journeys_bench.load import ENDED, Watch, ce_type, producer, send, start_runs, wait_until
from journeys_bench.memory import MB
from journeys_runtime import kafka

log = logging.getLogger(__name__)

ONE_MESSAGE: dict[str, Any] = {
    "name": "bench: one message",
    "start_node_id": "hello",
    "nodes": [{"id": "hello", "type": "MESSAGE", "message": "Hello!", "next_node_id": None}],
}
CHUNK = 20_000
FORGOTTEN = "journeys_executor_runs_forgotten_total"
ROLL = b"bench:roll"  # a key no run has: its tombstones only roll segments


def forgetting(infra: Infra, runs: int, grace: float = 5.0) -> dict[str, Any]:
    env = {"EXECUTOR_ENDED_RUN_GRACE_SECONDS": str(grace)}
    with deployment(infra, "forgetting", {"executor": 1}, env) as dep:
        log.info("forgetting: %d runs, grace %.0f s", runs, grace)
        result = asyncio.run(_measure(dep, runs, grace))
        log.info("forgetting: %s", result)
        return result


async def _measure(dep: Deployment, runs: int, grace: float) -> dict[str, Any]:
    ended = 0

    def count(tp: TopicPartition, record: Any, now: float) -> None:
        nonlocal ended
        ended += ce_type(record) in ENDED

    journey_id = uuid.uuid4()
    started = time.monotonic()
    async with Watch(dep.kafka_bootstrap, dep.topics.events, dep.partitions, count), \
            producer(dep.kafka_bootstrap) as p:  # fmt: skip
        for first in range(0, runs, CHUNK):
            chunk = start_runs(min(CHUNK, runs - first), ONE_MESSAGE, first, journey_id)
            await asyncio.gather(*[await send(p, dep.topics.commands, r) for r in chunk])
        all_ended = await wait_until(lambda: ended >= runs, patience=max(600, runs / 50))
    run_seconds = time.monotonic() - started
    forgotten = await _wait_forgotten(dep, runs, grace)
    supervisor = dep.supervisors[0]
    running_rss = _rss(supervisor.pid("executor"))
    changelog = await _records(dep)
    restore = await _restart(dep)
    compacted = await _compact(dep)
    restore_compacted = await _restart(dep)
    return {
        "runs": runs,
        "grace_seconds": grace,
        "ended": ended,
        "all_ended": all_ended,
        "runs_per_s": round(runs / run_seconds, 1),
        "forgotten": forgotten,
        "rss_mb_after_forgetting": running_rss,
        "changelog_records": changelog,
        "restore": restore,
        "changelog_records_compacted": compacted,
        "restore_compacted": restore_compacted,
    }


def _metric(dep: Deployment, name: str) -> float:
    url = dep.supervisors[0].services["executor"].ready_url.replace("/ready", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own ops port
        text = answer.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def _wait_forgotten(dep: Deployment, runs: int, grace: float) -> int:
    """Until every run is forgotten, or the count stops moving for the window and a minute
    (an executor that never forgets, as before tombstones, reads 0)."""
    seen, moved = 0.0, time.monotonic()
    while seen < runs and time.monotonic() - moved < grace + 60:
        await asyncio.sleep(1)
        now = await asyncio.to_thread(_metric, dep, FORGOTTEN)
        if now > seen:
            seen, moved = now, time.monotonic()
    return int(seen)


def _rss(pid: int | None) -> float:
    return round(psutil.Process(pid).memory_info().rss / MB, 1) if pid else 0.0


def _restores(log_path: Path) -> list[dict[str, Any]]:
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    return [json.loads(line) for line in lines if '"run table restored"' in line]


async def _restart(dep: Deployment) -> dict[str, Any]:
    """A fresh executor process: how long its restore took, what it read back, its RSS."""
    supervisor = dep.supervisors[0]
    log_path = supervisor.services["executor"].log_path
    before = len(_restores(log_path))
    began = time.monotonic()
    await asyncio.to_thread(supervisor.restart, "executor", 600)

    def covered() -> bool:
        done = _restores(log_path)[before:]
        return len({p for r in done for p in r["partitions"]}) >= dep.partitions

    await wait_until(covered, patience=1800, poll=0.5)
    done = _restores(log_path)[before:]
    return {
        "seconds": round(sum(r["seconds"] for r in done), 2),
        "start_to_restored_seconds": round(time.monotonic() - began, 2),
        "runs": sum(r["runs"] for r in done),
        "journeys": sum(r.get("journeys", 0) for r in done),
        "rss_mb": _rss(supervisor.pid("executor")),
    }


async def _records(dep: Deployment) -> int:
    """How many records a restore reads: every record of the changelog, to its end (but the
    tombstones `_compact` writes to roll segments)."""
    reader = kafka.consumer(dep.kafka_bootstrap, None, max_poll_records=5000)
    await reader.start()
    try:
        tps = [TopicPartition(dep.topics.executor_runs, p) for p in range(dep.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        count, remaining = 0, [tp for tp in tps if ends[tp] > 0]
        while remaining:
            for records in (await reader.getmany(*remaining, timeout_ms=500)).values():
                count += sum(r.key != ROLL for r in records)
            remaining = [tp for tp in remaining if await reader.position(tp) < ends[tp]]
        return count
    finally:
        await reader.stop()


async def _compact(dep: Deployment, patience: float = 600) -> int:
    """Let the broker's cleaner do now what the topic's settings make it do within hours:
    short segments, no lag, tombstones kept a second; a tombstone of a key no run has rolls
    each partition's active segment. Returns the records left once the count settles."""
    topic = dep.topics.executor_runs
    fast = {"segment.ms": "1000", "max.compaction.lag.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000"}  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=dep.kafka_bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact",
                   "max.message.bytes": str(kafka.REQUEST_MAX_BYTES), **fast}  # fmt: skip
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)]
        )
    finally:
        await admin.close()
    last, settled_at, deadline = -1, time.monotonic(), time.monotonic() + patience
    async with producer(dep.kafka_bootstrap) as p:
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            for partition in range(dep.partitions):
                await p.send_and_wait(topic, None, key=ROLL, partition=partition)
            count = await _records(dep)
            if count != last:
                last, settled_at = count, time.monotonic()
            elif time.monotonic() - settled_at > 45:
                break
    return last
