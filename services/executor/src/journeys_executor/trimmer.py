"""Trimming the commands this replica's partitions are done with, on a timer.

A `start_run.v2` carries the patient's wrapped data key; once the executor and every other
reader of the commands topic (the projector) have committed past it, it is only a copy. Every
`EXECUTOR_COMMANDS_TRIM_SECONDS` each replica deletes, on the partitions it owns, what all those
groups have committed past (`journeys_runtime.trimming`), so an erased patient's wrapped key
leaves the topic within consumer lag plus that period instead of the topic's retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from journeys_executor.metrics import COMMANDS_TRIMMED
from journeys_runtime.trimming import trim_consumed

log = logging.getLogger(__name__)


class CommandsTrimmer:
    def __init__(
        self,
        bootstrap: str,
        groups: Sequence[str],
        every_seconds: float,
        owned: Callable[[], Collection[TopicPartition]],
    ) -> None:
        self._bootstrap = bootstrap
        self._groups = list(groups)
        self._every = every_seconds
        self._owned = owned
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
                    log.warning("trimming consumed commands failed; trying again later",
                                extra={"error": type(exc).__name__})  # fmt: skip
        finally:
            if started:
                await admin.close()

    async def trim_once(self, admin: AIOKafkaAdminClient) -> None:
        owned = list(self._owned())
        self._trimmed = {tp: o for tp, o in self._trimmed.items() if tp in owned}
        starts = await trim_consumed(admin, self._groups, owned, self._trimmed)
        COMMANDS_TRIMMED.inc(len(starts))
        self._trimmed.update(starts)
