"""The run table: each command partition's runs, kept in memory and in a compacted changelog.

Partition p of the changelog holds the runs of command partition p, written in the same
transaction as the events and the consumed offset, so what is committed there is exactly
the state after the committed offset. A replica that takes partition p over reads that
partition with `read_committed` to its end before it processes a single command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from aiokafka import TopicPartition

from journeys_executor.core import RunState
from journeys_executor.metrics import RESTORE_SECONDS, RESTORED_RUNS
from journeys_runtime import kafka

log = logging.getLogger(__name__)


class Runs:
    """Run states by run id, stored as the JSON the changelog holds; parsed when used."""

    def __init__(self, stored: dict[bytes, bytes] | None = None) -> None:
        self._stored: dict[bytes, bytes] = stored if stored is not None else {}

    def get(self, run_key: bytes) -> RunState | None:
        raw = self._stored.get(run_key)
        return RunState.model_validate_json(raw) if raw is not None else None

    def update(self, changed: dict[bytes, bytes | None]) -> None:
        """New states; None forgets a run, as a tombstone in the changelog does."""
        for run_key, stored in changed.items():
            if stored is None:
                self._stored.pop(run_key, None)
            else:
                self._stored[run_key] = stored


async def restore(bootstrap: str, topic: str, partitions: Collection[int]) -> dict[int, Runs]:
    """Read the given changelog partitions from the beginning to their last stable offset.

    The caller has already fenced the partitions' previous transactional producers, so no
    transaction is open on them and the last stable offset is the end.
    """
    started = time.perf_counter()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    tables: dict[int, dict[bytes, bytes]] = {tp.partition: {} for tp in tps}
    if not tps:
        return {}
    reader = kafka.consumer(bootstrap, None, max_poll_records=5000, fetch_max_wait_ms=10)
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await reader.getmany(*remaining, timeout_ms=200)
            for tp, records in batch.items():
                table = tables[tp.partition]
                for record in records:
                    if record.key is None:
                        continue
                    if record.value is None:
                        table.pop(record.key, None)
                    else:
                        table[record.key] = record.value
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    restored = sum(len(t) for t in tables.values())
    RESTORED_RUNS.inc(restored)
    RESTORE_SECONDS.observe(time.perf_counter() - started)
    log.info(
        "run table restored",
        extra={"partitions": sorted(tables), "runs": restored,
               "seconds": round(time.perf_counter() - started, 3)},
    )  # fmt: skip
    return {p: Runs(t) for p, t in tables.items()}
