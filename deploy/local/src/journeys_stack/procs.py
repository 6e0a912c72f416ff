"""Child processes that die with their parent and stop politely, then firmly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1

Process = subprocess.Popen[bytes]


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None  # elsewhere only the explicit stop path cleans up
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        # The parent may have died between fork and prctl: nobody would ever send the signal.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class _Spawner:
    """One thread that lives as long as the process and forks every child.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process: a
    child started from a short-lived thread (asyncio.to_thread, a thread pool) would be killed
    as soon as that thread ends. Forking from a daemon thread ties children to the process.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], Process], Future[Process]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, start: Callable[[], Process]) -> Process:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        result: Future[Process] = Future()
        self._requests.put((start, result))
        return result.result()

    def _serve(self) -> None:
        while True:
            start, result = self._requests.get()
            try:
                result.set_result(start())
            except BaseException as exc:
                result.set_exception(exc)


_spawner = _Spawner()


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> tuple[Process, IO[bytes]]:
    """Start argv in its own process group, stdout and stderr appended to log_path.

    Its own group keeps a terminal's Ctrl-C away from it, so the parent decides the order in
    which things stop; PR_SET_PDEATHSIG kills it if the parent dies without stopping it.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    preexec = _die_with_parent(os.getpid())

    def start() -> Process:
        return subprocess.Popen(  # noqa: S603 - argv is built by this package, never from input
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            user=user,
            process_group=0,
            preexec_fn=preexec,
        )

    try:
        return _spawner.run(start), log
    except BaseException:
        log.close()
        raise


def signal_group(process: Process, sig: int) -> None:
    """Send sig to the process and everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop(process: Process, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    """Send sig, wait up to timeout, then SIGKILL the whole group; return the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
            # A SIGSTOPped process (tests freeze services) would never act on sig otherwise.
            process.send_signal(signal.SIGCONT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait()
    # Grandchildren that outlived their parent would hold ports and files.
    signal_group(process, signal.SIGKILL)
    return process.returncode


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
