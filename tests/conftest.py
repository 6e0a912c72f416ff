"""Session infrastructure: a real Kafka broker and a real PostgreSQL, never skipped."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
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
    yield from _database(admin_database_url)


def _database(admin_database_url: str, template: str | None = None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(create)
    yield psycopg.conninfo.make_conninfo(admin_database_url, dbname=name)
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


Migrate = Callable[[str], None]


@pytest.fixture(scope="session")
def migrated_templates(admin_database_url: str) -> Iterator[dict[tuple[Migrate, ...], str]]:
    """Databases migrated once a session, by the tuple of `apply` functions that made them;
    `migrated_database` copies one per test (CREATE DATABASE ... TEMPLATE: 0.06 s here,
    where running the migrations again cost 0.4 s in each of some 150 tests)."""
    made: dict[tuple[Migrate, ...], str] = {}
    yield made
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        for name in made.values():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def migrated_database(
    admin_database_url: str, templates: dict[tuple[Migrate, ...], str], *applied: Migrate
) -> Iterator[str]:
    """A new database for one test, as `applied` (each service's migrations, in order) leave
    an empty one; dropped afterwards."""
    if applied not in templates:
        name = f"template_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = psycopg.conninfo.make_conninfo(admin_database_url, dbname=name)
        for apply in applied:
            apply(url)
        templates[applied] = name
    yield from _database(admin_database_url, templates[applied])


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
