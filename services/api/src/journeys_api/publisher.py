"""The Kafka side: one idempotent producer (acks=all), reconnecting while Kafka is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata

from journeys_api.errors import (
    KAFKA_REFUSED_SIZE,
    KAFKA_SIZE_ERRORS,
    TooLargeError,
    UnavailableError,
    UndeliveredError,
)
from journeys_contracts.audit import AccessRecorded
from journeys_contracts.commands import (
    CancelRun,
    CancelRunSealed,
    ErasePatient,
    RecordPatientEvent,
    RecordPatientEventSealed,
    RetryMessage,
    SetConsent,
    StartRun,
    StartRunSealed,
)
from journeys_contracts.envelope import CloudEvent
from journeys_contracts.journeys import JourneyDefined
from journeys_runtime import kafka
from journeys_runtime.backoff import Backoff
from journeys_runtime.logs import describe_error
from journeys_runtime.topics import PartitionMismatchError, Topics, ensure_topics

log = logging.getLogger(__name__)

SOURCE = "/journeys/api"
Record = (
    JourneyDefined
    | StartRun
    | StartRunSealed
    | CancelRun
    | CancelRunSealed
    | ErasePatient
    | RecordPatientEvent
    | RecordPatientEventSealed
    | SetConsent
    | RetryMessage
    | AccessRecorded
)
RETRY_MAX_SECONDS = 10.0


class Publisher:
    """Sends records with their CloudEvent headers; `UnavailableError` when Kafka is away.

    A failed first connection does not stop the API from starting: it keeps retrying in the
    background, `/ready` answers 503 and writes answer 503 meanwhile.
    """

    def __init__(
        self, bootstrap: str, topics: Topics, partitions: int, *, create_topics: bool,
        timeout: float,
    ) -> None:  # fmt: skip
        self._bootstrap = bootstrap
        self._topics = topics
        self._partitions = partitions
        self._create_topics = create_topics
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """One attempt now (a partition mismatch is fatal), then retries in the background."""
        try:
            await self._connect()
        except PartitionMismatchError:
            raise
        except Exception as exc:
            log.warning(
                "kafka unreachable at start, retrying", extra={"error": describe_error(exc)}
            )
            self._retry = asyncio.create_task(self._keep_connecting(), name="kafka-connect")

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def ready(self, max_wait: float) -> bool:
        """Kafka answers a metadata request within `max_wait` seconds."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(max_wait):
                return bool(await self._producer.client.force_metadata_update())
        except (TimeoutError, KafkaError):
            return False

    async def send(self, topic: str, key: str | None, record: Record, *, subject: str,
                   event_id: str, max_wait: float | None = None) -> RecordMetadata:  # fmt: skip
        """Wait until Kafka has the record (acks=all); its partition and offset come back.
        Without a key the producer spreads records over the partitions. The wait is the
        produce timeout, or `max_wait` when that is shorter (what the request has left).
        When the wait is over but the record is still on its way (the producer goes on
        sending it), `UndeliveredError` carries its delivery."""
        message = self.prepare(key, record, subject=subject, event_id=event_id)
        if self._producer is None:
            raise UnavailableError("kafka", "not connected")
        timeout = self._timeout if max_wait is None else min(self._timeout, max_wait)
        delivery: asyncio.Future[RecordMetadata] | None = None
        try:
            async with asyncio.timeout(timeout):
                delivery = await self._producer.send(topic, **message)
                # Shielded: a wait cut short leaves the delivery itself to go on, as it does
                # in the producer anyway; `UndeliveredError` hands it to the caller.
                return await asyncio.shield(delivery)
        except TimeoutError as exc:
            if delivery is not None and not delivery.done():
                delivery.add_done_callback(_retrieve)
                raise UndeliveredError(delivery) from exc
            raise UnavailableError("kafka", "no acknowledgement in time") from exc
        except KAFKA_SIZE_ERRORS as exc:  # final: the same record would be refused again
            raise TooLargeError(KAFKA_REFUSED_SIZE) from exc
        except KafkaError as exc:
            raise UnavailableError("kafka", type(exc).__name__) from exc

    def prepare(self, key: str | None, record: Record, *, subject: str, event_id: str) -> Message:
        """The record as `send` and `send_many` send it; `TooLargeError` when it cannot fit a
        Kafka record."""
        message = _message(key, record, subject, event_id)
        self.check_size(record.type, message)
        return message

    @staticmethod
    def check_size(record_type: str, message: Message) -> None:
        """`TooLargeError` when the message cannot fit a Kafka record."""
        try:
            kafka.check_record_size(record_type, message["key"], message["value"],
                                    message["headers"])  # fmt: skip
        except kafka.RecordTooLargeError as exc:
            raise TooLargeError(
                f"the {exc.what} record would be {exc.size} bytes, over the limit of "
                f"{exc.limit} bytes per Kafka record"
            ) from exc

    async def send_many(
        self, topic: str, messages: Sequence[Message], *, max_wait: float | None = None
    ) -> None:
        """Send every message, then wait until Kafka has them all (acks=all). They go as
        batches made here, one or more per partition, each message where `send` would put
        it and in the given order within its partition: handing the producer one message at
        a time cost about 20 us a message in aiokafka's Python, more than anything else in
        a batch of patient events. Errors as `send`; when some may still reach Kafka (the
        wait is over, or one failed while others are on their way), `UndeliveredError`
        carries a future that resolves once each of them has."""
        producer = self._producer
        if producer is None:
            raise UnavailableError("kafka", "not connected")
        timeout = self._timeout if max_wait is None else min(self._timeout, max_wait)
        deliveries: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(timeout):
                partitions = sorted(await producer.partitions_for(topic))
                for partition, batch in _batches(producer, messages, partitions):
                    deliveries.append(await _send_batch(producer, batch, topic, partition))
                await asyncio.shield(asyncio.gather(*deliveries))
        except (TimeoutError, KafkaError) as exc:
            for delivery in deliveries:
                delivery.add_done_callback(_retrieve)
            if not all(d.done() for d in deliveries):
                raise UndeliveredError(asyncio.gather(*deliveries, return_exceptions=True)) from exc
            if isinstance(exc, KAFKA_SIZE_ERRORS):
                raise TooLargeError(KAFKA_REFUSED_SIZE) from exc
            if isinstance(exc, KafkaError):
                raise UnavailableError("kafka", type(exc).__name__) from exc
            raise UnavailableError("kafka", "no acknowledgement in time") from exc

    async def enqueue(
        self, topic: str, key: str | None, record: Record, *, subject: str, event_id: str,
        max_wait: float,
    ) -> asyncio.Future[RecordMetadata] | None:  # fmt: skip
        """Hand the record to the producer without waiting for Kafka; None if even that could
        not be done within `max_wait` (no producer, no metadata, a full buffer). The future
        says later whether Kafka took it."""
        if self._producer is None:
            return None
        try:
            async with asyncio.timeout(max_wait):
                return await self._producer.send(topic, **_message(key, record, subject, event_id))
        except (TimeoutError, KafkaError):
            return None

    async def _connect(self) -> None:
        await ensure_topics(
            self._bootstrap, self._topics, self._partitions, create=self._create_topics
        )
        # No linger: every send here has a request waiting on it (the command of a write, the
        # audit record of every answer). Lingering cost each one ~4 ms at no load; under load
        # records batch anyway while the previous request to the broker is in flight.
        producer = kafka.producer(self._bootstrap, linger_ms=0)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        log.info("kafka producer connected")

    async def _keep_connecting(self) -> None:
        backoff = Backoff(initial=0.5, maximum=RETRY_MAX_SECONDS)
        while True:
            await backoff.wait()
            try:
                await self._connect()
                return
            except Exception as exc:
                log.warning("kafka still unreachable", extra={"error": describe_error(exc)})


def _batches(
    producer: AIOKafkaProducer, messages: Sequence[Message], partitions: list[int]
) -> Iterator[tuple[int, BatchBuilder]]:
    """The messages in closed batches of the producer's batch size, with their partitions
    (a keyed message's as the producer's partitioner places it, one without a key spread as
    it spreads them). The first message of a batch always fits, however large."""
    by_partition: dict[int, list[Message]] = {}
    for message in messages:
        partition = kafka.partitioner(message["key"], partitions, partitions)
        by_partition.setdefault(partition, []).append(message)
    for partition, found in by_partition.items():
        batch = producer.create_batch()
        for message in found:
            if batch.append(timestamp=None, **message) is None:  # full, and now closed
                yield partition, batch
                batch = producer.create_batch()
                batch.append(timestamp=None, **message)
        batch.close()  # no `send` of another request slips into it
        yield partition, batch


async def _send_batch(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> asyncio.Future[Any]:
    """`send_batch`, again when it gave up before queueing the batch. It waits until the
    partition's queued batch is taken for sending, and when several requests wait so, it gives
    up long before its timeout (aiokafka 0.14 takes the time since it began off the timeout
    at each wake-up, not the time since the last). Nothing is queued then, so trying again is
    safe; the caller's deadline bounds the tries."""
    while True:
        try:
            return await producer.send_batch(batch, topic, partition=partition)
        except KafkaTimeoutError:
            continue


def _retrieve(delivery: asyncio.Future[RecordMetadata]) -> None:
    """Marks a failed delivery nobody awaits as seen (asyncio would log it unretrieved)."""
    if not delivery.cancelled():
        delivery.exception()


Message = dict[str, Any]


def _message(key: str | None, record: Record, subject: str, event_id: str) -> Message:
    headers = CloudEvent(event_id, record.type, SOURCE, subject, datetime.now(UTC)).headers()
    return {
        "value": record.to_json(),
        "key": key.encode() if key is not None else None,
        "headers": headers,
    }
