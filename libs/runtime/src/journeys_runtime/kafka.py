"""Kafka client factories with the settings the guarantees depend on."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from murmurhash2 import murmurhash2

RECORD_MAX_BYTES = 1024 * 1024
"""The largest record value any producer here may send. Producers, topics and the local broker
take their size limits from this one number, so a record one of them accepts, all accept."""

RECORD_FRAMING_MAX_BYTES = 64 * 1024
"""Room for a record's key, headers and batch framing on top of its value."""

REQUEST_MAX_BYTES = RECORD_MAX_BYTES + RECORD_FRAMING_MAX_BYTES
"""One record, all told: the producers' `max_request_size`, every topic's `max.message.bytes`,
the local broker's `message.max.bytes` and `replica.fetch.max.bytes`, and the consumers'
per-partition fetch size. A value of `RECORD_MAX_BYTES` with its key and headers passes them
all; the broker and topics never refuse what a producer here let through."""

Headers = Sequence[tuple[str, bytes]]


class RecordTooLargeError(ValueError):
    """A record that no producer here may send: retrying would send the same bytes again, so
    it is a permanent failure of whatever produced it, never a reason to retry."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit}")
        self.what, self.size, self.limit = what, size, limit


def record_size(key: bytes | None, value: bytes | None, headers: Headers = ()) -> int:
    """What the producer counts against `max_request_size`: the record alone in its batch."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def check_record_size(
    what: str, key: bytes | None, value: bytes | None, headers: Headers = ()
) -> None:
    """Raise `RecordTooLargeError` for a record that must not be sent: a value over
    `RECORD_MAX_BYTES`, or key, headers and value together over `REQUEST_MAX_BYTES`.
    Checked before sending: a send the producer refused would fail inside a transaction."""
    if value is not None and len(value) > RECORD_MAX_BYTES:
        raise RecordTooLargeError(what, len(value), RECORD_MAX_BYTES)
    size = record_size(key, value, headers)
    if size > REQUEST_MAX_BYTES:
        raise RecordTooLargeError(what, size, REQUEST_MAX_BYTES)


KAFKA_MURMUR2_SEED = 0x9747B28C
"""The seed of the Java client's `Utils.murmur2`, which every Kafka client's default
partitioner uses."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to under Kafka's default partitioner (the Java
    client's, and aiokafka's `DefaultPartitioner`): murmur2 of the key, made positive, modulo
    the partition count. Computed in C (`murmurhash2`): aiokafka's pure-Python murmur2 cost
    about 15 us a record, a third of a producer's time for each."""
    return (murmurhash2(key, KAFKA_MURMUR2_SEED) & 0x7FFFFFFF) % partitions


def partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's `DefaultPartitioner`, with `partition_of` for keyed records: the same
    partition for the same key, so records of any producer here land beside each other."""
    if key is None:
        return random.choice(available or all_partitions)  # nosec B311: spreading records, not secrecy
    return all_partitions[partition_of(key, len(all_partitions))]


def producer(
    bootstrap: str, *, transactional_id: str | None = None, linger_ms: int = 2
) -> AIOKafkaProducer:
    """acks=all and idempotence: a send that returns is durable and never duplicated by retries."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=linger_ms,
        request_timeout_ms=10_000,
        max_batch_size=256 * 1024,
        max_request_size=REQUEST_MAX_BYTES,
        partitioner=partitioner,
    )


def consumer(
    bootstrap: str, group_id: str | None, topics: Iterable[str] = (), **options: Any
) -> AIOKafkaConsumer:
    """read_committed, manual offsets: callers store positions themselves, with their effects."""
    defaults: dict[str, Any] = {
        "max_poll_records": 1000, "fetch_max_wait_ms": 50,
        # At least one whole record per partition and fetch (aiokafka's default is 1 MiB).
        "max_partition_fetch_bytes": REQUEST_MAX_BYTES,
    }  # fmt: skip
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(defaults | options),
    )
