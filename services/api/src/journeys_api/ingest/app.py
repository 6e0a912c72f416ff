"""The ingest service: read other teams' topics, send each patient event as the API sends one.

At least once in, idempotent end to end. Offsets are committed only after Kafka has
acknowledged every command (and dead-letter record) made from the records before them. A
crash between the acknowledgement and the commit makes the next owner of the partition read
those records again and send the same commands again: the same patient key and event id, so
the same receipt id, which the executor takes once (its de-duplication window,
`EXECUTOR_EVENT_DEDUP_SECONDS`, is days; a redelivery comes within seconds). A record that
can never be an event goes to the dead-letter topic with the reason in its headers, and the
consumer goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from journeys_api import patient_events
from journeys_api.data_keys import PatientDataKeys
from journeys_api.errors import SealingFaultError, TooLargeError, UnavailableError
from journeys_api.events_body import InboundEvent
from journeys_api.ingest import records
from journeys_api.ingest.records import PoisonError
from journeys_api.ingest.settings import IngestSettings
from journeys_api.publisher import Publisher
from journeys_contracts.keys import patient_key
from journeys_runtime import kafka
from journeys_runtime.backoff import StoppedError, retrying
from journeys_runtime.crash import crash_point
from journeys_runtime.dlq import dlq_headers
from journeys_runtime.ops import OpsServer
from journeys_runtime.service import LoopService
from journeys_runtime.topics import Topics

log = logging.getLogger(__name__)

RECORDS = Counter(
    "journeys_ingest_records_total", "Records read from other teams' topics, by outcome",
    ["topic", "outcome"],
)  # fmt: skip
# Failures of our side, never of the record: retried until they pass or the service stops.
RETRIED = (UnavailableError, KafkaError, psycopg.Error, SealingFaultError, OSError, TimeoutError)
# A sender's header that may name the patient (CloudEvents' subject): never copied to the DLQ.
PATIENT_HEADERS = frozenset({"ce_subject"})

# How soon a source topic created after the start is read.
TOPIC_CHECK_MS = 30_000

Record: TypeAlias = ConsumerRecord[Any, Any]
Item: TypeAlias = tuple[TopicPartition, Record]


class _Sink:
    """What `patient_events.publish` needs, as the API's `Resources` has it."""

    def __init__(self, settings: IngestSettings, publisher: Publisher, topics: Topics,
                 data_keys: PatientDataKeys) -> None:  # fmt: skip
        self.settings, self.publisher, self.topics = settings, publisher, topics
        self.data_keys = data_keys
        self._secret = settings.patient_key_secret.get_secret_value()

    def patient_key(self, patient_id: str) -> str:
        return patient_key(self._secret, patient_id)


class _Assigned(ConsumerRebalanceListener):
    """Readiness: the group has been joined once (an assignment may be empty)."""

    def __init__(self) -> None:
        self.once = False

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.once = True


class Ingest(LoopService):
    """`start()`, then `stop()` (or `run_until_stopped()`); safe to kill at any point."""

    def __init__(self, settings: IngestSettings) -> None:
        super().__init__()
        s = self.settings = settings
        self.topics = Topics(s.topic_prefix, s.retention)
        self._sources = {source.topic: source for source in s.sources}
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            s.database_url, min_size=1, max_size=2, open=False, name="ingest",
            kwargs={"autocommit": True, "connect_timeout": 5},
        )  # fmt: skip
        self.publisher = Publisher(
            s.kafka_bootstrap_servers, self.topics, s.partitions,
            create_topics=s.create_topics, timeout=s.produce_timeout_seconds,
        )  # fmt: skip
        self._sink = _Sink(s, self.publisher, self.topics, PatientDataKeys(self.pool, s.keyring))
        self._dlq: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._listener = _Assigned()
        self.ops = OpsServer(s.ops_host, s.ops_port, self.ready)

    async def _start(self) -> None:
        s = self.settings
        await self.pool.open(wait=False)
        await self.publisher.start()
        self._dlq = kafka.producer(s.kafka_bootstrap_servers)
        await self._dlq.start()
        if self._sources:
            # A pattern, not the names: a topic that does not exist yet (another team's) is
            # joined once it does, instead of holding up the start, and never logged as an error.
            self._consumer = kafka.consumer(
                s.kafka_bootstrap_servers, s.consumer_group, max_poll_records=s.batch_max_records,
                metadata_max_age_ms=TOPIC_CHECK_MS,
            )  # fmt: skip
            pattern = "^(" + "|".join(re.escape(t) for t in sorted(self._sources)) + ")$"
            self._consumer.subscribe(pattern=pattern, listener=self._listener)
            await self._consumer.start()
        await self.ops.start()
        self._loop_task = asyncio.create_task(self._run(), name="ingest-loop")
        log.info("ingest started", extra={"group_id": s.consumer_group,
                                          "topics": sorted(self._sources)})  # fmt: skip

    async def _close(self) -> None:
        await self.ops.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        await self.publisher.stop()
        if self._dlq is not None:
            await self._dlq.stop()
        await self._sink.data_keys.let_go()
        await self.pool.close()
        log.info("ingest stopped")

    async def ready(self) -> dict[str, bool]:
        kafka_ok = await self.publisher.ready(2.0)
        if self._sources:
            kafka_ok = kafka_ok and self._listener.once
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            postgres = True
        except (psycopg.Error, TimeoutError):
            postgres = False
        return {"postgres": postgres, "kafka": kafka_ok, "ingesting": self.looping}

    async def _run(self) -> None:
        if self._consumer is None:  # nothing configured: idle until stopped
            await self._stopping.wait()
            return
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=self.settings.poll_timeout_ms,
                max_records=self.settings.batch_max_records,
            )
            if not batch:
                continue
            try:
                await self._handle(batch)
            except StoppedError:
                return
            crash_point("ingest.before_commit")
            await self._commit({tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})

    async def _handle(self, batch: dict[TopicPartition, list[Record]]) -> None:
        """Every record of `batch` sent on as a command or dead-lettered, each acknowledged."""
        poison: list[tuple[Item, PoisonError]] = []
        events: dict[str, list[tuple[Item, InboundEvent]]] = {}
        for tp, rs in batch.items():
            source = self._sources[tp.topic]
            for r in rs:
                try:
                    event = records.read(source, r.value, r.headers, r.timestamp)
                except PoisonError as exc:
                    poison.append(((tp, r), exc))
                    continue
                except Exception as exc:  # a record's oddity, whatever it is, never stops us
                    log.error("unexpected error reading a record",
                              extra={"error": type(exc).__name__, "topic": tp.topic})  # fmt: skip
                    poison.append(((tp, r), PoisonError("ingest.decode", type(exc).__name__)))
                    continue
                events.setdefault(tp.topic, []).append(((tp, r), event))
        if poison:
            await self._retrying("dead-lettering", lambda: self._dead_letter(poison))
        for topic, items in events.items():
            await self._retrying(
                "sending patient events", lambda t=topic, i=items: self._send(t, i)
            )

    async def _send(self, topic: str, items: list[tuple[Item, InboundEvent]]) -> None:
        """One topic's events in order, as one request to `POST /events` would send them; a
        record whose command cannot fit a Kafka record is dead-lettered alone."""
        source = f"topic:{topic}"
        received_at = datetime.now(UTC)
        accepted = patient_events.unique([e for _, e in items], self._sink.patient_key)
        too_large: list[tuple[Item, PoisonError]] = []
        try:
            await patient_events.publish(self._sink, accepted, received_at, source)
        except TooLargeError:
            for one in accepted:
                try:
                    await patient_events.publish(self._sink, [one], received_at, source)
                except TooLargeError as exc:
                    too_large.append((items[one.index][0], PoisonError("ingest.too_large",
                                                                       exc.detail)))  # fmt: skip
            await self._dead_letter(too_large)
        RECORDS.labels(topic, "sent").inc(len(items) - len(too_large))

    async def _dead_letter(self, poison: Sequence[tuple[Item, PoisonError]]) -> None:
        """Each record as it came (its value; its headers but any naming the patient; no key)
        with where it came from and why, all acknowledged before this returns."""
        assert self._dlq is not None
        deliveries = []
        for (tp, r), exc in poison:
            headers = dlq_headers(
                [(k, v) for k, v in r.headers if k.lower() not in PATIENT_HEADERS],
                topic=tp.topic, partition=tp.partition, offset=r.offset, stage=exc.stage,
                error=exc.reason,
            )  # fmt: skip
            deliveries.append(await self._dlq.send(self.topics.dlq, r.value, headers=headers))
            RECORDS.labels(tp.topic, "dead_lettered").inc()
        await asyncio.gather(*deliveries)

    async def _retrying(self, what: str, operation: Any) -> None:
        await retrying(
            operation, what=what, retry_on=RETRIED, stopping=self._stopping,
            max_delay=self.settings.retry_max_seconds,
        )  # fmt: skip

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """A failed commit (a rebalance took the partition) is no loss: the next owner reads
        the records again and sends what the executor then takes once."""
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": type(exc).__name__})
