"""Real servers on free ports and real WebSocket clients, for the tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from chatserver.auth import new_token, token_hash
from chatserver.clock import Clock, uuid7
from chatserver.config import Settings
from chatserver.web.app import create_app
from chatserver.web.state import AppState

ORIGIN = "http://shop.example"
TIMEOUT = 10.0


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


class Client:
    """A WebSocket client that reads JSON frames, with waits that fail instead of hanging."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(frame)
        return frame  # type: ignore[no-any-return]

    async def expect(self, type_: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next frame, which must be of ``type_`` with these field values."""
        frame = await self.recv(timeout)
        assert frame["type"] == type_, f"expected {type_}, got {frame}"
        for key, value in fields.items():
            assert frame[key] == value, f"{key}: expected {value!r}, got {frame}"
        return frame

    async def until(self, type_: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Skip frames until one of ``type_`` with these field values arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame["type"] == type_ and all(frame.get(k) == v for k, v in fields.items()):
                    return frame

    async def closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; answers the close code."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                async for data in self.ws:
                    self.seen.append(json.loads(data))
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class Server:
    url: str
    port: int
    app: Any

    @property
    def state(self) -> AppState:
        return self.app.state.chat  # type: ignore[no-any-return]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    @contextlib.asynccontextmanager
    async def visitor(
        self, *, hello: dict[str, Any] | None = None, origin: str = ORIGIN
    ) -> AsyncIterator[tuple[Client, dict[str, Any]]]:
        """A visitor socket after hello; yields the client and its welcome."""
        async with connect(self.ws_url + "/ws/visitor", origin=origin) as ws:  # type: ignore[arg-type]
            client = Client(ws)
            await client.send(type="hello", **(hello or {}))
            welcome = await client.expect("welcome")
            yield client, welcome

    @contextlib.asynccontextmanager
    async def raw_visitor(self, origin: str = ORIGIN) -> AsyncIterator[Client]:
        async with connect(self.ws_url + "/ws/visitor", origin=origin) as ws:  # type: ignore[arg-type]
            yield Client(ws)

    @contextlib.asynccontextmanager
    async def agent(self, token: str) -> AsyncIterator[Client]:
        async with connect(
            self.ws_url + "/ws/agent", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            yield Client(ws)

    async def token(self, role: str = "agent", name: str = "Agent Smith") -> str:
        """A bearer token for a new agent of ``role``."""
        store = self.state.store
        now = Clock().now_us()
        agent = await store.add_agent(
            agent_id=uuid7(), email=None, name=name, role=role, password_hash=None, now=now
        )
        token = new_token("cs")
        await store.create_api_token(uuid7(), token_hash(token), agent.id, now)
        return token

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=TIMEOUT)


IDENTITY_SECRET = "test identity secret, 32 bytes or more long"
SITE_ID = "test-site"


def identity_token(sub: str, *, lifetime: int = 600, **claims: Any) -> str:
    """An identity token as the operator's platform would sign it (HS256)."""
    import time

    import jwt

    now = int(time.time())
    payload = {"sub": sub, "aud": SITE_ID, "iat": now, "exp": now + lifetime, **claims}
    return jwt.encode(payload, IDENTITY_SECRET, algorithm="HS256")


# The server-level suite runs on SQLite with the in-memory broker, and again on
# PostgreSQL with Redis when CHATSERVER_TEST_BACKEND=postgresql (`./run test` does
# both): each server then gets a fresh schema and a fresh key prefix.
BACKEND = os.environ.get("CHATSERVER_TEST_BACKEND", "sqlite")
PG_DSN = os.environ.get("CHATSERVER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CHATSERVER_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Schemas this process made, dropped at the end of the session (tests/conftest.py).
SCHEMAS: list[str] = []
# data_dir -> the backend settings of the servers on it, for the CLI run beside them.
_BACKENDS: dict[str, dict[str, str]] = {}


def backend_settings(data_dir: Path) -> dict[str, str]:
    if BACKEND != "postgresql":
        return {}
    known = _BACKENDS.get(str(data_dir))
    if known is None:
        schema = "t_" + uuid.uuid4().hex[:12]
        SCHEMAS.append(schema)
        known = _BACKENDS[str(data_dir)] = {
            "store": f"{PG_DSN}?schema={schema}",
            "broker": f"{REDIS_URL}?prefix=test-{schema}:",
        }
    return known


def db_rows(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of the database the servers on ``data_dir`` use, read beside them as anyone
    with access would: the SQLite file, or their PostgreSQL schema (``?`` placeholders)."""
    import sqlite3

    store = backend_settings(data_dir).get("store")
    if store is None:
        with contextlib.closing(sqlite3.connect(Path(data_dir) / "chat.db")) as conn:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()  # a test may change rows behind the server's back (tampering)
            return rows
    import concurrent.futures
    import itertools
    import re

    import asyncpg

    dsn, _, schema = store.partition("?schema=")
    numbers = itertools.count(1)
    text = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema}, timeout=5)
        try:
            return [tuple(r) for r in await conn.fetch(text, *params)]
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


def database_bytes(data_dir: Path) -> bytes:
    """Everything the database of the servers on ``data_dir`` holds, as an intruder
    would read it: the SQLite file with its WAL, byte for byte; on PostgreSQL, every
    row of every table of their schema as text (pages are the server's business)."""
    if backend_settings(data_dir).get("store") is None:
        return b"".join(p.read_bytes() for p in Path(data_dir).glob("chat.db*"))
    tables = [
        row[0]
        for row in db_rows(
            data_dir,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
    ]
    texts = [
        str(row[0] or "")
        for table in tables
        for row in db_rows(data_dir, f'SELECT string_agg(t::text, chr(10)) FROM "{table}" t')
    ]
    return "\n".join(texts).encode()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **backend_settings(data_dir),
        "data_dir": str(data_dir),
        "allowed_origins": [ORIGIN],
        "sqlite_synchronous": "NORMAL",
        # Tests that want routing turn it on; elsewhere it would assign behind their back.
        "auto_assign": False,
        # Tests run retention when they mean to; the sweeper would run it at start.
        "retention_interval": "off",
        "identity_secret": IDENTITY_SECRET,
        "site_id": SITE_ID,
        "pid_pepper": "test pepper: a secret of the server",
    }
    values.update(overrides)
    return Settings.from_mapping(values)


@contextlib.asynccontextmanager
async def running_server(settings: Settings, **app_options: Any) -> AsyncIterator[Server]:
    """A real uvicorn server in this event loop, on a free port."""
    app = create_app(settings, **app_options)
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.heartbeat_interval,
        ws_ping_timeout=settings.heartbeat_interval,
        ws_per_message_deflate=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)  # polling a flag, bounded by the timeout above
        yield Server(url=f"http://127.0.0.1:{port}", port=port, app=app)
    finally:
        server.should_exit = True
        await task
        sock.close()


def cli(
    data_dir: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chatserver ARGS`` on ``data_dir``, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "chatserver", *args],
        env={
            **os.environ,
            "CHATSERVER_DATA_DIR": str(data_dir),
            **{f"CHATSERVER_{k.upper()}": v for k, v in backend_settings(data_dir).items()},
            **(env or {}),
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def msg_id() -> str:
    return str(uuid.uuid4())
