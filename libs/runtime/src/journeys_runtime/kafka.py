"""Kafka client factories with the settings the guarantees depend on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

RECORD_MAX_BYTES = 1024 * 1024
"""The largest record value any producer here may send. Producers, topics and the local broker
take their size limits from this one number, so a record one of them accepts, all accept."""


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
    )


def consumer(
    bootstrap: str, group_id: str | None, topics: Iterable[str] = (), **options: Any
) -> AIOKafkaConsumer:
    """read_committed, manual offsets: callers store positions themselves, with their effects."""
    defaults: dict[str, Any] = {"max_poll_records": 1000, "fetch_max_wait_ms": 50}
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(defaults | options),
    )
