"""The scheduler in-process: Kafka clients, the PostgreSQL pool, the two loops, ops HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from psycopg_pool import AsyncConnectionPool

from journeys_runtime.backoff import Backoff
from journeys_runtime.kafka import consumer, producer
from journeys_runtime.logs import describe_error
from journeys_runtime.ops import OpsServer
from journeys_runtime.topics import Topics, ensure_topics
from journeys_scheduler import migrations
from journeys_scheduler.clock import Alarm, Clock, Sleep, utc_now
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.firing import Firer
from journeys_scheduler.ingest import Ingest
from journeys_scheduler.publisher import KAFKA_ERRORS, FirePublisher
from journeys_scheduler.settings import SchedulerSettings
from journeys_scheduler.store import PG_ERRORS, TimerStore, configure_session
from journeys_scheduler.window import DueWindow

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 2.0
PG_PING_ERRORS: tuple[type[BaseException], ...] = (*PG_ERRORS, TimeoutError)


class Scheduler:
    """`await start()` returns once connected and consuming; `await stop()` shuts down."""

    def __init__(
        self, settings: SchedulerSettings, *, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.retention)
        self.window = DueWindow(settings.window, settings.window_max_entries)
        self._clock, self._sleep = clock, sleep
        self._health = Health()
        self._locks = Locks()
        self._alarm = Alarm(sleep)
        self._pool = AsyncConnectionPool(
            settings.database_url, min_size=1, max_size=settings.pool_max_size, open=False,
            kwargs={"autocommit": True}, configure=configure_session,
            check=AsyncConnectionPool.check_connection, timeout=5.0,
        )  # fmt: skip
        self._store = TimerStore(self._pool)
        self.ops = OpsServer(settings.ops_host, settings.ops_port, self.ready)
        self._producer: Any = None
        self._consumer: Any = None
        self._firer: Firer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.settings.group_id}"

    async def start(self) -> None:
        await self.ops.start()
        await self._pool.open(wait=False)  # connects in the background, retrying
        backoff = Backoff(self._sleep, initial=0.2)
        while True:
            try:
                await self._connect()
                break
            except (*KAFKA_ERRORS, *PG_ERRORS) as exc:
                log.warning(
                    "dependencies not reachable at start; retrying",
                    extra={"error": describe_error(exc)},
                )
                await self._close_clients()
                await backoff.wait()
        ingest = Ingest(
            consumer=self._consumer, producer=self._producer, store=self._store,
            window=self.window, alarm=self._alarm, topic=self.topics.events,
            sealed_topic=self.topics.sealed_events, dlq_topic=self.topics.dlq, locks=self._locks,
            health=self._health, clock=self._clock, sleep=self._sleep,
            catch_up=timedelta(seconds=self.settings.catch_up_seconds),
        )  # fmt: skip
        self._firer = Firer(
            window=self.window, alarm=self._alarm, store=self._store,
            publisher=FirePublisher(self._producer, self.topics.commands), clock=self._clock,
            sleep=self._sleep, locks=self._locks, health=self._health,
            batch_size=self.settings.fire_batch_size,
        )  # fmt: skip
        self._consumer.subscribe(
            [self.topics.events, self.topics.sealed_events], listener=ingest.listener()
        )
        self._tasks = [
            asyncio.create_task(ingest.run(), name="scheduler-ingest"),
            asyncio.create_task(self._firer.run(), name="scheduler-firer"),
        ]
        log.info("scheduler started", extra={"group": self.group_id})

    async def _connect(self) -> None:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers, self.topics, s.partitions, create=s.create_topics
        )
        if s.migrate_on_start:
            await asyncio.to_thread(migrations.apply, s.database_url)
        # linger 0: a fire should leave at once; a backlog still batches while acks are awaited.
        self._producer = producer(s.kafka_bootstrap_servers, linger_ms=0)
        await self._producer.start()
        # Range assignment gives each replica the same partition numbers of both events topics
        # (same count, same members), so it fires the timers of exactly the partitions it
        # reads. Round robin, listed second, is what a replica of the previous version speaks:
        # the group agrees on it during a rolling upgrade (a partition's timers may then be
        # fired by two replicas for a while; the executor rejects the second fire).
        self._consumer = consumer(
            s.kafka_bootstrap_servers, self.group_id,
            partition_assignment_strategy=(RangePartitionAssignor, RoundRobinPartitionAssignor),
        )  # fmt: skip
        await self._consumer.start()

    async def wait(self) -> None:
        """Return (raising what broke it) only if a loop ended: then the process should exit."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} failed") from task.exception()
        raise RuntimeError("a scheduler loop ended")

    async def stop(self) -> None:
        """Let the firing loop finish its batch, abort the batch being consumed, close all."""
        if self._stopped:
            return
        self._stopped = True
        if self._firer is not None:
            self._firer.stop()
        if self._tasks:
            firer_task, ingest_task = self._tasks[1], self._tasks[0]
            ingest_task.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait({firer_task}, timeout=STOP_GRACE_SECONDS)
            firer_task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        await self._close_clients()
        await self._pool.close()
        await self.ops.stop()
        log.info("scheduler stopped")

    async def _close_clients(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):  # closing a broken client must not mask
                    await client.stop()
        self._consumer = self._producer = None

    async def ready(self) -> dict[str, bool]:
        return {"kafka": await self._kafka_ready(), "postgres": await self._postgres_ready()}

    async def _kafka_ready(self) -> bool:
        running = self._tasks and not any(t.done() for t in self._tasks)
        if self._producer is None or not running or not self._health.kafka:
            return False
        try:
            await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), READY_TIMEOUT_SECONDS
            )
        except KAFKA_ERRORS:
            return False
        return True

    async def _postgres_ready(self) -> bool:
        if not self._health.postgres:
            return False
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await self._store.ping()
        except PG_PING_ERRORS:
            return False
        return True
