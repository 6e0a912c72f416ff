"""The executor service: consume commands, run them through the core, commit transactionally.

One consumer in the executor group reads the command topic (`read_committed`, no
auto-commit). Each assigned partition gets its own transactional producer (see
`partition.py`) and its run table, read back from the changelog after that producer has
fenced every earlier holder. Until then the partition stays paused: nothing is processed
against a state that might be stale.

Rebalances are eager: everything is revoked, then the new assignment arrives. A partition
that comes back to this replica keeps its table and producer when the group's committed
offset is still the one this replica committed last (nobody else committed in between);
otherwise it is taken over from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from functools import partial

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from journeys_contracts.keys import patient_key
from journeys_executor.core import EventPolicy
from journeys_executor.metrics import OWNED_PARTITIONS, TRANSACTIONS
from journeys_executor.partition import (
    BatchProcessor,
    Partition,
    discard,
    fenced_producer,
    transactional_id,
)
from journeys_executor.runs import restore
from journeys_executor.settings import ExecutorSettings
from journeys_executor.triggers import TriggerIndex
from journeys_executor.trimmer import commands_trimmer
from journeys_runtime import kafka
from journeys_runtime.backoff import Backoff
from journeys_runtime.keyring import DataKeys
from journeys_runtime.logs import log_unhandled
from journeys_runtime.ops import OpsServer
from journeys_runtime.service import LoopService
from journeys_runtime.topics import Topics, ensure_topics

log = logging.getLogger(__name__)

# A partition whose transactions or takeovers keep failing is retried after 0.1-0.5 s, then
# longer, up to 5 s, so a broker in trouble is not hammered; a committed transaction resets it.
RETRY_INITIAL_SECONDS, RETRY_JITTER_SECONDS, RETRY_MAX_SECONDS = 0.1, 0.4, 5.0
TRANSIENT = (KafkaError, TimeoutError, OSError)


class Executor(LoopService, ConsumerRebalanceListener):
    """`start()`, then `stop()` (or `run_until_stopped()`); safe to kill at any point."""

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__()
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.retention)
        self.group_id = f"{settings.topic_prefix}{settings.app_id}"
        self.patient_key_of = partial(patient_key, settings.patient_key_secret.get_secret_value())
        # One cache of unwrapped data keys for every partition: erasing a patient drops theirs.
        self.data_keys = DataKeys(settings.keyring, settings.data_key_cache_size)
        self.triggers = TriggerIndex(settings.kafka_bootstrap_servers, self.topics.definitions)
        policy = EventPolicy(
            dedup_seconds=settings.event_dedup_seconds, dedup_max=settings.event_dedup_max,
            keep_seconds=settings.events_kept_seconds, keep_max=settings.events_kept_max,
        )  # fmt: skip
        self.batches = BatchProcessor(
            self.topics, self.group_id, settings.step_timeout_seconds,
            ended_run_grace=settings.ended_run_grace_seconds, data_keys=self.data_keys,
            emit_events_v1=settings.emit_events_v1, triggers=self.triggers,
            event_policy=policy, trigger_wait_seconds=settings.trigger_wait_seconds,
            policy=settings.message_policy,
        )  # fmt: skip
        # Held while a batch runs and while partitions are taken over; the rebalance
        # callbacks take it too, so a partition is never revoked in the middle of a batch.
        self._lock = asyncio.Lock()
        self._owned: dict[TopicPartition, Partition] = {}
        self._parked: dict[TopicPartition, Partition] = {}
        self._pending: dict[TopicPartition, float] = {}  # assigned, not yet taken over: not before
        self._retries: dict[TopicPartition, Backoff] = {}
        self._assigned_once = False
        self._consumer: AIOKafkaConsumer | None = None
        self.ops = OpsServer(settings.ops_host, settings.ops_port, self.ready)
        self.trimmer = commands_trimmer(
            settings.kafka_bootstrap_servers, settings.commands_groups(self.group_id),
            settings.commands_trim_seconds, lambda: list(self._owned),
        )  # fmt: skip
        self._trim_task: asyncio.Task[None] | None = None
        self._triggers_task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        asyncio.get_running_loop().set_exception_handler(log_unhandled)
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers, self.topics, s.partitions, create=s.create_topics
        )
        self._consumer = kafka.consumer(
            s.kafka_bootstrap_servers, self.group_id,
            max_poll_records=s.batch_max_records,
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(max(0.5, s.session_timeout_seconds / 5) * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_seconds * 1000),
        )  # fmt: skip
        self._consumer.subscribe([self.topics.commands], listener=self)
        await self._consumer.start()
        self._triggers_task = asyncio.create_task(
            self.triggers.run(self._stopping), name="executor-triggers"
        )
        await self.ops.start()
        self._loop_task = asyncio.create_task(self._run(), name="executor-loop")
        if s.commands_trim_seconds > 0:
            self._trim_task = asyncio.create_task(
                self.trimmer.run(self._stopping), name="executor-trim"
            )
        log.info("executor started", extra={"group_id": self.group_id})

    async def _close(self) -> None:
        """An open transaction is aborted by whoever takes its partition next."""
        await self.ops.stop()
        for task in (self._trim_task, self._triggers_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        for part in [*self._owned.values(), *self._parked.values()]:
            await discard(part.producer)
        self._owned.clear()
        self._parked.clear()
        OWNED_PARTITIONS.set(0)
        log.info("executor stopped")

    async def ready(self) -> dict[str, bool]:
        """Assigned partitions (an assignment may be empty: more replicas than partitions),
        the loop running, and every assigned partition taken over: its run and patient table
        restored, its producer fenced in. A replica that has just joined is not ready while
        it still reads a large table, so a rolling update waits for it before it stops the
        replica it replaces."""
        return {
            "kafka": self._assigned_once,
            "processing": self.looping,
            "partitions": not self._pending,
        }

    # Rebalance listener: called by the consumer's coordinator, awaited before it goes on.

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            for tp in revoked:
                part = self._owned.pop(tp, None)
                if part is not None:
                    self._parked[tp] = part
                self._pending.pop(tp, None)
            # Another replica may erase these partitions' patients now: this one must not keep
            # their data keys until the cache happens to evict them.
            self.data_keys.clear()
            OWNED_PARTITIONS.set(len(self._owned))
        log.info("partitions revoked", extra={"partitions": _names(revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        async with self._lock:
            for tp in [tp for tp in self._parked if tp not in assigned]:
                await discard(self._parked.pop(tp).producer)
            for tp in assigned:
                if tp not in self._owned:
                    self._consumer.pause(tp)
                    self._pending[tp] = 0.0
            self._assigned_once = True
        log.info("partitions assigned", extra={"partitions": _names(assigned)})

    # The loop.

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            if self._pending:
                async with self._lock:
                    await self._take_over_due()
            batch = await self._consumer.getmany(timeout_ms=self.settings.poll_timeout_ms)
            async with self._lock:
                # Records of a partition not (or no longer) owned are dropped: taking it over
                # seeks to the committed offset, which fetches them again.
                work = [(self._owned[tp], rs) for tp, rs in batch.items() if tp in self._owned]
                # A partition without commands forgets its ended runs in a transaction of its own.
                work += [(part, []) for tp, part in self._owned.items()
                         if tp not in batch and self.batches.sweep_due(part)]  # fmt: skip
                await asyncio.gather(*(self._commit(part, records) for part, records in work))

    async def _commit(self, part: Partition, records: list[ConsumerRecord]) -> None:
        try:
            await self.batches.run(part, records)
        except ProducerFenced:
            # Another replica holds this partition's id now. If this replica is the zombie,
            # the coordinator revokes the partition soon; if not, it takes it back then.
            TRANSACTIONS.labels(outcome="fenced").inc()
            log.warning("fenced", extra={"partition": part.tp.partition})
            await self._demote(part, self.settings.session_timeout_seconds)
        except TRANSIENT as exc:
            TRANSACTIONS.labels(outcome="failed").inc()
            log.warning(
                "transaction failed; re-reading the partition",
                extra={"partition": part.tp.partition, "error": type(exc).__name__},
            )
            await self._demote(part, self._retry_delay(part.tp))
        else:
            TRANSACTIONS.labels(outcome="committed").inc()
            self._retries.pop(part.tp, None)

    def _retry_delay(self, tp: TopicPartition) -> float:
        if tp not in self._retries:
            self._retries[tp] = Backoff(
                initial=RETRY_INITIAL_SECONDS,
                maximum=RETRY_MAX_SECONDS,
                jitter=RETRY_JITTER_SECONDS,
            )
        return self._retries[tp].next_delay()

    async def _demote(self, part: Partition, delay: float) -> None:
        """Forget a partition's state after a failed transaction; take it over again later
        (if still assigned) from what was committed."""
        assert self._consumer is not None
        self._owned.pop(part.tp, None)
        OWNED_PARTITIONS.set(len(self._owned))
        await discard(part.producer)
        if part.tp in self._consumer.assignment():
            self._consumer.pause(part.tp)
            self._pending[part.tp] = time.monotonic() + delay

    async def _take_over_due(self) -> None:
        assert self._consumer is not None
        now = time.monotonic()
        due = [tp for tp, not_before in self._pending.items() if not_before <= now]
        fresh: list[TopicPartition] = []
        for tp in due:
            parked = self._parked.pop(tp, None)
            if parked is not None and await self._still_current(parked):
                self._consumer.seek(tp, parked.next_offset)
                self._own(parked)
            else:
                if parked is not None:
                    await discard(parked.producer)
                fresh.append(tp)
        if fresh:
            await self._take_over(fresh)

    async def _still_current(self, part: Partition) -> bool:
        """Nobody committed on this partition since this replica did."""
        assert self._consumer is not None
        try:
            return await self._consumer.committed(part.tp) == part.next_offset
        except TRANSIENT:
            return False

    async def _take_over(self, tps: list[TopicPartition]) -> None:
        """Fence earlier holders, read the run tables, seek to the committed offsets."""
        assert self._consumer is not None
        s = self.settings
        producers = {}
        try:
            for tp in tps:
                txn_id = transactional_id(self.group_id, tp)
                producers[tp] = await fenced_producer(
                    s.kafka_bootstrap_servers, txn_id, s.step_timeout_seconds
                )
            tables = await asyncio.wait_for(
                restore(s.kafka_bootstrap_servers, self.topics.executor_runs,
                        [tp.partition for tp in tps], self.patient_key_of, self.data_keys),
                s.restore_timeout_seconds,
            )  # fmt: skip
            committed = {tp: await self._consumer.committed(tp) for tp in tps}
        except TRANSIENT as exc:
            log.warning("taking partitions over failed; retrying",
                        extra={"partitions": _names(tps), "error": type(exc).__name__})  # fmt: skip
            for producer in producers.values():
                await discard(producer)
            for tp in tps:
                self._pending[tp] = time.monotonic() + self._retry_delay(tp)
            return
        for tp in tps:
            offset = committed[tp]
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
            self._own(Partition(tp, producers[tp], tables[tp.partition], offset or 0))
        log.info("partitions taken over", extra={"partitions": _names(tps)})

    def _own(self, part: Partition) -> None:
        assert self._consumer is not None
        self._pending.pop(part.tp, None)
        self._owned[part.tp] = part
        self._consumer.resume(part.tp)
        OWNED_PARTITIONS.set(len(self._owned))


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)
