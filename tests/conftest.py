"""Session infrastructure: a real Kafka broker and a real PostgreSQL, never skipped."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from journeys_runtime.topics import Topics, ensure_topics

PARTITIONS = 4

# Settings apply production rules unless development is chosen explicitly; the suite runs
# under development rules (placeholder secrets, the development key), set here once for the
# settings built in-process and the services started as subprocesses alike. Tests of the
# other environments set JOURNEYS_ENV themselves.
os.environ.setdefault("JOURNEYS_ENV", "development")


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """A test that runs a service's `main` in-process configures logging to the stream pytest
    captured for it, which is closed afterwards; later tests would log into a closed file."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:], sys.excepthook, threading.excepthook = handlers, *hooks
    root.setLevel(level)


@pytest.fixture(scope="session")
def infra() -> Iterator[tuple[str, str]]:
    """(kafka bootstrap, admin database URL): from the environment, else started here."""
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_db = os.environ.get("DATABASE_URL")
    if env_kafka and env_db:
        yield env_kafka, env_db
        return
    from tests.infra import start_local_infra

    # Not under pytest's basetemp: every pytest session on the machine chmods
    # /tmp/pytest-of-<user> to 0700, which would lock PostgreSQL's own user out of its data.
    root = Path(tempfile.mkdtemp(prefix="journeys-test-infra-"))
    started = start_local_infra(root)
    try:
        yield env_kafka or started.kafka_bootstrap, env_db or started.database_url
    finally:
        started.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: tuple[str, str]) -> str:
    return infra[0]


@pytest.fixture(scope="session")
def admin_database_url(infra: tuple[str, str]) -> str:
    return infra[1]


@pytest.fixture
def fresh_database(admin_database_url: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_database_url, dbname=name)
    yield url
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
async def topics(kafka_bootstrap: str) -> Topics:
    """The four topics under a prefix of their own, so tests never see each other's records."""
    t = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    await ensure_topics(kafka_bootstrap, t, PARTITIONS)
    return t


@pytest.fixture
def pg_tmp_path() -> Iterator[Path]:
    """A scratch directory PostgreSQL's own user can always reach (see `infra`)."""
    root = Path(tempfile.mkdtemp(prefix="journeys-test-pg-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
