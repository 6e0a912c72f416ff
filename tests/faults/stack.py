"""A fresh stack (own database, topic prefix and ports) on shared Kafka and PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from journeys_runtime.topics import Topics
from journeys_stack.ports import free_port
from journeys_stack.services import Ports
from journeys_stack.stack import Stack, StackConfig
from journeys_stack.supervisor import Supervisor


@dataclass
class FaultStack:
    api_url: str
    kafka_bootstrap: str
    database_url: str
    topics: Topics
    supervisor: Supervisor
    log_dir: Path

    @property
    def executor_logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("executor*.log"))


@contextlib.contextmanager
def fault_stack(kafka_bootstrap: str, admin_url: str, work_dir: Path) -> Iterator[FaultStack]:
    name = f"faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    data_dir = work_dir / name
    ports = Ports(api=free_port(), executor=free_port(), scheduler=free_port(),
                  projector=free_port())  # fmt: skip
    config = StackConfig(data_dir=data_dir, ports=ports, topic_prefix=f"{name}.",
                         kafka_bootstrap=kafka_bootstrap, database_url=database_url)  # fmt: skip
    local = Stack(config)
    local.start()
    assert local.supervisor is not None
    try:
        yield FaultStack(
            api_url=f"http://127.0.0.1:{ports.api}",
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            topics=local.topics,
            supervisor=local.supervisor,
            log_dir=data_dir / "logs",
        )
    finally:
        local.stop()
