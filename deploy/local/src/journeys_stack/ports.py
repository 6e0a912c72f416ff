"""Free TCP ports on loopback, for tests that run several stacks side by side."""

from __future__ import annotations

import contextlib
import socket
import time


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        # Holding every socket until all are bound keeps the kernel from handing one out twice.
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    return free_ports(1, host)[0]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """Whether host:port accepted a connection within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.1)
    return False
