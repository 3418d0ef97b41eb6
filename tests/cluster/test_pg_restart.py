"""PostgreSQL itself stopped and started again under two nodes (not a cut link: the
server goes away). It stops the PostgreSQL every other test uses, so it runs only when
asked, alone: `./run test` does, after everything else."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.cluster.cluster import cluster
from tests.cluster.test_cluster import View, assert_complete, history, open_conversation, pump

pytestmark = pytest.mark.skipif(
    os.environ.get("CHATSERVER_TEST_PG_RESTART") != "1" or shutil.which("pg_ctlcluster") is None,
    reason="stops the shared PostgreSQL: set CHATSERVER_TEST_PG_RESTART=1 and run it alone",
)


async def pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0


async def test_postgresql_stopped_briefly(tmp_path: Path) -> None:
    async with cluster(tmp_path, names=("a", "b")) as cl:
        a, b = cl.nodes
        token = await cl.token()
        you, them = View("visitor"), View("agent")
        async with a.visitor() as (visitor, _), b.agent(token) as agent:
            conv = await open_conversation(visitor, you, agent, them)
            try:
                await pg_ctl("stop")
                await visitor.send(
                    type="send", client_msg_id="down", conversation_id=conv, body="anyone?"
                )
                await pump(visitor, you, lambda v: "down" in v.errors)
                assert you.errors["down"] == "unavailable"
                async with a.http() as http:
                    assert (await http.get("/readyz")).status_code == 503
            finally:
                await pg_ctl("start")
            # Nobody restarts the nodes: they find the database again by themselves.
            async with asyncio.timeout(30):
                while True:
                    await visitor.send(
                        type="send", client_msg_id="down", conversation_id=conv, body="anyone?"
                    )
                    you.errors.pop("down", None)
                    await pump(visitor, you, lambda v: "down" in v.acked or "down" in v.errors)
                    if "down" in you.acked:
                        break
                    await asyncio.sleep(0.2)  # the client's retry back-off
            await pump(agent, them, lambda v: len(v.shown) >= 2)
            store = await history(b, token, conv)
            assert len(store) == 2
            assert_complete(store, you, them)
