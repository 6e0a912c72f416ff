"""The executor as its own process, for integration tests that kill, restart or configure it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from journeys_runtime.topics import Topics
from journeys_stack.ports import free_port
from journeys_stack.supervisor import ServiceProcess, Supervisor


@contextmanager
def executor_process(
    kafka_bootstrap: str, topics: Topics, log_dir: Path, **env: str
) -> Iterator[Supervisor]:
    """One executor on `topics`, ready (`/ready` answers) before this yields; `env` adds
    settings. Stopped on the way out."""
    port = free_port()
    service = ServiceProcess(
        name="executor",
        argv=[sys.executable, "-m", "journeys_executor"],
        env={
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "JOURNEYS_TOPIC_PREFIX": topics.prefix,
            "EXECUTOR_OPS_PORT": str(port),
            **env,
        },
        ready_url=f"http://127.0.0.1:{port}/ready",
        log_path=log_dir / "executor.log",
    )
    supervisor = Supervisor([service])
    supervisor.start_all(timeout=90)
    try:
        yield supervisor
    finally:
        supervisor.stop_all()
