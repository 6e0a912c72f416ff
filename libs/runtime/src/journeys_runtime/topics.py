"""The topics, their names under the deployment's prefix, and their creation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def definitions(self) -> str:
        return f"{self.prefix}journeys.definitions.v1"

    @property
    def commands(self) -> str:
        return f"{self.prefix}journeys.commands.v1"

    @property
    def events(self) -> str:
        return f"{self.prefix}journeys.events.v1"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}journeys.dlq.v1"

    @property
    def executor_runs(self) -> str:
        """The executor's run table: internal, compacted, one partition per command partition."""
        return f"{self.prefix}journeys.executor.runs.changelog"

    @property
    def co_partitioned(self) -> list[str]:
        """Partition p of each belongs to the executor's transaction for command partition p."""
        return [self.commands, self.events, self.executor_runs]

    def specs(self, partitions: int, replication: int = 1) -> list[NewTopic]:
        """Commands, events and the run table share one partition count (`co_partitioned`)."""
        return [
            NewTopic(self.definitions, partitions, replication, topic_configs={
                "cleanup.policy": "compact"}),
            NewTopic(self.commands, partitions, replication, topic_configs={
                "cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)}),
            NewTopic(self.events, partitions, replication, topic_configs={
                "cleanup.policy": "delete", "retention.ms": str(3650 * DAY_MS)}),
            NewTopic(self.dlq, partitions, replication, topic_configs={
                "cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)}),
            NewTopic(self.executor_runs, partitions, replication, topic_configs={
                "cleanup.policy": "compact"}),
        ]  # fmt: skip


class PartitionMismatchError(RuntimeError):
    pass


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int, replication: int = 1
) -> None:
    """Create missing topics; refuse to run when the co-partitioned topics differ in count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.specs(partitions, replication) if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
            log.info("created topics", extra={"topics": [t.name for t in missing]})
        described = await admin.describe_topics(topics.co_partitioned)
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        if len(set(counts.values())) != 1:
            raise PartitionMismatchError(
                f"{', '.join(topics.co_partitioned)} must have one partition count, got {counts}"
            )
    finally:
        await admin.close()
