"""Trimming a queue topic: delete the records every reader has committed past.

The commands topic is a queue. Its records matter until each consumer group that reads it has
them: the executor commits its offsets in its transactions, the projector after its
PostgreSQL transaction. Past that point a record is only a copy, and a `start_run.v2` copy
holds a patient's wrapped data key. The deliveries topic is a queue too, read by the delivery
service alone, and a sealed run's delivery request carries the wrapped data key as well.

Trimming moves the partition's log start offset up to the lowest committed offset among the
groups (Kafka's DeleteRecords): the records below can no longer be fetched at once, and their
segment files go when the segment is wholly below it. The retention stays as a backstop for a
group that stops.

A group that has committed nothing for a partition holds that partition back: it may be a
reader that has not started yet, and trimming must never take a record from a reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


async def consumed_by_all(
    admin: AIOKafkaAdminClient, groups: Sequence[str], partitions: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """Partition -> the lowest offset any of `groups` has committed there; partitions some
    group has not committed are left out."""
    floors: dict[TopicPartition, int] = {}
    wanted = list(partitions)
    for i, group in enumerate(groups):
        committed = await admin.list_consumer_group_offsets(group, partitions=wanted)
        offsets = {tp: meta.offset for tp, meta in committed.items()
                   if meta is not None and meta.offset >= 0}  # fmt: skip
        if i == 0:
            floors = {tp: offsets[tp] for tp in wanted if tp in offsets}
        else:
            floors = {tp: min(floor, offsets[tp]) for tp, floor in floors.items()
                      if tp in offsets}  # fmt: skip
    return floors


async def trim_consumed(
    admin: AIOKafkaAdminClient,
    groups: Sequence[str],
    partitions: Collection[TopicPartition],
    trimmed: dict[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """Delete what every group in `groups` has consumed of `partitions`; returns the new log
    start offset of each partition trimmed. `trimmed` (what an earlier call returned) spares
    a request for partitions no group has moved on since."""
    if not groups or not partitions:
        return {}
    floors = await consumed_by_all(admin, groups, partitions)
    before = trimmed or {}
    todo = {tp: RecordsToDelete(offset) for tp, offset in floors.items()
            if offset > before.get(tp, 0)}  # fmt: skip
    if not todo:
        return {}
    starts = await admin.delete_records(todo)
    log.debug("trimmed consumed records", extra={"partitions": len(starts)})
    return starts


class Trimmer:
    """Trims, every `every_seconds`, what all `groups` have consumed of the partitions this
    replica `owned` (`trim_consumed`), so a record holding a wrapped data key leaves its topic
    within consumer lag plus that period instead of the topic's retention. `counted` hears how
    many partitions each round trimmed."""

    def __init__(
        self,
        bootstrap: str,
        groups: Sequence[str],
        every_seconds: float,
        owned: Callable[[], Collection[TopicPartition]],
        counted: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._bootstrap = bootstrap
        self._groups = list(groups)
        self._every = every_seconds
        self._owned = owned
        self._counted = counted
        self._trimmed: dict[TopicPartition, int] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set; a failed round is logged by type and tried again next time."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=15_000)
        started = False
        try:
            while not stopping.is_set():
                try:
                    await asyncio.wait_for(stopping.wait(), self._every)
                    return
                except TimeoutError:
                    pass
                try:
                    if not started:
                        await admin.start()
                        started = True
                    await self.trim_once(admin)
                except (KafkaError, TimeoutError, OSError) as exc:
                    log.warning("trimming consumed records failed; trying again later",
                                extra={"error": type(exc).__name__})  # fmt: skip
        finally:
            if started:
                await admin.close()

    async def trim_once(self, admin: AIOKafkaAdminClient) -> None:
        owned = list(self._owned())
        self._trimmed = {tp: o for tp, o in self._trimmed.items() if tp in owned}
        starts = await trim_consumed(admin, self._groups, owned, self._trimmed)
        self._counted(len(starts))
        self._trimmed.update(starts)
