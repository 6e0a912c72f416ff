"""Consume the events topics into PostgreSQL exactly once, and keep the window in step.

Both `journeys.events.v1` and `journeys.events.v2` (sealed runs) are read; they have the same
partition count and key, and the consumer's range assignment gives a replica the same
partition numbers of each, so the partitions whose timers it fires are those it consumes.

A batch's timer changes and its offsets (per topic and partition) commit in one transaction;
on assignment the consumer seeks to the stored offsets, so a record is applied once however
often it is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from journeys_runtime.backoff import Backoff
from journeys_runtime.dlq import dlq_headers
from journeys_runtime.logs import describe_error
from journeys_scheduler.clock import Alarm, Clock, Sleep
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.metrics import EVENTS, PARTITIONS_ASSIGNED
from journeys_scheduler.planning import Plan, Record, plan_batch
from journeys_scheduler.publisher import KAFKA_ERRORS
from journeys_scheduler.store import PG_ERRORS, TimerStore
from journeys_scheduler.window import DueWindow

log = logging.getLogger(__name__)


class Ingest:
    def __init__(
        self, *, consumer: Any, producer: Any, store: TimerStore, window: DueWindow,
        alarm: Alarm, topic: str, sealed_topic: str, dlq_topic: str, locks: Locks,
        health: Health, clock: Clock, sleep: Sleep, catch_up: timedelta,
    ) -> None:  # fmt: skip
        self._consumer, self._producer, self._store = consumer, producer, store
        self._window, self._alarm, self._locks, self._health = window, alarm, locks, health
        self._topics, self._sealed_topic = frozenset({topic, sealed_topic}), sealed_topic
        self._dlq_topic = dlq_topic
        self._clock, self._sleep, self._catch_up = clock, sleep, catch_up
        self._backoff = Backoff(sleep)
        # After an assignment: the end offsets the consumer must reach before firing resumes.
        self._behind: dict[TopicPartition, int] = {}
        # The stored offsets the assignment sought to: applied records end just before them.
        self._stored: dict[TopicPartition, int] = {}
        # Bumped by every rebalance: a batch read across one is not stored, because its
        # partitions may be someone else's now; those still ours are read again.
        self._generation = 0

    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    async def run(self) -> None:
        while True:
            generation = self._generation
            try:
                batches = await self._consumer.getmany(timeout_ms=1000)
            except KAFKA_ERRORS as exc:
                log.warning(
                    "could not fetch events; retrying", extra={"error": describe_error(exc)}
                )
                await self._backoff.wait()
                continue
            records = [
                Record(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
                       sealed=tp.topic == self._sealed_topic)
                for tp, batch in batches.items()
                for r in batch
            ]  # fmt: skip
            if records:
                await self._handle(plan_batch(records), generation)
            if self._behind:
                await self._check_caught_up()

    async def _handle(self, plan: Plan, generation: int) -> None:
        for record, reason in plan.dead_letters:
            await self._dead_letter(record, reason)
        while not await self._store_batch(plan, generation):
            await self._backoff.wait()
        self._backoff.reset()

    async def _dead_letter(self, record: Record, reason: str) -> None:
        headers = dlq_headers(
            record.headers, topic=record.topic, partition=record.partition,
            offset=record.offset, stage="decode", error=reason,
        )  # fmt: skip
        while True:
            try:
                await self._producer.send_and_wait(
                    self._dlq_topic, record.value, key=record.key, headers=headers
                )
                self._health.kafka = True
                return
            except KAFKA_ERRORS as exc:
                log.warning(
                    "could not dead-letter a record; retrying", extra={"error": describe_error(exc)}
                )
                self._health.kafka = False
                await self._backoff.wait()

    async def _store_batch(self, plan: Plan, generation: int) -> bool:
        async with self._locks.window:
            if generation != self._generation:
                self._rewind(plan)
                return True
            try:
                deleted = await self._store.apply(plan)
            except PG_ERRORS as exc:
                log.warning(
                    "could not store a batch of events; retrying",
                    extra={"error": describe_error(exc)},
                )
                self._health.postgres = False
                return False
            self._window.remove(deleted | plan.delete_timer_ids)
            woken = [self._window.offer(timer) for timer in plan.timers]
        self._health.postgres = True
        if any(woken):
            self._alarm.wake()
        EVENTS.labels(outcome="timer_stored").inc(len(plan.inserts))
        EVENTS.labels(outcome="dead_lettered").inc(len(plan.dead_letters))
        EVENTS.labels(outcome="ignored").inc(plan.ignored)
        EVENTS.labels(outcome="skipped_sealed_twin").inc(plan.skipped_twins)
        return True

    def _rewind(self, plan: Plan) -> None:
        """Read the batch's records again where they are still ours, but never from before the
        stored offset: a batch fetched while the assignment was sought may start anywhere (the
        consumer's reset position), and records already applied must not be applied again (a
        fired timer's DelayStarted would arm it once more)."""
        assigned = self._consumer.assignment()
        for (topic, partition), first in plan.first_offsets.items():
            tp = TopicPartition(topic, partition)
            if tp in assigned:
                self._consumer.seek(tp, max(first, self._stored.get(tp, first)))
        log.info("batch read across a rebalance: not stored, read again if still ours")

    async def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        async with self._locks.fire, self._locks.window:
            self._generation += 1
            self._behind = {}
            self._window.revoke(tp.partition for tp in partitions if tp.topic in self._topics)
        PARTITIONS_ASSIGNED.set(len(self._window.partitions))

    async def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        mine = [tp for tp in partitions if tp.topic in self._topics]
        offsets = await self._stored_offsets(mine)
        # Before any seek: a batch read across this rebalance may be rewound while the seeks
        # below are under way, and must not go back past them.
        self._stored = offsets
        for tp in mine:
            if tp in offsets:
                self._consumer.seek(tp, offsets[tp])
            else:
                await self._consumer.seek_to_beginning(tp)
        behind = await self._ends_behind(mine, offsets)
        hold_until = self._clock() + self._catch_up if behind else None
        async with self._locks.fire, self._locks.window:
            self._generation += 1
            self._behind = behind
            self._window.assign((tp.partition for tp in mine), hold_until)
        self._alarm.wake()  # the firing loop loads the window of the new partitions
        PARTITIONS_ASSIGNED.set(len(self._window.partitions))
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in mine)},
        )

    async def _stored_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Without them the consumer would start from the beginning: wait for PostgreSQL."""
        backoff = Backoff(self._sleep)
        while True:
            try:
                offsets: dict[TopicPartition, int] = {}
                for topic in sorted({tp.topic for tp in partitions}):
                    parts = [tp.partition for tp in partitions if tp.topic == topic]
                    stored = await self._store.offsets(topic, parts)
                    offsets |= {TopicPartition(topic, p): o for p, o in stored.items()}
            except PG_ERRORS as exc:
                log.warning(
                    "could not read stored offsets; retrying", extra={"error": describe_error(exc)}
                )
                self._health.postgres = False
                await backoff.wait()
                continue
            self._health.postgres = True
            return offsets

    async def _ends_behind(
        self, partitions: list[TopicPartition], stored: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """The end offsets of the partitions with events not yet stored; none if unknown."""
        try:
            ends = await self._consumer.end_offsets(partitions)
            starts = await self._consumer.beginning_offsets(partitions)
        except KAFKA_ERRORS as exc:
            log.warning(
                "end offsets unknown: firing without catching up",
                extra={"error": describe_error(exc)},
            )
            return {}
        return {tp: end for tp, end in ends.items() if end > stored.get(tp, starts[tp])}

    async def _check_caught_up(self) -> None:
        behind = self._behind
        for tp, end in list(behind.items()):
            try:
                position = await self._consumer.position(tp)
            except KAFKA_ERRORS:  # revoked meanwhile: nothing to wait for on it
                position = end
            if position >= end:
                del behind[tp]
        if not behind and behind is self._behind:
            self._window.release()
            self._alarm.wake()
            log.info("caught up with the events topics: firing")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._ingest.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._ingest.assigned(assigned)
