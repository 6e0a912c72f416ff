"""On assignment, seek each partition to the offset stored with the rows, never Kafka's own."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from journeys_runtime.backoff import StoppedError

log = logging.getLogger(__name__)

LoadOffsets = Callable[[Sequence[TopicPartition]], Awaitable[dict[TopicPartition, int]]]


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """The stored offset is the truth. Kafka's committed offset (committed after PostgreSQL,
    for lag tools) may lag it, be missing (a new group id), or run ahead of it (the read
    models were restored or rebuilt): following it could skip facts; this never does.

    aiokafka may hand out records fetched from Kafka's committed offset while this listener
    still waits on PostgreSQL; `positioned` names the partitions whose records are safe to
    project, and the consumer loop drops the others (the seek fetches them again).
    """

    def __init__(self, consumer: AIOKafkaConsumer, load: LoadOffsets) -> None:
        self._consumer, self._load = consumer, load
        self.positioned: set[TopicPartition] = set()
        self.assigned_once = False

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.positioned.difference_update(revoked)
        log.info("partitions revoked", extra={"partitions": _names(revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.positioned.clear()
        partitions = sorted(assigned)
        try:
            # Retries while PostgreSQL is down: raising here would make aiokafka log the
            # error and go on from Kafka's committed offsets.
            stored = await self._load(partitions)
        except StoppedError:
            return
        fresh = [tp for tp in partitions if tp not in stored]
        for tp, offset in stored.items():
            self._consumer.seek(tp, offset)
            self.positioned.add(tp)
        if fresh:
            # Marked first: seek_to_beginning drops fetched records and resets the position
            # before it first yields, so nothing fetched earlier can slip through.
            self.positioned.update(fresh)
            await self._consumer.seek_to_beginning(*fresh)
        self.assigned_once = True
        log.info(
            "partitions assigned",
            extra={"partitions": _names(partitions), "from_beginning": _names(fresh)},
        )


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)
