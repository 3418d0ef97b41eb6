"""Which store a command works on, and refusing one that does not exist.

``serve`` and ``migrate`` create the store when there is none. Every other
command reads or changes data that must already be there: run from the wrong
folder (or with a mistyped ``CHATSERVER_DATA_DIR`` or store URL) it would
otherwise make an empty database and report on that one ("audit log intact:
0 entries", an agent added where no server will ever see it). These checks
open nothing for writing and create nothing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chatserver.config import Settings

HINT = (
    "run `chatserver migrate` to create a new store, or point CHATSERVER_DATA_DIR, "
    "CHATSERVER_STORE or --config at the existing one"
)


class MissingStore(Exception):
    """The store a command needs does not exist; the message names it."""


def _sqlite_path(url: str) -> Path:
    return Path(os.path.abspath(url.removeprefix("sqlite:///")))


def describe(url: str) -> str:
    """The store URL as it may be printed: a SQLite file's absolute path, or a
    PostgreSQL URL without its password (in the netloc or as ``?password=``)."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///{_sqlite_path(url)}"
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}@{host}" if user else host
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"],
        safe=":/",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def require_existing(settings: Settings, *, uses_data_dir: bool) -> None:
    """Raise ``MissingStore`` unless the settings name a store that exists and has been
    migrated at least once. ``uses_data_dir``: the command also keeps files in
    ``data_dir`` (the session key the erasure ledger is keyed with, exports)."""
    url = settings.store_url
    data_dir = Path(os.path.abspath(str(settings.data_dir)))
    missing_dir = f"data directory {data_dir} does not exist; {HINT}"
    if not settings.store and not data_dir.is_dir():  # the database would be in it
        raise MissingStore(missing_dir)
    if url.startswith("sqlite:///"):
        _require_sqlite(_sqlite_path(url))
    elif url.startswith(("postgresql://", "postgres://")):
        asyncio.run(_require_postgres(url))
    # Any other URL is refused by store_from_url with its own message.
    if uses_data_dir and not settings.secret_key and not data_dir.is_dir():
        raise MissingStore(missing_dir)


def _require_sqlite(path: Path) -> None:
    shown = f"sqlite:///{path}"
    if not path.is_file():
        raise MissingStore(f"no database at {path} ({shown}); {HINT}")
    try:
        # mode=rw: never creates the file; reading sqlite_master changes nothing.
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise MissingStore(f"{path} is not a chatserver database ({exc}); {HINT}") from None
    if found is None:
        raise MissingStore(f"{path} is not a chatserver database (no schema); {HINT}")


async def _require_postgres(url: str) -> None:
    import asyncpg

    from chatserver.store.pg_schema import quote_ident
    from chatserver.store.postgres import parse_url

    dsn, schema = parse_url(url)
    shown = describe(url)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        raise MissingStore(
            f"the database of {shown} does not exist: create it (createdb), then run "
            "`chatserver migrate`; or point CHATSERVER_STORE or --config at the existing one"
        ) from None
    try:
        table = f"{quote_ident(schema)}.schema_migrations" if schema else "schema_migrations"
        found = await conn.fetchval("SELECT to_regclass($1)", table)
    finally:
        await conn.close()
    if found is None:
        where = f"schema {schema!r}" if schema else "its default schema"
        raise MissingStore(f"no chatserver tables in {where} of {shown}; {HINT}")
