"""The journeys that have triggers, read from the definitions topic by every replica.

A patient event may start a run of any journey, whatever partition it lands on, so every
replica reads the whole (compacted) definitions topic from its beginning and keeps the
journeys whose definition declares `triggers`. Journeys are immutable: a record per journey,
read once.

`caught_up` is how a patient event waits for the journey defined before it: the API answers
201 to `POST /journeys` only once the definition is in Kafka, and accepts an event only once
it is in Kafka too, so when the executor has read the event, the definition of every journey
created before it is already in the definitions topic. End offsets fetched after that moment
cover it: an event is matched once the index has read up to end offsets it asked for after
the event's batch was polled (a moment on this process's own monotonic clock, so no clock of
another machine is involved), or after a bounded wait, counted in `TRIGGER_INDEX_LATE`, when
the topic cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition

from journeys_contracts.definition import JourneyDefinition
from journeys_contracts.journeys import decode_journey
from journeys_executor.metrics import TRIGGER_INDEX_LATE, TRIGGERED_JOURNEYS
from journeys_runtime import kafka

log = logging.getLogger(__name__)


class TriggerIndex:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._journeys: dict[UUID, JourneyDefinition] = {}
        self._sorted: list[tuple[UUID, JourneyDefinition]] = []
        self.caught_up_at = float("-inf")
        """Every definition produced before this moment (`time.monotonic()`) is read."""
        self._progress = asyncio.Condition()
        self._wanted = asyncio.Event()
        """Set by a waiting event: catch up now rather than at the next idle round."""

    def journeys(self) -> list[tuple[UUID, JourneyDefinition]]:
        """The journeys with triggers, by journey id."""
        return self._sorted

    def add(self, journey_id: UUID, definition: JourneyDefinition) -> None:
        if definition.triggers and journey_id not in self._journeys:
            self._journeys[journey_id] = definition
            self._sorted = sorted(self._journeys.items(), key=lambda j: str(j[0]))
            TRIGGERED_JOURNEYS.set(len(self._journeys))

    async def caught_up(self, moment: float, wait_seconds: float) -> bool:
        """Wait until the index holds every journey whose definition was in Kafka at `moment`
        (`time.monotonic()`; at most `wait_seconds`); False if it did not get there in time."""
        if self.caught_up_at >= moment:
            return True
        self._wanted.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_seconds), self._progress:
                await self._progress.wait_for(lambda: self.caught_up_at >= moment)
                return True
        TRIGGER_INDEX_LATE.inc()
        log.warning("trigger index behind; matching the event against what it holds")
        return False

    async def run(self, stopping: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """Read the topic until `stopping`: when an event waits, else every `idle_seconds`. A
        broker error is retried after a second."""
        while not stopping.is_set():
            try:
                await self._follow(stopping, idle_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading definitions failed; retrying",
                            extra={"error": type(exc).__name__})  # fmt: skip
                await asyncio.sleep(1.0)

    async def _follow(self, stopping: asyncio.Event, idle_seconds: float) -> None:
        reader = kafka.consumer(self.bootstrap, None, fetch_max_wait_ms=10)
        await reader.start()
        try:
            partitions = reader.partitions_for_topic(self.topic) or set()
            while not partitions:  # metadata not there yet
                await asyncio.sleep(0.1)
                await reader._client.force_metadata_update()
                partitions = reader.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            while not stopping.is_set():
                self._wanted.clear()
                asked_at = time.monotonic()
                ends = await reader.end_offsets(tps)
                while await _behind(reader, ends):
                    batch = await reader.getmany(*tps, timeout_ms=100)
                    for records in batch.values():
                        for record in records:
                            self._read(record.value)
                async with self._progress:
                    self.caught_up_at = asked_at
                    self._progress.notify_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), idle_seconds)
        finally:
            await reader.stop()

    def _read(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            record = decode_journey(value)
        except Exception as exc:  # the projector dead-letters it; here it is only skipped
            log.warning("definition unreadable; skipped", extra={"error": type(exc).__name__})
            return
        self.add(record.journey_id, record.definition)


async def _behind(reader: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await reader.position(tp) < end:
            return True
    return False
