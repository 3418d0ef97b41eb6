"""The ``store`` fixture: every contract test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.store.postgres import PostgresStore
from chatserver.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open store; ``store.batches`` lists the sizes of its group commits."""
    batches: list[int] = []
    s: SQLiteStore | PostgresStore
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "chat.db", observe_batch=lambda n, _: batches.append(n))
    else:
        s = PostgresStore.from_url(
            request.getfixturevalue("pg_url"), observe_batch=lambda n, _: batches.append(n)
        )
    s.batches = batches  # type: ignore[union-attr]
    await s.open()
    yield s
    await s.close()
