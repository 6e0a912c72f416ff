"""Ingest across a rebalance: a batch read while the assignment is sought is read again, but
never from before the stored offsets (that would arm fired timers once more)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiokafka import TopicPartition

from journeys_scheduler.clock import Alarm
from journeys_scheduler.coordination import Health, Locks
from journeys_scheduler.ingest import Ingest
from journeys_scheduler.planning import Record, plan_batch
from journeys_scheduler.window import DueWindow
from tests.unit.scheduler.fakes import FakeClock

EVENTS, SEALED = "journeys.events.v1", "journeys.events.v2"


class SeekingConsumer:
    """Keeps each partition's position; `during_end_offsets` runs while the listener waits."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned, self.positions = assigned, dict.fromkeys(assigned, 0)
        self.during_end_offsets: Any = None

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.during_end_offsets is not None:
            await self.during_end_offsets()
        return dict.fromkeys(tps, 9)

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)


class StoredOffsets:
    def __init__(self, stored: dict[TopicPartition, int]) -> None:
        self.stored, self.applied = stored, 0

    async def offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        return {tp.partition: o for tp, o in self.stored.items() if tp.topic == topic}

    async def apply(self, plan: Any) -> set[Any]:
        self.applied += 1
        return set()


async def test_a_batch_read_while_the_assignment_is_sought_is_not_rewound_past_stored_offsets() -> (
    None
):
    tp = TopicPartition(EVENTS, 2)
    consumer = SeekingConsumer({tp, TopicPartition(SEALED, 2)})
    store = StoredOffsets({tp: 5})
    clock = FakeClock()
    ingest = Ingest(
        consumer=consumer, producer=None, store=store, window=DueWindow(timedelta(60), 1000),
        alarm=Alarm(clock.sleep), topic=EVENTS, sealed_topic=SEALED, dlq_topic="dlq",
        locks=Locks(), health=Health(), clock=clock.now, sleep=clock.sleep,
        catch_up=timedelta(seconds=5),
    )  # fmt: skip
    # Fetched from the consumer's reset position (the beginning) before the listener's seek.
    entered = (("ce_type", b"journeys.node.entered.v1"),)  # not a timer's: no decoding needed
    stale = plan_batch([Record(EVENTS, 2, offset, b"k", b"{}", entered) for offset in range(5)])

    async def stale_batch_arrives() -> None:
        await ingest._handle(stale, generation=-1)

    consumer.during_end_offsets = stale_batch_arrives
    await ingest.assigned(consumer.assigned)

    assert store.applied == 0, "a batch read across a rebalance is not stored"
    assert consumer.positions[tp] == 5, "read again from the stored offset, not from 0"
