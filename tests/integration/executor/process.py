"""The executor as its own process, for integration tests that kill, restart or configure it,
with a delivery service beside it: the executor sends no message itself, so a run goes past a
MESSAGE node only once the delivery service has sent it (the console channel) and reported."""

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
    kafka_bootstrap: str, topics: Topics, log_dir: Path, *, delivery: bool = True, **env: str
) -> Iterator[Supervisor]:
    """One executor and (unless `delivery` is false: the test runs its own) one delivery
    service on `topics`, both ready (`/ready` answers) before this yields; `env` adds settings
    to both. Stopped on the way out."""
    port, delivery_port = free_port(), free_port()
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "JOURNEYS_TOPIC_PREFIX": topics.prefix}
    service = ServiceProcess(
        name="executor",
        argv=[sys.executable, "-m", "journeys_executor"],
        env={**common, "EXECUTOR_OPS_PORT": str(port), **env},
        ready_url=f"http://127.0.0.1:{port}/ready",
        log_path=log_dir / "executor.log",
    )
    sender = ServiceProcess(
        name="delivery",
        argv=[sys.executable, "-m", "journeys_delivery"],
        env={**common, "DELIVERY_OPS_PORT": str(delivery_port), **env},
        ready_url=f"http://127.0.0.1:{delivery_port}/ready",
        log_path=log_dir / "delivery.log",
    )
    supervisor = Supervisor([service, sender] if delivery else [service])
    supervisor.start_all(timeout=90)
    try:
        yield supervisor
    finally:
        supervisor.stop_all()
