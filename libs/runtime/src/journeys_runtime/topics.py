"""The topics, their names under the deployment's prefix, and their creation or check."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from journeys_runtime.kafka import REQUEST_MAX_BYTES

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
METADATA_WAIT_SECONDS = 15.0
TOPIC_ALREADY_EXISTS = 36  # Kafka error code: another replica created it first
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs source of a topic's own override
# A tenth of the log dirty is enough for the cleaner; the lag below bounds the rest.
CHANGELOG_DIRTY_RATIO = "0.1"


@dataclass(frozen=True)
class Retention:
    """How long each topic keeps what it holds; the defaults are the documented ones.

    The settings (`JOURNEYS_*_RETENTION_DAYS`, `JOURNEYS_CHANGELOG_*_HOURS`) fill this in, so
    the topics job, every service that creates a missing topic and the Strimzi resources all
    declare the same values.
    """

    commands_days: int = 14  # a backstop: every consumer reads a command within seconds
    events_days: int = 3650
    # The sealed events: erasing a patient makes their copies noise, so history can stay long.
    sealed_events_days: int = 3650
    dlq_days: int = 90
    # Six years, what HIPAA asks of its documentation (45 CFR 164.316(b)(2)).
    audit_days: int = 6 * 366
    # Delivery requests: read within seconds; a week covers a delivery service down over a
    # long weekend. They hold patient data (sealed for sealed runs), so not longer.
    deliveries_days: int = 7
    # The executor's run table: the active segment is never compacted, so it rolls this
    # often, and no record waits longer than this for the cleaner however little is dirty.
    changelog_compaction_lag_hours: int = 1
    # A tombstone outlives its run's records by this much, so a restore (at most
    # EXECUTOR_RESTORE_TIMEOUT_SECONDS, 300 s by default) that read the state also reads it.
    changelog_tombstone_hours: int = 1

    def changelog(self) -> dict[str, str]:
        """A run tombstoned at time t stops costing restore time (its state is gone) by about
        t + 2 lag (segment roll, cleaner), and its tombstone by t + 2 lag + tombstone hours."""
        lag = str(self.changelog_compaction_lag_hours * HOUR_MS)
        return {"segment.ms": lag, "max.compaction.lag.ms": lag,
                "min.cleanable.dirty.ratio": CHANGELOG_DIRTY_RATIO,
                "delete.retention.ms": str(self.changelog_tombstone_hours * HOUR_MS)}  # fmt: skip


def _deleted_after(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}


@dataclass(frozen=True)
class Topics:
    prefix: str = ""
    retention: Retention = Retention()

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
    def sealed_events(self) -> str:
        """The events with patient data sealed under each patient's data key (`.v2` types)."""
        return f"{self.prefix}journeys.events.v2"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}journeys.dlq.v1"

    @property
    def audit(self) -> str:
        """Who reached which run or journey; written by the API, read by the projector."""
        return f"{self.prefix}journeys.audit.v1"

    @property
    def deliveries(self) -> str:
        """The messages to send: written by the executor, read by the delivery service."""
        return f"{self.prefix}journeys.deliveries.v1"

    @property
    def executor_runs(self) -> str:
        """The executor's run table: internal, compacted, one partition per command partition."""
        return f"{self.prefix}journeys.executor.runs.changelog"

    @property
    def co_partitioned(self) -> list[str]:
        """Partition p of each belongs to the executor's transaction for command partition p."""
        return [self.commands, self.events, self.sealed_events, self.deliveries,
                self.executor_runs]  # fmt: skip

    @property
    def names(self) -> list[str]:
        return [self.definitions, self.commands, self.events, self.sealed_events, self.dlq,
                self.audit, self.deliveries, self.executor_runs]  # fmt: skip

    def configs(self, min_insync_replicas: int = 1) -> dict[str, dict[str, str]]:
        """The declared configuration of each topic: what creation sets and `apply` restores."""
        # Every topic takes what a producer here may send (`kafka.REQUEST_MAX_BYTES`), whatever
        # the broker's default: a record the producer let through is never refused later.
        isr = {
            "min.insync.replicas": str(min_insync_replicas),
            "max.message.bytes": str(REQUEST_MAX_BYTES),
        }
        r = self.retention
        return {
            self.definitions: {"cleanup.policy": "compact", **isr},
            self.commands: {**_deleted_after(r.commands_days), **isr},
            self.events: {**_deleted_after(r.events_days), **isr},
            self.sealed_events: {**_deleted_after(r.sealed_events_days), **isr},
            self.dlq: {**_deleted_after(r.dlq_days), **isr},
            self.audit: {**_deleted_after(r.audit_days), **isr},
            self.deliveries: {**_deleted_after(r.deliveries_days), **isr},
            self.executor_runs: {"cleanup.policy": "compact", **r.changelog(), **isr},
        }

    def specs(
        self, partitions: int, replication: int = 1, min_insync_replicas: int = 1
    ) -> list[NewTopic]:
        """Every topic with one partition count (the co-partitioned ones must share it)."""
        return [
            NewTopic(name, partitions, replication, topic_configs=configs)
            for name, configs in self.configs(min_insync_replicas).items()
        ]


class TopicsError(RuntimeError):
    """The topics on the broker are not what this deployment declares; a person must act."""


class PartitionMismatchError(TopicsError):
    pass


class MissingTopicsError(TopicsError):
    pass


@dataclass
class TopicReport:
    """What `apply` or `verify` found and did, topic names only."""

    created: list[str] = field(default_factory=list)
    reconfigured: dict[str, dict[str, str]] = field(default_factory=dict)
    config_drift: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int, replication: int = 1, *, create: bool = True
) -> None:
    """Create the missing topics (or, with `create=False`, refuse to run without them); refuse
    to run when the co-partitioned topics differ in partition count."""
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [n for n in topics.names if n not in existing]
        if missing and not create:
            raise MissingTopicsError(
                f"topics missing: {', '.join(missing)}; the topics job creates them"
            )
        if missing:
            specs = [s for s in topics.specs(partitions, replication) if s.name in missing]
            log.info("created topics", extra={"topics": await _create(admin, specs)})
        counts = await _partition_counts(admin, topics.co_partitioned)
        if len(set(counts.values())) != 1:
            raise PartitionMismatchError(
                f"{', '.join(topics.co_partitioned)} must have one partition count, got {counts}"
            )


async def apply_topics(
    bootstrap: str, topics: Topics, partitions: int, replication: int, min_insync_replicas: int
) -> TopicReport:
    """Create what is missing and restore the declared configs of what exists.

    Partition counts are never changed: a patient's records are on the partition their key
    hashes to, and the executor's run table is split the same way, so adding partitions would
    move patients away from their state. A count that differs from the declared one is a
    problem to report, as is a replication factor (changing that is a reassignment).
    """
    report = TopicReport()
    declared = topics.configs(min_insync_replicas)
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [s for s in topics.specs(partitions, replication, min_insync_replicas)
                   if s.name not in existing]  # fmt: skip
        if missing:
            report.created = await _create(admin, missing)
        _check_layout(report, await _describe(admin, topics.names), partitions, replication)
        configs = await _configs(admin, topics.names)
        drift = _drift(configs, declared)
        if drift:
            # AlterConfigs replaces a topic's overrides: keep the ones nobody declared.
            await _alter(admin, {
                name: {**_overrides(configs[name]), **declared[name]} for name in drift
            })  # fmt: skip
            report.reconfigured = drift
    return report


async def verify_topics(
    bootstrap: str, topics: Topics, partitions: int, replication: int, min_insync_replicas: int
) -> TopicReport:
    """Change nothing: report missing topics, other layouts and configs that differ.

    For deployments whose topics another tool owns (Strimzi's topic operator).
    """
    report = TopicReport()
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        missing = [n for n in topics.names if n not in existing]
        report.problems += [f"{n}: missing" for n in missing]
        present = [n for n in topics.names if n in existing]
        if present:
            _check_layout(report, await _describe(admin, present), partitions, replication)
            try:
                configs = await _configs(admin, present)
            except TopicsError as exc:  # a broker that has not heard of a new topic yet
                report.problems.append(str(exc))
            else:
                report.config_drift = _drift(configs, topics.configs(min_insync_replicas))
    report.problems += [
        f"{name}: {key} is {value!r}" for name, diff in report.config_drift.items()
        for key, value in diff.items()
    ]  # fmt: skip
    return report


def _check_layout(
    report: TopicReport, described: dict[str, list[dict]], partitions: int, replication: int
) -> None:
    for name, parts in described.items():
        if not parts:
            report.problems.append(f"{name}: no metadata yet")
            continue
        if len(parts) != partitions:
            report.problems.append(
                f"{name}: {len(parts)} partitions, {partitions} declared (never changed here)"
            )
        factors = {len(p["replicas"]) for p in parts}
        if factors != {replication}:
            report.problems.append(
                f"{name}: replication factor {sorted(factors)}, {replication} declared"
            )


Configs = dict[str, tuple[str, int]]  # key -> (value, source)


def _drift(
    actual: dict[str, Configs], declared: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Per topic, the declared keys whose broker value differs, with the broker's value."""
    drift = {}
    for name, configs in actual.items():
        values = {k: value for k, (value, _) in configs.items()}
        diff = {k: values.get(k, "") for k, v in declared[name].items() if values.get(k) != v}
        if diff:
            drift[name] = diff
    return drift


def _overrides(configs: Configs) -> dict[str, str]:
    return {k: value for k, (value, source) in configs.items() if source == DYNAMIC_TOPIC_CONFIG}


async def _create(admin: AIOKafkaAdminClient, specs: list[NewTopic]) -> list[str]:
    """Names created; a topic another replica created meanwhile counts as there."""
    response = (await admin.create_topics(specs)).to_object()
    errors = {e["topic"]: e for e in response["topic_errors"] if e["error_code"]}
    refused = {t: e for t, e in errors.items() if e["error_code"] != TOPIC_ALREADY_EXISTS}
    if refused:
        raise TopicsError("; ".join(
            f"{t}: not created, {e.get('error_message') or 'error ' + str(e['error_code'])}"
            for t, e in refused.items()
        ))  # fmt: skip
    return [s.name for s in specs if s.name not in errors]


async def _alter(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    responses = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs=c) for name, c in configs.items()]
    )
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise TopicsError(f"{resource['resource_name']}: configs not restored, "
                                  f"{resource['error_message']}")  # fmt: skip


class _admin:  # noqa: N801 - used as `async with _admin(...)`
    def __init__(self, bootstrap: str) -> None:
        self.client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)

    async def __aenter__(self) -> AIOKafkaAdminClient:
        await self.client.start()
        return self.client

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, list[dict]]:
    """Partitions of each topic; waits out the moment after creation when metadata is empty."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + METADATA_WAIT_SECONDS
    while True:
        described = {d["topic"]: d["partitions"] for d in await admin.describe_topics(names)}
        if all(described.get(n) for n in names) or loop.time() > deadline:
            return {n: described.get(n, []) for n in names}
        await asyncio.sleep(0.2)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    return {name: len(parts) for name, parts in (await _describe(admin, names)).items()}


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, Configs]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    configs: dict[str, Configs] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise TopicsError(f"{resource['resource_name']}: {resource['error_message']}")
            configs[resource["resource_name"]] = {
                e["config_names"]: (e["config_value"], e["config_source"])
                for e in resource["config_entries"]
            }
    return configs
