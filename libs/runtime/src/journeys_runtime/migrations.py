"""Versioned SQL migrations with yoyo: each service applies the SQL files it owns."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations
from yoyo.migrations import MigrationList, default_migration_table

log = logging.getLogger(__name__)

MIGRATION_TABLE = default_migration_table  # where yoyo records what it applied


def yoyo_url(database_url: str) -> str:
    """`postgresql+psycopg://` for yoyo, from a libpq URL or `key=value` string.

    Everything but the credentials and database travels as query parameters, so a socket
    directory (`host=/run/postgresql`) survives the round trip.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(database_url).items() if v is not None}
    user = params.pop("user", None)
    password = params.pop("password", None)
    dbname = params.pop("dbname", "")
    auth = ""
    if user is not None:
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        auth += "@"
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql+psycopg://{auth}/{quote(dbname, safe='')}{query}"


def sql_migrations(directory: Path) -> MigrationList:
    """The `.sql` files of a directory (yoyo would also take a package's `__init__.py`)."""
    found = read_migrations(str(directory))
    return MigrationList([m for m in found if m.path.endswith(".sql")])


def pending(database_url: str, directory: Path) -> list[str]:
    """Ids of the migrations of `directory` not yet applied, read without writing anything.

    Not through yoyo's backend: opening one creates its lock and bookkeeping tables, which
    would need DDL rights and contend with the migrations Job for yoyo's lock.
    """
    wanted = list(sql_migrations(directory))
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        table = conn.execute("SELECT to_regclass(%s)", (MIGRATION_TABLE,)).fetchone()
        if table is None or table[0] is None:
            return [m.id for m in wanted]
        query = sql.SQL("SELECT migration_hash FROM {}").format(sql.Identifier(MIGRATION_TABLE))
        applied = {row[0] for row in conn.execute(query)}
    return [m.id for m in wanted if m.hash not in applied]


def apply(database_url: str, directory: Path) -> list[str]:
    """Apply every pending migration under yoyo's lock, so replicas never race; ids applied."""
    backend = get_backend(yoyo_url(database_url))
    try:
        with backend.lock():
            pending = backend.to_apply(sql_migrations(directory))
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    applied = [m.id for m in pending]
    log.info("migrations applied", extra={"applied": applied})
    return applied
