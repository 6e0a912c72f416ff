"""The local infrastructure is real: Kafka transactions, PostgreSQL durability, clean stops."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from journeys_stack.kafka import KafkaBroker
from journeys_stack.ports import free_ports
from journeys_stack.postgres import Postgres
from journeys_stack.supervisor import ServiceProcess, Supervisor

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    """Zombies count as dead: an orphan waits for init to reap it, which can take a while."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


async def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _read_all(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every record up to the end of the (single-partition) topic, as that consumer sees it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        async with asyncio.timeout(30):
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                values += [record.value for record in batch.get(partition, []) if record.value]
        return values
    finally:
        await consumer.stop()


async def test_kafka_broker_serves_transactional_produce_and_read_committed_consume(
    kafka_bootstrap: str,
) -> None:
    topic = f"infra-{uuid.uuid4().hex[:10]}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"infra-{uuid.uuid4().hex[:10]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
    finally:
        await producer.stop()

    committed = await _read_all(kafka_bootstrap, topic, "read_committed")
    everything = await _read_all(kafka_bootstrap, topic, "read_uncommitted")

    assert committed == [b"committed"]
    assert everything == [b"committed", b"aborted"]


def test_postgres_answers_queries_and_keeps_what_was_written(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        conn.execute("create table notes (id int primary key, body text not null)")
        conn.execute("insert into notes values (1, 'written')")
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("select body from notes where id = 1").fetchone() == ("written",)


def test_postgres_restarted_on_the_same_data_dir_keeps_committed_rows(pg_tmp_path: Path) -> None:
    (port,) = free_ports(1)
    postgres = Postgres(pg_tmp_path / "pg", port=port)  # the durable defaults `make run` uses
    with postgres:
        with psycopg.connect(postgres.url) as conn:
            conn.execute("create table kept (id int primary key)")
            conn.execute("insert into kept values (42)")
        first_pid = postgres.pid
    assert first_pid is not None
    assert _wait_dead(first_pid)

    with postgres, psycopg.connect(postgres.url) as conn:
        assert conn.execute("select id from kept").fetchall() == [(42,)]


async def test_kafka_broker_restarted_on_the_same_data_dir_keeps_topics_and_records(
    tmp_path: Path,
) -> None:
    port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path / "kafka", port, controller_port, heap="256m")
    topic = "kept"
    await asyncio.to_thread(broker.start)
    try:
        await _create_topic(broker.bootstrap, topic)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"before restart")
        finally:
            await producer.stop()
        await asyncio.to_thread(broker.stop)
        cluster_id = (broker.log_dir / "meta.properties").read_text()

        # Started from a worker thread on purpose: the broker must outlive that thread.
        await asyncio.to_thread(broker.start)
        await asyncio.sleep(0.5)
        assert broker.running
        assert (broker.log_dir / "meta.properties").read_text() == cluster_id  # not reformatted
        assert await _read_all(broker.bootstrap, topic, "read_committed") == [b"before restart"]
    finally:
        await asyncio.to_thread(broker.stop)


def _http_service(name: str, port: int, log_dir: Path) -> ServiceProcess:
    return ServiceProcess(
        name=name,
        argv=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        env={},
        ready_url=f"http://127.0.0.1:{port}/",
        log_path=log_dir / f"{name}.log",
    )


def test_supervisor_kills_freezes_and_restarts_one_service_and_stops_them_all(
    tmp_path: Path,
) -> None:
    first, second = free_ports(2)
    supervisor = Supervisor(
        [_http_service("first", first, tmp_path), _http_service("second", second, tmp_path)]
    )
    supervisor.start_all(timeout=30)
    try:
        killed = supervisor.pid("first")
        assert killed is not None
        supervisor.kill("first")
        assert not supervisor.running("first")
        assert supervisor.exited() == ["first"]

        supervisor.restart("first", timeout=30)
        assert supervisor.running("first")
        assert supervisor.pid("first") != killed

        supervisor.kill("second", signal.SIGSTOP)
        frozen = supervisor.pid("second")
        assert frozen is not None
    finally:
        started = time.monotonic()
        supervisor.stop_all()
    # A frozen service is thawed so it acts on SIGTERM, rather than waiting for the SIGKILL.
    assert time.monotonic() - started < 10
    assert not _alive(frozen)
    assert supervisor.exited() == []


def test_children_die_with_the_parent_even_when_a_worker_thread_started_them(
    tmp_path: Path,
) -> None:
    parent = textwrap.dedent(
        f"""
        import sys, threading, time
        from pathlib import Path
        from journeys_stack.procs import spawn

        children = []
        def start():
            children.append(spawn(["sleep", "300"], Path({str(tmp_path / "sleep.log")!r}))[0])
        worker = threading.Thread(target=start)
        worker.start()
        worker.join()
        print(children[0].pid, flush=True)
        time.sleep(300)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        child = int(process.stdout.readline())
        time.sleep(0.3)
        assert _alive(child), "the child must outlive the thread that started it"
    finally:
        process.kill()
        process.wait()
    assert _wait_dead(child), "the child must die with its parent"
