"""A single-node Apache Kafka (KRaft, broker and controller in one) from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from journeys_runtime.kafka import REQUEST_MAX_BYTES
from journeys_stack.aio import run_blocking
from journeys_stack.paths import KAFKA_LOG4J, KAFKA_POM, kafka_libs_dir
from journeys_stack.ports import port_open
from journeys_stack.procs import Process, spawn, stop, tail

log = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
KAFKA_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_MARKER = f".resolved-{KAFKA_VERSION}"
_MIN_HEAP_MB = 256


class KafkaStartError(RuntimeError):
    pass


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise jar resolution between processes sharing one cache (parallel CI jobs)."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolved(libs: Path) -> bool:
    return (libs / _MARKER).exists() and (libs / KAFKA_JAR).exists()


def ensure_jars(libs: Path | None = None) -> Path:
    """Resolve the broker jars through Maven once; later calls reuse them. Returns the dir."""
    libs = (libs or kafka_libs_dir()).resolve()
    if _resolved(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaStartError(
            "Maven (mvn) is not on PATH: it resolves the Kafka jars from Maven Central. "
            "Install Maven 3, or point KAFKA_BOOTSTRAP_SERVERS at a running broker."
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(libs.parent / f".{libs.name}.lock"):
        if _resolved(libs):
            return libs
        # Jars of another Kafka version on the same classpath would mix at random.
        libs.mkdir(parents=True, exist_ok=True)
        for jar in libs.glob("*.jar"):
            jar.unlink()
        started = time.monotonic()
        log.info("resolving Kafka %s jars from Maven Central into %s", KAFKA_VERSION, libs)
        argv = [mvn, "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}"]  # fmt: skip
        result = subprocess.run(  # noqa: S603 - fixed argv
            argv, capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0 or not (libs / KAFKA_JAR).exists():
            output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise KafkaStartError(f"Maven could not resolve the Kafka jars:\n{output}")
        (libs / _MARKER).write_text(f"{KAFKA_VERSION}\n")
        log.info("Kafka jars resolved in %.1fs", time.monotonic() - started)
    return libs


def _megabytes(size: str) -> int:
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    suffix = size[-1].lower()
    if suffix in units:
        return int(float(size[:-1]) * units[suffix])
    return int(size) // (1024 * 1024)


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def _metadata_answers(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


class KafkaBroker:
    """One broker-and-controller; data in data_dir survives restarts, stop() leaves nothing."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        extra_config: dict[str, str] | None = None,
        libs_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.extra_config = extra_config or {}
        self.libs_dir = libs_dir
        self._process: Process | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def server_properties(self) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions: each one is a log to create and load on 2 cores.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            # Thread pools sized for a laptop, not a 32-core broker.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "2",
            # The size limits the producers and topics use (`kafka.REQUEST_MAX_BYTES`): the
            # broker's default is a few bytes over 1 MiB, less than a full record with headers.
            "message.max.bytes": str(REQUEST_MAX_BYTES),
            "replica.fetch.max.bytes": str(REQUEST_MAX_BYTES),
            # The cleaner allocates this on the heap at start-up; 128 MiB by default.
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
            **self.extra_config,
        }

    def _write_config(self) -> None:
        lines = [f"{key}={value}\n" for key, value in self.server_properties().items()]
        self.config_path.write_text("".join(lines))

    def _java(self, libs: Path, jvm: list[str], *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaStartError(
                "Java is not on PATH: the local Kafka broker needs Java 17 or newer. "
                "Install it, or point KAFKA_BOOTSTRAP_SERVERS at a running broker."
            )
        return [java, *jvm, f"-Dlog4j.configuration=file:{KAFKA_LOG4J}", "-cp", f"{libs}/*",
                *args]  # fmt: skip

    def _format_once(self, libs: Path) -> None:
        if (self.log_dir / "meta.properties").exists():
            return
        # `--cluster-id=<id>` in one argument: one id in 64 starts with "-", which the
        # tool's parser would take for an option (a flaky CI run showed it).
        cluster = f"--cluster-id={new_cluster_id()}"
        argv = self._java(libs, ["-Xmx128m"], "kafka.tools.StorageTool", "format",
                          cluster, "-c", str(self.config_path))  # fmt: skip
        result = subprocess.run(  # noqa: S603 - fixed argv
            argv, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise KafkaStartError(f"formatting {self.log_dir} failed:\n{result.stdout}"
                                  f"{result.stderr}")  # fmt: skip

    def start(self, timeout: float = 60) -> str:
        """Start the broker and wait until it answers metadata requests; returns bootstrap."""
        if self.running:
            return self.bootstrap
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise KafkaStartError(f"127.0.0.1:{port} is already in use: is a broker running?")
        libs = ensure_jars(self.libs_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_once(libs)
        heap = _megabytes(self.heap)
        jvm = [f"-Xms{min(heap, _MIN_HEAP_MB)}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
               "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
               "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
               "-Djava.awt.headless=true"]  # fmt: skip
        argv = self._java(libs, jvm, "kafka.Kafka", str(self.config_path))
        started = time.monotonic()
        self._process, self._log_file = spawn(argv, self.log_path, cwd=self.data_dir)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        log.info("Kafka ready on %s in %.1fs (pid %s)", self.bootstrap,
                 time.monotonic() - started, self.pid)  # fmt: skip
        return self.bootstrap

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.running:
                raise KafkaStartError(
                    f"Kafka exited during start-up; last lines of {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )
            if port_open(self.port) and run_blocking(_metadata_answers(self.bootstrap)):
                return
            time.sleep(0.2)
        raise KafkaStartError(
            f"Kafka did not answer on {self.bootstrap} in time; last lines of {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after timeout seconds."""
        if self._process is not None:
            code = stop(self._process, timeout=timeout)
            log.info("Kafka stopped (exit code %s)", code)
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
