"""Several real ``chatserver serve`` processes sharing one Redis and one PostgreSQL database.

Each test gets its own database (created and dropped here) and its own Redis key
prefix. The nodes reach PostgreSQL through a ``TcpProxy``, so a test can cut the
database off from every node (connections reset, new ones refused) without
stopping the server that other tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis

from tests.helpers import IDENTITY_SECRET, ORIGIN, SITE_ID, TIMEOUT, Server, free_port
from tests.tcp_proxy import TcpProxy

PG_ADMIN = os.environ.get("CHATSERVER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS = os.environ.get("CHATSERVER_TEST_REDIS", "redis://127.0.0.1:6379/0")
START_TIMEOUT = 30.0


@dataclass
class Node(Server):
    """A server process of the cluster: the clients of ``Server``, no app in this process."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)


@dataclass
class Cluster:
    tmp: Path
    database: str
    prefix: str
    pg_proxy: TcpProxy
    nodes: list[Node] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"postgresql://root@127.0.0.1:{self.pg_proxy.port}/{self.database}"

    @property
    def broker_url(self) -> str:
        return f"{REDIS}?prefix={self.prefix}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CHATSERVER_STORE": self.store_url,
            "CHATSERVER_BROKER": self.broker_url,
            # Shared by the nodes of one host: the console's key, attachments, the ledger.
            "CHATSERVER_DATA_DIR": str(self.tmp / "data"),
            "CHATSERVER_ALLOWED_ORIGINS": ORIGIN,
            "CHATSERVER_IDENTITY_SECRET": IDENTITY_SECRET,
            "CHATSERVER_SITE_ID": SITE_ID,
            "CHATSERVER_RETENTION_INTERVAL": "off",
            "CHATSERVER_AUTO_ASSIGN": "false",
            "CHATSERVER_LOG_LEVEL": "warning",
            # The bursts here are a test's, not an abuser's.
            "CHATSERVER_RATE_LIMIT_PER_SECOND": "100000",
            "CHATSERVER_RATE_LIMIT_BURST": "100000",
        }

    async def start_node(self, name: str, *args: str) -> Node:
        # A free port is free when picked, not necessarily when the child binds it:
        # another test may take it in between. Then the child stops, and another is tried.
        for _ in range(3):
            node = self._launch(name, args)
            try:
                await wait_ready(node)
            except PortTaken:
                self.nodes.remove(node)
                continue
            return node
        raise AssertionError(f"{name}: no free port after 3 tries")

    def _launch(self, name: str, args: tuple[str, ...] = ()) -> Node:
        port = free_port()
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "chatserver", "serve", "--port", str(port), *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        node = Node(
            url=f"http://127.0.0.1:{port}", port=port, app=None, name=name, process=process, log=log
        )
        self.nodes.append(node)
        return node

    async def cli(self, *args: str) -> str:
        """``chatserver ARGS`` against the cluster's store (the proxy runs on this loop,
        so the command must not block it)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatserver",
            *args,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode().strip()

    async def token(self, role: str = "agent") -> str:
        return await self.cli("token", "create", "--role", role, "--name", f"{role} bot")

    async def stop(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                node.kill()

    async def kill_pubsub(self) -> int:
        """``CLIENT KILL TYPE pubsub`` for this cluster's subscriber connections only."""
        admin = aioredis.Redis.from_url(REDIS)
        killed = 0
        try:
            for client in await admin.client_list(_type="pubsub"):
                if client.get("name") == f"{self.prefix}pubsub":
                    killed += await admin.execute_command(
                        "CLIENT", "KILL", "TYPE", "pubsub", "ID", client["id"]
                    )
        finally:
            await admin.aclose()
        return killed


class PortTaken(Exception):
    """The node's port was taken before it could bind it."""


def listens(node: Node) -> bool:
    """Whether the node's own processes (a worker or the parent) listen on its port, so
    that a ready answer is known to come from them, not from whoever took the port."""
    parent = psutil.Process(node.process.pid)
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == node.port:
                    return True
    return False


async def wait_ready(node: Node) -> None:
    """Poll /readyz until the node answers 200 from its own socket (or fail, with its log)."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if node.process.poll() is not None:
                log = node.log.read_text()
                if "address already in use" in log.lower():
                    raise PortTaken(node.name)
                raise AssertionError(f"{node.name} exited:\n{log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(node.url + "/readyz")).status_code == 200 and listens(node):
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{node.name} never got ready:\n{node.log.read_text()}")
            await asyncio.sleep(0.05)  # polling a condition, bounded by the deadline


@contextlib.asynccontextmanager
async def cluster(tmp: Path, names: tuple[str, ...] = ("a", "b", "c")) -> AsyncIterator[Cluster]:
    database = f"cs_cluster_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{database}"')
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    the = Cluster(tmp=tmp, database=database, prefix=f"cluster-{uuid.uuid4().hex}:", pg_proxy=proxy)
    try:
        await the.cli("migrate")
        await asyncio.gather(*(the.start_node(name) for name in names))
        yield the
    finally:
        await the.stop()
        await proxy.close()
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        keys = aioredis.Redis.from_url(REDIS)
        try:
            async for key in keys.scan_iter(match=f"{the.prefix}*"):
                await keys.delete(key)
        finally:
            await keys.aclose()


async def _admin(sql: str) -> None:
    """One statement on a connection of its own (a test may restart PostgreSQL)."""
    admin = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()
