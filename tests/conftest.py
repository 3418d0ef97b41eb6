from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import Server, make_settings, running_server


@pytest.fixture(scope="session", autouse=True)
def drop_test_schemas() -> Iterator[None]:
    """Drop the schemas the servers of this session made on PostgreSQL, and their keys."""
    yield
    if helpers.SCHEMAS:
        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(helpers.PG_DSN, timeout=5)
            try:
                for schema in helpers.SCHEMAS:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
            # And the Redis keys of their brokers' shared state (the same prefixes).
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(helpers.REDIS_URL)
            try:
                for schema in helpers.SCHEMAS:
                    async for key in client.scan_iter(match=f"test-{schema}:*"):
                        await client.delete(key)
            finally:
                await client.aclose()

        threading_run(drop())


def threading_run(coro: Any) -> None:
    """``asyncio.run`` on a thread of its own (the session's loop may still be set here)."""
    import asyncio
    import threading

    thread = threading.Thread(target=asyncio.run, args=(coro,))
    thread.start()
    thread.join()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(make_settings(tmp_path)) as srv:
        yield srv


@pytest.fixture
async def token(server: Server) -> str:
    return await server.token("agent")


def _on_own_loop(sql: str) -> None:
    """Run ``sql`` on the test database from a thread with its own event loop, so that
    ``pg_url`` is a plain fixture: async fixtures may ask for it with getfixturevalue."""
    import asyncio
    import concurrent.futures

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(helpers.PG_DSN, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(run())).result()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL on a fresh schema of the test database (the store makes it), dropped
    after the test. Skipped without PostgreSQL, unless CHATSERVER_TEST_PG names one."""
    schema = "t_" + secrets.token_hex(6)
    try:
        _on_own_loop("SELECT 1")
    except Exception as exc:
        if "CHATSERVER_TEST_PG" in os.environ:
            raise
        pytest.skip(f"no PostgreSQL at {helpers.PG_DSN}: {exc}")
    yield f"{helpers.PG_DSN}{'&' if '?' in helpers.PG_DSN else '?'}schema={schema}"
    _on_own_loop(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
