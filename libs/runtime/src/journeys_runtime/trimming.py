"""Trimming a queue topic: delete the records every reader has committed past.

The commands topic is a queue. Its records matter until each consumer group that reads it has
them: the executor commits its offsets in its transactions, the projector after its
PostgreSQL transaction. Past that point a record is only a copy, and a `start_run.v2` copy
holds a patient's wrapped data key. Trimming moves the partition's log start offset up to the
lowest committed offset among the groups (Kafka's DeleteRecords): the records below can no
longer be fetched at once, and their segment files go when the segment is wholly below it.
The retention stays as a backstop for a group that stops.

A group that has committed nothing for a partition holds that partition back: it may be a
reader that has not started yet, and trimming must never take a record from a reader.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

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
