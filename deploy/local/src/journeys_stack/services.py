"""The four services as the local stack runs them: commands, environment, ready URLs."""

from __future__ import annotations

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


# The same entry points the container image runs (`python -m journeys_<service>`).
SERVICE_MODULES = {
    "projector": "journeys_projector",
    "scheduler": "journeys_scheduler",
    "executor": "journeys_executor",
    "api": "journeys_api",
}


def service_processes(
    common_env: dict[str, str], ports: Ports, log_dir: Path
) -> list[ServiceProcess]:
    """Projector first, API last: the API's /ready implies the read side is there."""
    env = {
        "projector": {"PROJECTOR_OPS_PORT": str(ports.projector)},
        "scheduler": {"SCHEDULER_OPS_PORT": str(ports.scheduler)},
        "executor": {"EXECUTOR_OPS_PORT": str(ports.executor)},
        "api": {"API_PORT": str(ports.api)},
    }
    ready = {
        "projector": ports.projector,
        "scheduler": ports.scheduler,
        "executor": ports.executor,
        "api": ports.api,
    }
    return [
        ServiceProcess(
            name=name,
            argv=[sys.executable, "-m", module],
            # Unbuffered: a killed service must not take its last log lines with it.
            env={"PYTHONUNBUFFERED": "1", **common_env, **env[name]},
            ready_url=f"http://127.0.0.1:{ready[name]}/ready",
            log_path=log_dir / f"{name}.log",
        )
        for name, module in SERVICE_MODULES.items()
    ]
