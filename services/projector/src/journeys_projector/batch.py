"""One consumed batch in, one PostgreSQL transaction out: rows, offsets and a NOTIFY together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

import psycopg
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from journeys_contracts.events import EventBase, UnknownEvent
from journeys_contracts.events_sealed import SealedEventBase
from journeys_projector import metrics, store
from journeys_projector.decode import (
    Decoded,
    Fact,
    Poison,
    Skipped,
    Source,
    Unknown,
    UnknownSealedEvent,
    decode,
)
from journeys_projector.plan import Plan, plan
from journeys_runtime.backoff import retrying
from journeys_runtime.crash import crash_point
from journeys_runtime.dlq import DATA_KEY_FIELD, STRIPPED_HEADER, dlq_headers, without_data_key
from journeys_runtime.logs import describe_error

log = logging.getLogger(__name__)

T = TypeVar("T")
Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
Item = tuple[TopicPartition, ConsumerRecord[Any, Any], Decoded]

TRANSACTION_TIMEOUT = 60.0  # a connection that hangs longer is dropped and the batch retried
# Errors that follow a record rather than the database: retrying cannot help, isolating can.
RECORD_ERRORS = (psycopg.DataError,)


class BatchProjector:
    """Projects batches exactly once; a failing PostgreSQL is retried, never skipped."""

    def __init__(
        self,
        database_url: str,
        producer: AIOKafkaProducer,
        sources: Mapping[str, Source],
        dlq_topic: str,
        stopping: asyncio.Event,
        max_delay: float,
        patient_key_secret: str,
    ) -> None:
        self._url, self._producer, self._sources = database_url, producer, sources
        self._dlq, self._stopping, self._max_delay = dlq_topic, stopping, max_delay
        self._secret = patient_key_secret
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # The rebalance listener loads offsets while a batch may be in flight: one at a time.
        self._conn_lock = asyncio.Lock()
        self._skipped_types: set[str] = set()

    async def project(self, batch: Batch) -> dict[TopicPartition, int]:
        """Project `batch`; return the next offset of each of its partitions, now stored."""
        started = time.perf_counter()
        items: list[Item] = [
            (tp, r, decode(self._sources[tp.topic], r.value, r.offset))
            for tp, rs in batch.items()
            for r in rs
        ]
        # Sent before the commit: a crash in between sends a poison record twice, never zero times.
        await self._dead_letter([(tp, r, d) for tp, r, d in items if isinstance(d, Poison)])
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
        try:
            await self._write(self._plan([d for _, _, d in items if _is_fact(d)]), offsets)
            crash_point("projector.after_commit")
            refused: set[tuple[TopicPartition, int]] = set()
        except RECORD_ERRORS:
            refused = await self._one_by_one(items)
        self._observe(items, refused, time.perf_counter() - started)
        return offsets

    async def stored_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async def load(conn: psycopg.AsyncConnection[Any]) -> dict[TopicPartition, int]:
            found = await store.stored_offsets(conn, partitions)
            return {TopicPartition(t, p): nxt for (t, p), nxt in found.items()}

        return await self._retrying("loading stored offsets", lambda: self._transaction(load))

    async def ping(self) -> bool:
        """Can PostgreSQL answer right now? On a connection of its own, never the batch's."""
        try:
            async with asyncio.timeout(3):
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=2
                )
                async with conn:
                    await conn.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _one_by_one(self, items: list[Item]) -> set[tuple[TopicPartition, int]]:
        """A batch PostgreSQL refused for its data: find the records to blame, dead-letter them."""
        refused: set[tuple[TopicPartition, int]] = set()
        for tp, record, decoded in items:
            single = self._plan([decoded] if _is_fact(decoded) else [])
            offsets = {tp: record.offset + 1}
            try:
                await self._write(single, offsets)
            except RECORD_ERRORS as exc:
                await self._dead_letter(
                    [(tp, record, Poison("projector.store", describe_error(exc)))]
                )
                await self._write(Plan(self._secret), offsets)
                refused.add((tp, record.offset))
        return refused

    def _plan(self, facts: list[Fact]) -> Plan:
        return plan(facts, self._secret)

    async def _write(self, rows: Plan, offsets: Mapping[TopicPartition, int]) -> None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await store.write(conn, rows, offsets)
            crash_point("projector.before_commit")

        await self._retrying("projecting a batch", lambda: self._transaction(work))

    async def _transaction(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            async with self._conn_lock, asyncio.timeout(TRANSACTION_TIMEOUT):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._url, autocommit=True, connect_timeout=5
                    )
                async with self._conn.transaction():
                    result = await work(self._conn)
        except RECORD_ERRORS:
            raise  # rolled back; the connection is still good
        except BaseException:
            await self.close()  # the next attempt starts from a fresh connection
            raise
        metrics.STORE_UP.set(1)
        return result

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        def failed(_: BaseException) -> None:
            metrics.STORE_UP.set(0)
            metrics.STORE_RETRIES.inc()

        return await retrying(
            operation, what=what, retry_on=(psycopg.Error, OSError, TimeoutError),
            fatal=RECORD_ERRORS, stopping=self._stopping, max_delay=self._max_delay,
            on_failure=failed,
        )  # fmt: skip

    async def _dead_letter(self, poisoned: list[Item]) -> None:
        if not poisoned:
            return
        letters = []
        for tp, record, poison in poisoned:
            assert isinstance(poison, Poison)
            headers = dlq_headers(
                record.headers, topic=tp.topic, partition=tp.partition, offset=record.offset,
                stage=poison.stage, error=poison.reason,
            )  # fmt: skip
            value = record.value
            if self._sources[tp.topic] is Source.COMMANDS:
                value, stripped = without_data_key(value)
                if stripped:
                    headers.append((STRIPPED_HEADER, DATA_KEY_FIELD.encode()))
            letters.append((record.key, value, headers))

        async def send() -> None:
            sent = [
                await self._producer.send(self._dlq, value, key, headers=headers)
                for key, value, headers in letters
            ]
            await asyncio.gather(*sent)

        await retrying(
            send, what="dead-lettering", retry_on=(KafkaError, OSError, TimeoutError),
            stopping=self._stopping, max_delay=self._max_delay,
        )  # fmt: skip

    def _observe(
        self, items: list[Item], refused: set[tuple[TopicPartition, int]], seconds: float
    ) -> None:
        now = datetime.now(UTC)
        counts: Counter[tuple[str, str]] = Counter()
        for tp, record, decoded in items:
            if isinstance(decoded, Poison) or (tp, record.offset) in refused:
                outcome = "dead_lettered"
            elif isinstance(decoded, Skipped):
                outcome = "skipped"
                metrics.SKIPPED_RECORDS.labels(
                    topic=self._sources[tp.topic], reason=decoded.reason
                ).inc()
            elif isinstance(decoded, Unknown | UnknownEvent | UnknownSealedEvent):
                outcome = "unknown"
                record_type = decoded.record_type if isinstance(decoded, Unknown) else decoded.type
                metrics.count_unknown(self._sources[tp.topic], record_type)
                self._log_first_of(record_type, self._sources[tp.topic])
            else:
                outcome = "ignored" if decoded is None else "projected"
            counts[(self._sources[tp.topic], outcome)] += 1
            if isinstance(decoded, EventBase | SealedEventBase):
                metrics.LAG_SECONDS.observe(max(0.0, (now - decoded.occurred_at).total_seconds()))
        for (source, outcome), n in counts.items():
            metrics.RECORDS.labels(topic=source, outcome=outcome).inc(n)
        metrics.BATCH_RECORDS.observe(len(items))
        metrics.BATCH_SECONDS.observe(seconds)

    def _log_first_of(self, record_type: str, source: Source) -> None:
        """Say once per type that records of it are not understood: the metric counts the rest."""
        if record_type in self._skipped_types:
            return
        if len(self._skipped_types) < metrics.UNKNOWN_TYPES_LABELLED:
            self._skipped_types.add(record_type)
        log.warning(
            "records of a type this version does not know (from a newer version?): events "
            "carrying the common fields enter their run's timeline as received, others are skipped",
            extra={"topic": source.value, "record_type": record_type},
        )


def _is_fact(decoded: Decoded) -> TypeGuard[Fact]:
    return decoded is not None and not isinstance(decoded, Poison | Unknown | Skipped)
