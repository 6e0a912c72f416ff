"""The topics command and `wait-for-setup` against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from journeys_api import migrations as api_migrations
from journeys_runtime import setup
from journeys_runtime.settings import CommonSettings, TopicSettings
from journeys_runtime.topics import (
    DAY_MS,
    HOUR_MS,
    MissingTopicsError,
    Topics,
    TopicsError,
    ensure_topics,
)

pytestmark = pytest.mark.integration


def settings(bootstrap: str, prefix: str, **more: object) -> TopicSettings:
    values = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "JOURNEYS_TOPIC_PREFIX": prefix,
              "JOURNEYS_ENV": "development", "JOURNEYS_SETUP_TIMEOUT_SECONDS": 3}  # fmt: skip
    return TopicSettings(**{**values, **more})


def fresh_prefix() -> str:
    return f"s{uuid.uuid4().hex[:10]}."


async def topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
        return {
            r["resource_name"]: {e["config_names"]: e["config_value"] for e in r["config_entries"]}
            for response in responses for r in response.to_object()["resources"]
        }  # fmt: skip
    finally:
        await admin.close()


async def settled(bootstrap: str, topic: str, key: str, value: str) -> dict[str, str]:
    """The topic's configs once `key` reads `value`: the controller applies a change, the
    broker that answers DescribeConfigs learns it a moment later."""
    configs: dict[str, str] = {}
    for _ in range(100):
        configs = (await topic_configs(bootstrap, [topic]))[topic]
        if configs[key] == value:
            return configs
        await asyncio.sleep(0.1)
    raise AssertionError(f"{topic}: {key} is {configs.get(key)!r}, never {value!r}")


async def test_apply_creates_then_restores_declared_configs(kafka_bootstrap: str) -> None:
    s = settings(kafka_bootstrap, fresh_prefix())
    t = Topics(s.topic_prefix)
    first = await setup.topics("apply", s)
    assert sorted(first.created) == sorted(t.names)
    assert first.problems == []
    assert first.reconfigured == {}
    configs = await topic_configs(kafka_bootstrap, t.names)
    for name, declared in t.configs().items():
        assert {k: configs[name][k] for k in declared} == declared

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # someone shortens the events' retention by hand, and sets an override of their own
        # AlterConfigs replaces every override: the declared size limit is kept by hand.
        limit = t.configs()[t.events]["max.message.bytes"]
        await admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, t.events,
            configs={"retention.ms": "60000", "retention.bytes": "1073741824",
                     "max.message.bytes": limit})])  # fmt: skip
    finally:
        await admin.close()
    await settled(kafka_bootstrap, t.events, "retention.ms", "60000")
    second = await setup.topics("apply", s)
    assert second.created == []
    assert second.problems == []
    assert second.reconfigured == {t.events: {"retention.ms": "60000"}}  # what it found
    declared = t.configs()[t.events]["retention.ms"]
    restored = await settled(kafka_bootstrap, t.events, "retention.ms", declared)
    assert restored["retention.bytes"] == "1073741824"  # not declared: kept


async def test_apply_declares_the_retention_settings(kafka_bootstrap: str) -> None:
    """Set through the settings, on creation and on topics that exist with other values."""
    prefix = fresh_prefix()
    await setup.topics("apply", settings(kafka_bootstrap, prefix))  # created with the defaults
    s = settings(kafka_bootstrap, prefix, JOURNEYS_EVENTS_RETENTION_DAYS=7,
                 JOURNEYS_CHANGELOG_COMPACTION_LAG_HOURS=2,
                 JOURNEYS_CHANGELOG_TOMBSTONE_RETENTION_HOURS=3)  # fmt: skip
    t = Topics(prefix, s.retention)
    report = await setup.topics("apply", s)
    assert report.problems == []
    assert set(report.reconfigured) == {t.events, t.executor_runs}
    await settled(kafka_bootstrap, t.events, "retention.ms", str(7 * DAY_MS))
    changelog = await settled(kafka_bootstrap, t.executor_runs, "segment.ms", str(2 * HOUR_MS))
    assert changelog["max.compaction.lag.ms"] == str(2 * HOUR_MS)
    assert changelog["delete.retention.ms"] == str(3 * HOUR_MS)
    assert (await setup.topics("verify", s)).problems == []

    created = Topics(fresh_prefix(), s.retention)  # what a service creating them declares
    await ensure_topics(kafka_bootstrap, created, 4)
    configs = await topic_configs(kafka_bootstrap, created.names)
    for name, declared in created.configs().items():
        assert {k: configs[name][k] for k in declared} == declared
    assert configs[created.events]["retention.ms"] == str(7 * DAY_MS)


async def test_apply_reports_a_topic_the_broker_refuses(kafka_bootstrap: str) -> None:
    """Three replicas on a one-broker cluster: the broker's reason, not a later symptom."""
    s = settings(kafka_bootstrap, fresh_prefix(), JOURNEYS_TOPIC_REPLICATION_FACTOR=3)
    with pytest.raises(TopicsError, match="not created"):
        await setup.topics("apply", s)


async def test_apply_never_changes_a_partition_count(kafka_bootstrap: str) -> None:
    prefix = fresh_prefix()
    await setup.topics("apply", settings(kafka_bootstrap, prefix))
    report = await setup.topics("apply", settings(kafka_bootstrap, prefix, JOURNEYS_PARTITIONS=6))
    assert len(report.problems) == len(Topics(prefix).names)
    assert all("4 partitions, 6 declared" in p for p in report.problems)
    await ensure_topics(kafka_bootstrap, Topics(prefix), 4, create=False)  # still 4 each


def test_topics_command_exit_codes(kafka_bootstrap: str) -> None:
    """The Job's command: 0 when the topics match, 1 when they cannot be made to."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOURNEYS_ENV": "development",
           "JOURNEYS_TOPIC_PREFIX": fresh_prefix(),
           "JOURNEYS_SETUP_TIMEOUT_SECONDS": "2"}  # fmt: skip

    def topics(action: str, **more: str) -> int:
        argv = [sys.executable, "-m", "journeys_runtime", "topics", action]
        done = subprocess.run(argv, env={**env, **more}, capture_output=True, timeout=120)
        return done.returncode

    assert topics("verify") == 1  # nothing there yet, and verify creates nothing
    assert topics("apply") == 0
    assert topics("verify") == 0
    assert topics("apply", JOURNEYS_PARTITIONS="6") == 1
    assert topics("verify", JOURNEYS_TOPIC_MIN_INSYNC_REPLICAS="2",
                  JOURNEYS_TOPIC_REPLICATION_FACTOR="2") == 1  # fmt: skip


async def test_wait_for_setup_waits_for_topics_and_migrations(
    kafka_bootstrap: str, fresh_database: str
) -> None:
    prefix = fresh_prefix()
    s = CommonSettings(**{"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOURNEYS_ENV": "development",
                          "JOURNEYS_TOPIC_PREFIX": prefix,
                          "JOURNEYS_SETUP_TIMEOUT_SECONDS": 2})  # fmt: skip
    with pytest.raises(MissingTopicsError):
        await setup.wait_for_setup(s, fresh_database, api_migrations.HERE)
    await setup.topics("apply", settings(kafka_bootstrap, prefix))
    with pytest.raises(setup.NotSetUpError, match="migrations pending"):
        await setup.wait_for_setup(s, fresh_database, api_migrations.HERE)
    api_migrations.apply(fresh_database)
    await setup.wait_for_setup(s, fresh_database, api_migrations.HERE)
