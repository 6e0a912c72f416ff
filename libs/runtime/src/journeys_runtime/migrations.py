"""Versioned SQL migrations with yoyo: each service applies the SQL files it owns."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations
from yoyo.migrations import MigrationList

log = logging.getLogger(__name__)


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
    """Ids of the migrations of `directory` not yet applied to the database."""
    backend = get_backend(yoyo_url(database_url))
    try:
        return [m.id for m in backend.to_apply(sql_migrations(directory))]
    finally:
        backend.connection.close()


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
