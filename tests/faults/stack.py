"""A fresh stack (own database, topic prefix and ports) on shared Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from psycopg import sql

from journeys_runtime.topics import Topics
from journeys_stack.kafka import KafkaBroker
from journeys_stack.ports import free_port, free_ports
from journeys_stack.services import Ports
from journeys_stack.stack import Stack, StackConfig
from journeys_stack.supervisor import Supervisor
from tests.faults.inject import Injected
from tests.faults.proxy import TcpProxy


@dataclass
class FaultStack:
    api_url: str
    api_key: str
    kafka_bootstrap: str
    database_url: str
    topics: Topics
    supervisor: Supervisor
    log_dir: Path
    kafka_proxy: TcpProxy | None = None
    database_proxy: TcpProxy | None = None
    injected: dict[str, Injected] = field(default_factory=dict)  # run id -> what was put in
    outage_seconds: float = 30.0
    """How long scenarios 8a and 8b cut their dependency off."""

    @property
    def delivery_logs(self) -> list[Path]:
        """Where the console channel says what it sent."""
        return sorted(self.log_dir.glob("delivery*.log"))


@contextlib.contextmanager
def fault_stack(
    kafka_bootstrap: str,
    admin_url: str,
    work_dir: Path,
    *,
    proxy_kafka: bool = False,
    proxy_database: bool = False,
    service_env: dict[str, str] | None = None,
) -> Iterator[FaultStack]:
    """`proxy_kafka` gives the stack a broker of its own that it reaches (and that advertises
    itself) only through a proxy; `proxy_database` puts a proxy in front of PostgreSQL;
    `service_env` is added to every service's environment, `{topic_prefix}` in its values
    replaced by the stack's topic prefix."""
    with contextlib.ExitStack() as resources:
        name = f"faults_{uuid.uuid4().hex[:10]}"
        kafka_proxy = database_proxy = None
        if proxy_kafka:
            kafka_proxy, kafka_bootstrap = _proxied_broker(resources, work_dir / f"{name}-kafka")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database_url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
        if proxy_database:
            direct = psycopg.conninfo.conninfo_to_dict(database_url)
            database_proxy = resources.enter_context(TcpProxy(int(direct.get("port") or 5432)))
            database_url = psycopg.conninfo.make_conninfo(
                database_url, host="127.0.0.1", port=database_proxy.port
            )
        yield from _stack(name, kafka_bootstrap, database_url, work_dir, kafka_proxy,
                          database_proxy, service_env or {})  # fmt: skip


def _proxied_broker(resources: contextlib.ExitStack, data_dir: Path) -> tuple[TcpProxy, str]:
    broker_port, controller_port = free_ports(2)
    proxy = resources.enter_context(TcpProxy(broker_port))
    broker = KafkaBroker(
        data_dir, broker_port, controller_port, heap="256m",
        extra_config={"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"},
    )  # fmt: skip
    broker.start()
    resources.callback(broker.stop)
    return proxy, f"127.0.0.1:{proxy.port}"


def _stack(
    name: str,
    kafka_bootstrap: str,
    database_url: str,
    work_dir: Path,
    kafka_proxy: TcpProxy | None,
    database_proxy: TcpProxy | None,
    service_env: dict[str, str],
) -> Iterator[FaultStack]:
    data_dir = work_dir / name
    ports = Ports(api=free_port(), executor=free_port(), scheduler=free_port(),
                  projector=free_port(), ingest=free_port(), delivery=free_port(),
                  importer=free_port())  # fmt: skip
    service_env = {k: v.replace("{topic_prefix}", f"{name}.") for k, v in service_env.items()}
    if "INGEST_SOURCES" in service_env:  # other teams' topics exist before the ingest starts
        sources = json.loads(service_env["INGEST_SOURCES"])
        asyncio.run(_create_topics(kafka_bootstrap, [s["topic"] for s in sources]))
    config = StackConfig(data_dir=data_dir, ports=ports, topic_prefix=f"{name}.",
                         kafka_bootstrap=kafka_bootstrap, database_url=database_url,
                         service_env=service_env)  # fmt: skip
    local = Stack(config)
    local.start()
    assert local.supervisor is not None
    try:
        yield FaultStack(
            api_url=f"http://127.0.0.1:{ports.api}",
            api_key=local.api_key,
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            topics=local.topics,
            supervisor=local.supervisor,
            log_dir=data_dir / "logs",
            kafka_proxy=kafka_proxy,
            database_proxy=database_proxy,
        )
    finally:
        local.stop()


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(n, num_partitions=4, replication_factor=1)
                                       for n in names])  # fmt: skip
    finally:
        await admin.close()
