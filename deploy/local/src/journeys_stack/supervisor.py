"""Start the services as child processes, wait for their health, kill or restart one."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from journeys_stack.procs import Process, signal_group, spawn, stop, tail

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0


@dataclass
class ServiceProcess:
    """How to run one service; `ready_url` answers 200 once it can do its job."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    log_path: Path
    process: Process | None = field(default=None, repr=False)
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ServiceStartError(RuntimeError):
    pass


class Supervisor:
    """Services start in list order and stop in reverse order."""

    def __init__(self, services: list[ServiceProcess]) -> None:
        self.services = {s.name: s for s in services}

    def start_all(self, timeout: float = 90) -> None:
        """Spawn every service, then wait for each to be ready; on failure stop them all."""
        try:
            for service in self.services.values():
                self._spawn(service)
            deadline = time.monotonic() + timeout
            for service in self.services.values():
                self.wait_ready(service.name, max(deadline - time.monotonic(), 1))
        except BaseException:
            self.stop_all()
            raise

    def start(self, name: str, timeout: float = 90) -> None:
        """Start one stopped (or killed) service and wait until it is ready."""
        service = self.services[name]
        if not service.running:
            self._close_log(service)
            self._spawn(service)
        self.wait_ready(name, timeout)

    def _spawn(self, service: ServiceProcess) -> None:
        service.process, service.log_file = spawn(service.argv, service.log_path, env=service.env)
        log.info("started %s (pid %s)", service.name, service.process.pid)

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        service = self.services[name]
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if not service.running:
                    raise ServiceStartError(
                        f"{name} exited during start-up; last lines of {service.log_path}:\n"
                        f"{tail(service.log_path)}"
                    )
                try:
                    if client.get(service.ready_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise ServiceStartError(
            f"{name} not ready at {service.ready_url} after {timeout:.0f}s; last lines of "
            f"{service.log_path}:\n{tail(service.log_path)}"
        )

    def pid(self, name: str) -> int | None:
        process = self.services[name].process
        return process.pid if process is not None else None

    def running(self, name: str) -> bool:
        return self.services[name].running

    def exited(self) -> list[str]:
        """Services that were started and are no longer running."""
        return [s.name for s in self.services.values() if s.process is not None and not s.running]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send sig (SIGKILL, SIGSTOP, SIGCONT...) to one service; SIGKILL waits for the end."""
        service = self.services[name]
        if not service.running or service.process is None:
            return
        if sig == signal.SIGKILL:
            signal_group(service.process, sig)
            service.process.wait()
        else:
            service.process.send_signal(sig)
        log.info("sent %s to %s", signal.Signals(sig).name, name)

    def restart(self, name: str, timeout: float = 90) -> None:
        """Stop one service (SIGTERM, then SIGKILL) if it runs, start it, wait until ready."""
        service = self.services[name]
        if service.process is not None:
            stop(service.process, timeout=STOP_TIMEOUT)
        self.start(name, timeout)

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        service = self.services[name]
        if service.process is not None:
            code = stop(service.process, timeout=timeout)
            log.info("stopped %s (exit code %s)", name, code)
            service.process = None
        self._close_log(service)

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> None:
        """Reverse order: the API goes before what it reads, the projector last."""
        for name in reversed(list(self.services)):
            self.stop(name, timeout)

    @staticmethod
    def _close_log(service: ServiceProcess) -> None:
        if service.log_file is not None:
            service.log_file.close()
            service.log_file = None
