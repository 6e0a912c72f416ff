"""The whole local stack: infrastructure, topics, migrations, services; stopped as one."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from journeys_runtime.settings import CommonSettings
from journeys_runtime.topics import Retention, Topics, ensure_topics
from journeys_stack.aio import run_blocking
from journeys_stack.inbox import DevInbox
from journeys_stack.kafka import KafkaBroker
from journeys_stack.postgres import Postgres
from journeys_stack.services import Ports, service_processes
from journeys_stack.supervisor import Supervisor

log = logging.getLogger(__name__)

MIGRATING_SERVICES = ("journeys_projector", "journeys_scheduler", "journeys_api")


@dataclass
class StackConfig:
    data_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "512m"
    postgres_port: int = 5432
    postgres_settings: dict[str, str] = field(default_factory=dict)
    ports: Ports = field(default_factory=Ports)
    topic_prefix: str = ""
    partitions: int = 4
    retention: Retention = field(default_factory=Retention)
    kafka_bootstrap: str | None = None  # use this broker instead of starting one
    database_url: str | None = None  # use this database instead of starting one
    service_env: dict[str, str] = field(default_factory=dict)
    # The API's development key (every scope); a fresh one each start unless given.
    api_key: str | None = None
    # `make run`'s development inbox (SMTP, webhook and SMS on loopback, `logs/inbox.log`),
    # which the delivery service's channels then send to; None: no inbox.
    inbox_ports: tuple[int, int] | None = None


class Stack:
    """Everything `make run` needs, started in dependency order and stopped in reverse."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.kafka: KafkaBroker | None = None
        self.postgres: Postgres | None = None
        self.supervisor: Supervisor | None = None
        self.kafka_bootstrap = config.kafka_bootstrap or ""
        self.database_url = config.database_url or ""
        self.topics = Topics(config.topic_prefix, config.retention)
        self.api_key = config.api_key or f"dev-{secrets.token_urlsafe(24)}"
        self.inbox: DevInbox | None = None
        if config.inbox_ports is not None:
            smtp, http = config.inbox_ports
            self.inbox = DevInbox(config.data_dir / "logs" / "inbox.log", smtp, http)

    def start_infra(self) -> None:
        """PostgreSQL and Kafka, each unless the config points at one already running."""
        c = self.config
        if not self.database_url:
            self.postgres = Postgres(c.data_dir / "postgres", c.postgres_port,
                                     settings=c.postgres_settings)  # fmt: skip
            self.database_url = self.postgres.start()
        if not self.kafka_bootstrap:
            self.kafka = KafkaBroker(c.data_dir / "kafka", c.kafka_port, c.kafka_controller_port,
                                     heap=c.kafka_heap)  # fmt: skip
            self.kafka_bootstrap = self.kafka.start()

    def prepare(self) -> None:
        """Create the topics and apply every service's migrations; both are idempotent."""
        run_blocking(ensure_topics(self.kafka_bootstrap, self.topics, self.config.partitions))
        for module in MIGRATING_SERVICES:
            importlib.import_module(f"{module}.migrations").apply(self.database_url)

    def service_env(self) -> dict[str, str]:
        return {
            # Explicitly: unset means production rules, which refuse the development key and
            # the placeholder patient-key secret this stack relies on.
            "JOURNEYS_ENV": "development",
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "JOURNEYS_TOPIC_PREFIX": self.config.topic_prefix,
            "JOURNEYS_PARTITIONS": str(self.config.partitions),
            "API_AUTH_DEV_KEY": self.api_key,
            # The inbox's channel settings, but not over a developer's own (to a real provider).
            **{
                k: v
                for k, v in (self.inbox.settings() if self.inbox else {}).items()
                if k not in os.environ
            },
            **self.config.service_env,
        }

    def start_services(self, timeout: float = 120) -> None:
        logs = self.config.data_dir / "logs"
        if self.inbox is not None:
            self.inbox.start()
        self.supervisor = Supervisor(service_processes(self.service_env(), self.config.ports, logs))
        self.supervisor.start_all(timeout)

    def start(self) -> None:
        try:
            self.start_infra()
            self.prepare()
            self.start_services()
        except BaseException:
            self.stop()
            raise

    def exited(self) -> list[str]:
        """What this stack started that is no longer running."""
        dead = self.supervisor.exited() if self.supervisor is not None else []
        if self.kafka is not None and not self.kafka.running:
            dead.append("kafka")
        if self.postgres is not None and not self.postgres.running:
            dead.append("postgres")
        return dead

    def stop(self) -> None:
        """Services first, then Kafka, then PostgreSQL; one failing stop does not skip the rest."""
        with contextlib.ExitStack() as stops:
            if self.postgres is not None:
                stops.callback(self.postgres.stop)
            if self.kafka is not None:
                stops.callback(self.kafka.stop)
            if self.inbox is not None:
                stops.callback(self.inbox.stop)
            if self.supervisor is not None:
                stops.callback(self.supervisor.stop_all)


def config_from_env(data_dir: Path) -> StackConfig:
    env = os.environ
    return StackConfig(
        data_dir=data_dir,
        kafka_port=int(env.get("KAFKA_PORT", "9092")),
        kafka_controller_port=int(env.get("KAFKA_CONTROLLER_PORT", "9093")),
        kafka_heap=env.get("KAFKA_HEAP", "512m"),
        postgres_port=int(env.get("POSTGRES_PORT", "5432")),
        ports=Ports(
            api=int(env.get("API_PORT", "8000")),
            executor=int(env.get("EXECUTOR_OPS_PORT", "8001")),
            scheduler=int(env.get("SCHEDULER_OPS_PORT", "8002")),
            projector=int(env.get("PROJECTOR_OPS_PORT", "8003")),
            ingest=int(env.get("INGEST_OPS_PORT", "8004")),
            delivery=int(env.get("DELIVERY_OPS_PORT", "8005")),
            importer=int(env.get("IMPORTER_OPS_PORT", "8006")),
        ),
        inbox_ports=None
        if env.get("INBOX", "on") == "off"
        else (
            int(env.get("INBOX_SMTP_PORT", "1025")),
            int(env.get("INBOX_HTTP_PORT", "8025")),
        ),
        topic_prefix=env.get("JOURNEYS_TOPIC_PREFIX", ""),
        partitions=int(env.get("JOURNEYS_PARTITIONS", "4")),
        # The topics are created here, before any service: as the services would create them.
        retention=CommonSettings(JOURNEYS_ENV="development").retention,
        kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        database_url=env.get("DATABASE_URL") or None,
        # A developer's stack shows what the console channel sends; nowhere else does.
        service_env={
            "DELIVERY_CONSOLE_REVEAL_PATIENT_DATA": env.get(
                "DELIVERY_CONSOLE_REVEAL_PATIENT_DATA", "true"
            ),
        },
    )
