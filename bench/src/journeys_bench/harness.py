"""Where a benchmark runs: shared Kafka and PostgreSQL, a fresh namespace per benchmark.

Each benchmark gets its own topic prefix and database, so nothing one leaves behind (events,
timers, offsets) changes what the next one measures, and starts only the services it
measures; the rest of the machine's two cores stay out of its way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

from journeys_runtime.topics import Topics
from journeys_stack.aio import run_blocking
from journeys_stack.ports import free_ports
from journeys_stack.services import Ports, service_processes
from journeys_stack.stack import Stack, StackConfig
from journeys_stack.supervisor import ServiceProcess, Supervisor

log = logging.getLogger(__name__)

PATIENT_KEY_SECRET = "bench-patient-key-secret"  # noqa: S105 (a throwaway namespace's key)


@dataclass
class Infra:
    kafka_bootstrap: str
    database_url: str
    data_dir: Path
    partitions: int


@contextlib.contextmanager
def infra(data_dir: Path, partitions: int = 4) -> Iterator[Infra]:
    """Kafka and PostgreSQL: those of KAFKA_BOOTSTRAP_SERVERS/DATABASE_URL, else started here
    (as `make run` starts them, on free ports so a running `make run` is left alone)."""
    kafka_port, controller_port, pg_port = free_ports(3)
    config = StackConfig(
        data_dir=data_dir, kafka_port=kafka_port, kafka_controller_port=controller_port,
        kafka_heap=os.environ.get("KAFKA_HEAP", "512m"), postgres_port=pg_port,
        kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        database_url=os.environ.get("DATABASE_URL") or None, partitions=partitions,
    )  # fmt: skip
    stack = Stack(config)
    try:
        stack.start_infra()
        yield Infra(stack.kafka_bootstrap, stack.database_url, data_dir, partitions)
    finally:
        stack.stop()


@dataclass
class Deployment:
    """One namespace's topics and database, and the services started on them."""

    name: str
    topics: Topics
    kafka_bootstrap: str
    database_url: str
    stack: Stack
    supervisors: list[Supervisor]
    partitions: int

    @property
    def ports(self) -> Ports:
        return self.stack.config.ports

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def api_urls(self) -> list[str]:
        """Every API replica's base URL, the first's (`api_url`) first."""
        return [
            service.ready_url.removesuffix("/ready")
            for supervisor in self.supervisors
            for name, service in supervisor.services.items()
            if name == "api" or name.startswith("api-")
        ]

    def pids(self) -> dict[str, int]:
        return {
            name: pid
            for supervisor in self.supervisors
            for name in supervisor.services
            if (pid := supervisor.pid(name)) is not None
        }

    def start(self, services: dict[str, int]) -> None:
        """Start more services (name -> replicas) on this namespace and wait until ready. An
        executor comes with a delivery service (unless named): the executor sends no message
        itself, so no run would get past a MESSAGE node without one."""
        if services.get("executor") and "delivery" not in services:
            services = {**services, "delivery": 1}
        supervisor = Supervisor(_processes(self.stack, services))
        self.supervisors.append(supervisor)
        supervisor.start_all(timeout=180)

    def stop(self, name: str) -> None:
        for supervisor in self.supervisors:
            if name in supervisor.services:
                supervisor.stop(name)

    def stop_all(self) -> None:
        for supervisor in reversed(self.supervisors):
            supervisor.stop_all()


@contextlib.contextmanager
def deployment(
    infra: Infra,
    name: str,
    services: dict[str, int],
    env: dict[str, str] | None = None,
    partitions: int | None = None,
) -> Iterator[Deployment]:
    """A fresh namespace with `services` (name -> replicas) running and ready on it."""
    namespace = f"bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    partitions = partitions or infra.partitions
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(namespace)))
    database_url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=namespace)
    topics = Topics(f"{namespace}.")
    ports = Ports(*free_ports(7))
    config = StackConfig(
        data_dir=infra.data_dir / namespace, topic_prefix=topics.prefix, partitions=partitions,
        kafka_bootstrap=infra.kafka_bootstrap, database_url=database_url, ports=ports,
        service_env={"JOURNEYS_PATIENT_KEY_SECRET": PATIENT_KEY_SECRET, **(env or {})},
    )  # fmt: skip
    stack = Stack(config)
    dep = Deployment(namespace, topics, infra.kafka_bootstrap, database_url, stack, [],
                     partitions)  # fmt: skip
    try:
        stack.prepare()
        dep.start(services)
        yield dep
    finally:
        dep.stop_all()
        _drop(infra, namespace, topics)


def _processes(stack: Stack, services: dict[str, int]) -> list[ServiceProcess]:
    """The services named, in `make run`'s order; replicas after the first on other ports."""
    config = stack.config
    chosen = []
    for process in service_processes(stack.service_env(), config.ports,
                                     config.data_dir / "logs"):  # fmt: skip
        replicas = services.get(process.name, 0)
        chosen += [process] if replicas else []
        for replica in range(2, replicas + 1):
            (port,) = free_ports(1)
            # The API serves its probes on its own port; the others on an ops port.
            port_var = "API_PORT" if process.name == "api" else f"{process.name.upper()}_OPS_PORT"
            chosen.append(
                dataclasses.replace(
                    process,
                    name=f"{process.name}-{replica}",
                    env={**process.env, port_var: str(port)},
                    ready_url=f"http://127.0.0.1:{port}/ready",
                    log_path=process.log_path.with_name(f"{process.name}-{replica}.log"),
                )
            )
    return chosen


def _drop(infra: Infra, namespace: str, topics: Topics) -> None:
    """Give the disk back: a million-timer namespace is hundreds of megabytes."""
    with contextlib.suppress(Exception):
        run_blocking(_delete_topics(infra.kafka_bootstrap, topics))
    with contextlib.suppress(Exception), psycopg.connect(infra.database_url,
                                                         autocommit=True) as conn:  # fmt: skip
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(namespace)))  # fmt: skip


async def _delete_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t.topic for t in topics.specs(1)]
        await admin.delete_topics(names)
    finally:
        await admin.close()
