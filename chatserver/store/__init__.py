"""Where conversations, messages and people's data are kept.

``open_store(url)`` picks the implementation by URL scheme. The Store's
interface is ``chatserver.store.base.Store``; every implementation passes the
same contract tests (``tests/store/``).
"""

from __future__ import annotations

from typing import Any

from chatserver.store.base import Store
from chatserver.store.sqlite import SQLiteStore


def store_from_url(url: str, **options: Any) -> Store:
    if url.startswith("sqlite:///"):
        return SQLiteStore.from_url(url, **options)
    if url.startswith(("postgresql://", "postgres://")):
        # Imported here: a single node on SQLite never loads the PostgreSQL driver.
        from chatserver.store.postgres import PostgresStore

        return PostgresStore.from_url(url, **options)
    raise ValueError(
        f"unsupported store URL {url!r} (this build knows sqlite:///… and postgresql://…)"
    )


__all__ = ["SQLiteStore", "Store", "store_from_url"]
