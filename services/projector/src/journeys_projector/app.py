"""The projector service: consume definitions, commands and events (v1 and sealed v2) and the
audit trail; project them exactly once."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from journeys_projector.batch import BatchProjector
from journeys_projector.decode import Source
from journeys_projector.rebalance import SeekToStoredOffsets
from journeys_projector.settings import ProjectorSettings
from journeys_runtime import kafka
from journeys_runtime.backoff import StoppedError
from journeys_runtime.ops import OpsServer
from journeys_runtime.service import LoopService
from journeys_runtime.topics import Topics, ensure_topics

log = logging.getLogger(__name__)


class Projector(LoopService):
    """`start()`, then `stop()` (or `run_until_stopped()`); safe to kill at any point."""

    def __init__(self, settings: ProjectorSettings) -> None:
        super().__init__()
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.retention)
        self._sources = {
            self.topics.definitions: Source.DEFINITIONS,
            self.topics.commands: Source.COMMANDS,
            self.topics.events: Source.EVENTS,
            self.topics.sealed_events: Source.SEALED_EVENTS,
            self.topics.audit: Source.AUDIT,
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._listener: SeekToStoredOffsets | None = None
        self._batches: BatchProjector | None = None
        self.ops = OpsServer(settings.ops_host, settings.ops_port, self.ready)

    async def _start(self) -> None:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers, self.topics, s.partitions, create=s.create_topics
        )
        self._producer = kafka.producer(s.kafka_bootstrap_servers)
        await self._producer.start()
        self._batches = BatchProjector(
            s.database_url, self._producer, self._sources, self.topics.dlq,
            self._stopping, s.retry_max_seconds, s.patient_key_secret.get_secret_value(),
        )  # fmt: skip
        self._consumer = kafka.consumer(s.kafka_bootstrap_servers, s.consumer_group)
        self._listener = SeekToStoredOffsets(self._consumer, self._batches.stored_offsets)
        self._consumer.subscribe(list(self._sources), listener=self._listener)
        await self._consumer.start()
        await self.ops.start()
        self._loop_task = asyncio.create_task(self._run(), name="projector-loop")
        log.info("projector started", extra={"group_id": s.consumer_group})

    async def _close(self) -> None:
        await self.ops.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._batches is not None:
            await self._batches.close()
        log.info("projector stopped")

    async def ready(self) -> dict[str, bool]:
        postgres = self._batches is not None and await self._batches.ping()
        # An assignment may be empty (more replicas than partitions) and still be healthy.
        kafka_ok = self._listener is not None and self._listener.assigned_once
        return {"postgres": postgres, "kafka": kafka_ok, "projecting": self.looping}

    async def _run(self) -> None:
        assert self._consumer is not None
        assert self._batches is not None
        assert self._listener is not None
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            # Records of a partition not yet sought to its stored offset may come from
            # anywhere; dropping them is safe because the seek fetches them again.
            batch = {tp: rs for tp, rs in batch.items() if tp in self._listener.positioned}
            if not batch:
                continue
            try:
                offsets = await self._batches.project(batch)
            except StoppedError:
                return
            await self._commit_to_kafka(offsets)

    async def _commit_to_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        """For lag tools only: the offsets that count were stored with the rows."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        mine = {tp: nxt for tp, nxt in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
        except KafkaError as exc:
            log.info("informational offset commit failed", extra={"error": type(exc).__name__})
