"""The six services as the local stack runs them: commands, environment, ready URLs; and the
ingest of other teams' topics, only when `INGEST_SOURCES` names one."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from journeys_stack.supervisor import ServiceProcess


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    executor: int = 8001
    scheduler: int = 8002
    projector: int = 8003
    ingest: int = 8004
    delivery: int = 8005
    importer: int = 8006


# The same entry points the container image runs (`python -m journeys_<service>`).
SERVICE_MODULES = {
    "projector": "journeys_projector",
    "scheduler": "journeys_scheduler",
    "executor": "journeys_executor",
    # Before the API: a message requested right after the API answers ready is sent.
    "delivery": "journeys_delivery",
    "api": "journeys_api",
    # After the API, whose migrations made the tables of uploads it reads.
    "importer": "journeys_api.imports",
}
# Started only when configured: with no topics to read it has nothing to do.
INGEST_MODULE = "journeys_api.ingest"


def ingest_configured(env: dict[str, str]) -> bool:
    """Whether `INGEST_SOURCES` names at least one topic (a malformed value starts the ingest,
    whose settings then say what is wrong)."""
    raw = env.get("INGEST_SOURCES", "").strip()
    try:
        return bool(json.loads(raw)) if raw else False
    except ValueError:
        return True


def service_processes(
    common_env: dict[str, str], ports: Ports, log_dir: Path
) -> list[ServiceProcess]:
    """Projector first, then the API (its /ready implies the read side is there), then the
    importer of the API's uploads."""
    env = {
        "projector": {"PROJECTOR_OPS_PORT": str(ports.projector)},
        "scheduler": {"SCHEDULER_OPS_PORT": str(ports.scheduler)},
        "executor": {"EXECUTOR_OPS_PORT": str(ports.executor)},
        "delivery": {"DELIVERY_OPS_PORT": str(ports.delivery)},
        "api": {"API_PORT": str(ports.api)},
        "importer": {"IMPORTER_OPS_PORT": str(ports.importer)},
    }
    ready = {
        "projector": ports.projector,
        "scheduler": ports.scheduler,
        "executor": ports.executor,
        "delivery": ports.delivery,
        "api": ports.api,
        "importer": ports.importer,
    }
    modules = dict(SERVICE_MODULES)
    if ingest_configured({**os.environ, **common_env}):
        modules["ingest"] = INGEST_MODULE
        env["ingest"] = {"INGEST_OPS_PORT": str(ports.ingest)}
        ready["ingest"] = ports.ingest
    # The console's health page asks each of the others for its readiness.
    others = {name: f"http://127.0.0.1:{port}" for name, port in ready.items() if name != "api"}
    env["api"]["API_CONSOLE_SERVICES"] = json.dumps(others)
    return [
        ServiceProcess(
            name=name,
            argv=[sys.executable, "-m", module],
            # Unbuffered: a killed service must not take its last log lines with it.
            env={"PYTHONUNBUFFERED": "1", **common_env, **env[name]},
            ready_url=f"http://127.0.0.1:{ready[name]}/ready",
            log_path=log_dir / f"{name}.log",
        )
        for name, module in modules.items()
    ]
