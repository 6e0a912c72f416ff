"""What the console's health page shows: each service's readiness (its own `/ready`, at the ops
URLs `API_CONSOLE_SERVICES` names; of each pod where the name has one address per pod), how
far each reader of Kafka is behind, the timers waiting and those already due, and the dead
letters kept.

Lag is measured where each reader keeps its position: the executor and the delivery service
commit to Kafka consumer groups; the projector and the scheduler keep their offsets in
PostgreSQL beside their effects. Each figure that cannot be read says so (None) rather than
failing the page: the page is for when things are broken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from journeys_runtime.kafka import consumer
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
KAFKA_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Service:
    name: str
    state: str  # ready, not ready, unreachable
    detail: str


@dataclass(frozen=True)
class Lag:
    reader: str
    topic: str
    behind: int | None  # None: its position could not be read


@dataclass(frozen=True)
class Health:
    services: list[Service]
    lags: list[Lag]
    timers: tuple[int, int] | None  # (waiting, already due)
    dead_letters: int | None
    kafka: bool


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def addresses(host: str, port: int) -> list[str]:
    """Every address `host` names, IPv4 ones if it has any (a dual-stack name lists each
    replica twice): a headless Service names each of its pods."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = [str(info[4][0]) for info in found if info[0] == socket.AF_INET]
    v6 = [str(info[4][0]) for info in found if info[0] == socket.AF_INET6]
    return list(dict.fromkeys(v4 or v6))


async def readiness(services: dict[str, str], resolve: Resolver = addresses) -> list[Service]:
    """Each service's `/ready`, asked of every address its URL's host names: a name with
    several (a headless Service: one per pod, ready or not) is ready when all of them are."""
    async with httpx.AsyncClient(timeout=READY_TIMEOUT_SECONDS) as client:

        async def one(name: str, url: str) -> Service:
            base = httpx.URL(url.rstrip("/") + "/ready")
            try:
                found = await resolve(base.host, base.port or 80)
            except socket.gaierror:  # a headless Service with no pod has no address
                return Service(name, "unreachable", "no address: no pod runs, or a wrong name")
            except OSError as exc:
                return Service(name, "unreachable", type(exc).__name__)
            if len(found) <= 1:
                return Service(name, *await _ready(client, base))
            answers = await asyncio.gather(*(_ready(client, base.copy_with(host=a)) for a in found))
            ready = sum(state == "ready" for state, _ in answers)
            detail = f"{ready} of {len(found)} ready"
            trouble = [f"{a}: {state}" + (f" ({why})" if why else "")
                       for a, (state, why) in zip(found, answers, strict=True)
                       if state != "ready"]  # fmt: skip
            return Service(name, "ready" if ready == len(found) else "not ready",
                           "; ".join([detail, *trouble]))  # fmt: skip

        return list(await asyncio.gather(*(one(n, u) for n, u in sorted(services.items()))))


async def _ready(client: httpx.AsyncClient, url: httpx.URL) -> tuple[str, str]:
    try:
        answer = await client.get(url)
    except httpx.HTTPError as exc:
        return "unreachable", type(exc).__name__
    if answer.status_code == 200:
        return "ready", ""
    return "not ready", _checks(answer)


def _checks(answer: httpx.Response) -> str:
    """The failing checks a /ready answer names (`{"kafka": false, ...}`), else its status."""
    with contextlib.suppress(ValueError):
        body = answer.json()
        checks = body.get("checks", body) if isinstance(body, dict) else {}
        failing = sorted(k for k, v in checks.items() if v is False)
        if failing:
            return "failing: " + ", ".join(failing)
    return f"HTTP {answer.status_code}"


async def _stored(pool: AsyncConnectionPool[Any], table: str) -> dict[tuple[str, int], int] | None:
    """The offsets a reader keeps in PostgreSQL (`projector_offsets`, `scheduler_offsets`)."""
    try:
        async with pool.connection() as conn:
            query = sql.SQL("SELECT topic, partition, next_offset FROM {}").format(
                sql.Identifier(table)
            )
            rows = await (await conn.execute(query)).fetchall()
    except psycopg.Error:
        return None
    return {(topic, partition): offset for topic, partition, offset in rows}


async def _timers(pool: AsyncConnectionPool[Any]) -> tuple[int, int] | None:
    try:
        async with pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE due_at <= now()) FROM scheduler_timers"
                )
            ).fetchone()
    except psycopg.Error:
        return None
    return (row[0], row[1]) if row is not None else None


def _behind(ends: dict[TopicPartition, int], topic: str, at: dict[tuple[str, int], int]) -> int:
    return sum(max(0, end - at.get((tp.topic, tp.partition), 0))
               for tp, end in ends.items() if tp.topic == topic)  # fmt: skip


async def measure(
    bootstrap: str, topics: Topics, pool: AsyncConnectionPool[Any], services: dict[str, str]
) -> Health:
    ready_task = asyncio.ensure_future(readiness(services))
    projector = await _stored(pool, "projector_offsets")
    scheduler = await _stored(pool, "scheduler_offsets")
    timers = await _timers(pool)
    groups = {"executor": (f"{topics.prefix}journeys-executor", topics.commands),
              "delivery": (f"{topics.prefix}journeys-delivery", topics.deliveries)}  # fmt: skip
    lags: list[Lag] = []
    dead: int | None = None
    kafka = True
    try:
        async with asyncio.timeout(KAFKA_TIMEOUT_SECONDS):
            ends, starts, committed = await _kafka(bootstrap, topics, groups)
        for reader, (_, topic) in groups.items():
            lags.append(Lag(reader, topic, _behind(ends, topic, committed[reader])))
        for reader, stored, read in (
            ("projector", projector, (topics.definitions, topics.commands, topics.events)),
            ("scheduler", scheduler, (topics.events,)),
        ):
            for topic in read:
                lags.append(Lag(reader, topic, None if stored is None
                                else _behind(ends, topic, stored)))  # fmt: skip
        dead = sum(end - starts.get(tp, 0) for tp, end in ends.items() if tp.topic == topics.dlq)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("health: Kafka out of reach", extra={"error": type(exc).__name__})
        kafka = False
    return Health(await ready_task, lags, timers, dead, kafka)


async def _kafka(
    bootstrap: str, topics: Topics, groups: dict[str, tuple[str, str]]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int], dict[str, dict[Any, int]]]:
    names = [topics.definitions, topics.commands, topics.events, topics.deliveries, topics.dlq]
    reader = consumer(bootstrap, None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        await admin.start()
        await reader.topics()  # the metadata of every topic, not only subscribed ones
        partitions = [TopicPartition(t, p) for t in names
                      for p in sorted(reader.partitions_for_topic(t) or ())]  # fmt: skip
        ends = await reader.end_offsets(partitions)
        starts = await reader.beginning_offsets(partitions)
        committed: dict[str, dict[Any, int]] = {}
        for name, (group, topic) in groups.items():
            mine = [tp for tp in partitions if tp.topic == topic]
            found = await admin.list_consumer_group_offsets(group, partitions=mine)
            committed[name] = {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()
                               if meta is not None and meta.offset >= 0}  # fmt: skip
        return ends, starts, committed
    finally:
        await reader.stop()
        await admin.close()
