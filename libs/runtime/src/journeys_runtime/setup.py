"""Deploy-time setup: the topics command, and the wait each service's pod does before it starts.

On Kubernetes a Job applies the topics and a Job the migrations; every service's pod first
runs `python -m journeys_<service> wait-for-setup`, so a new version never starts against
topics or tables it does not know, however the Jobs and Deployments are ordered.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

import psycopg
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from journeys_runtime import migrations
from journeys_runtime.logs import describe_error
from journeys_runtime.settings import CommonSettings, TopicSettings
from journeys_runtime.topics import (
    MissingTopicsError,
    TopicReport,
    Topics,
    TopicsError,
    apply_topics,
    ensure_topics,
    verify_topics,
)

log = logging.getLogger(__name__)

Action = Literal["apply", "verify"]


class NotSetUpError(Exception):
    """Setup has not happened yet; worth waiting for."""


def _retrying(settings: CommonSettings, *also: type[BaseException]) -> AsyncRetrying:
    """Keep trying through an unreachable Kafka or PostgreSQL until the setup timeout."""
    return AsyncRetrying(
        stop=stop_after_delay(settings.setup_timeout_seconds),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type((KafkaError, OSError, psycopg.OperationalError, *also)),
        before_sleep=_waiting,
        reraise=True,
    )


def _explain(exc: BaseException) -> dict[str, str]:
    """Our own errors say what is missing; any other error is told by type only."""
    if isinstance(exc, NotSetUpError | TopicsError):
        return {"problem": str(exc)}
    return {"error": describe_error(exc)}


def _waiting(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    retry_in = state.next_action.sleep if state.next_action is not None else None
    log.warning(
        "setup not done yet; retrying",
        extra={"retry_in": retry_in, **(_explain(exc) if exc is not None else {})},
    )


async def topics(action: Action, settings: TopicSettings) -> TopicReport:
    """`apply` creates and reconfigures; `verify` waits until the topics match, changing none."""
    t = Topics(settings.topic_prefix, settings.retention)
    args = (settings.kafka_bootstrap_servers, t, settings.partitions,
            settings.topic_replication_factor, settings.topic_min_insync_replicas)  # fmt: skip
    async for attempt in _retrying(settings, NotSetUpError):
        with attempt:
            if action == "apply":
                return await apply_topics(*args)
            report = await verify_topics(*args)
            if report.problems:
                raise NotSetUpError("; ".join(report.problems))
            return report
    raise AssertionError("unreachable: tenacity re-raises the last error")


def topics_main(action: Action, settings: TopicSettings) -> int:
    try:
        report = asyncio.run(topics(action, settings))
    except (TopicsError, NotSetUpError) as exc:
        log.error("topics do not match the declaration", extra=_explain(exc))
        return 1
    except Exception as exc:  # Kafka still unreachable when the setup timeout ran out
        log.error("topics not applied", extra=_explain(exc))
        return 1
    for name in report.created:
        log.info("topic created", extra={"topic": name})
    for name, was in report.reconfigured.items():
        log.info("topic config restored", extra={"topic": name, "was": was})
    for problem in report.problems:
        log.error("topic differs from the declaration", extra={"problem": problem})
    if report.problems:
        return 1
    log.info("topics match the declaration", extra={"topics": Topics(settings.topic_prefix).names})
    return 0


async def wait_for_setup(
    settings: CommonSettings, database_url: str | None = None, sql: Path | None = None
) -> None:
    """Until the topics exist (co-partitioned) and, given a database, no migration is pending."""
    t = Topics(settings.topic_prefix)
    async for attempt in _retrying(settings, MissingTopicsError, NotSetUpError):
        with attempt:
            await ensure_topics(
                settings.kafka_bootstrap_servers, t, settings.partitions, create=False
            )
            if database_url is not None and sql is not None:
                waiting = await asyncio.to_thread(migrations.pending, database_url, sql)
                if waiting:
                    raise NotSetUpError(f"migrations pending: {', '.join(waiting)}")


def wait_main(
    settings: CommonSettings, database_url: str | None = None, sql: Path | None = None
) -> int:
    try:
        asyncio.run(wait_for_setup(settings, database_url, sql))
    except Exception as exc:
        log.error("setup not done in time", extra=_explain(exc))
        return 1
    log.info("setup done: topics and migrations in place")
    return 0
