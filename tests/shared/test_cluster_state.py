"""Two real servers on one Redis (a key prefix of their own) and one SQLite file: what one
node knows of agents, sign-in failures and assignment turns, the other knows too."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from chatserver.auth import hash_password
from chatserver.shared.redis import RedisState
from tests.helpers import Client, Server, make_settings, msg_id, running_server

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    admin = aioredis.Redis.from_url(REDIS)
    try:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
    finally:
        await admin.aclose()


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, prefix: str, **settings: Any
) -> AsyncIterator[tuple[Server, Server]]:
    config = make_settings(tmp_path, broker=f"{REDIS}?prefix={prefix}", **settings)
    async with running_server(config) as a, running_server(config) as b:
        assert isinstance(a.state.hub.shared, RedisState)
        assert a.state.hub.shared.node_id != b.state.hub.shared.node_id
        yield a, b


async def presence_of(client: Client, name: str, status: str) -> dict[str, Any]:
    """Skip frames until ``name``'s presence is ``status``."""
    while True:
        frame = await client.until("presence")
        if frame.get("agent", {}).get("name") == name and frame["status"] == status:
            return frame


async def test_an_agent_on_one_node_is_online_for_visitors_and_agents_on_the_other(
    tmp_path: Path, prefix: str
) -> None:
    async with two_nodes(tmp_path, prefix) as (a, b):
        ann = await a.token(name="Ann")
        async with b.visitor() as (visitor, welcome):
            assert welcome["agents_online"] is False
            async with a.agent(ann) as ann_socket:
                frame = await visitor.until("presence")
                assert frame == {"type": "presence", "agents_online": True, "open_now": True}
                async with b.visitor() as (_, second):
                    assert second["agents_online"] is True
                await ann_socket.send(type="status", status="away")
                assert (await visitor.until("presence"))["agents_online"] is False
                await ann_socket.send(type="status", status="online")
                assert (await visitor.until("presence"))["agents_online"] is True
                # An agent connecting to B hears that Ann is here; Ann hears of Bob.
                async with b.agent(await b.token(name="Bob")) as bob:
                    await presence_of(bob, "Ann", "online")
                    await presence_of(ann_socket, "Bob", "online")
                    async with b.http(ann) as http:
                        agents = (await http.get("/api/v1/agents")).json()["items"]
                        assert {x["name"] for x in agents if x["online"]} == {"Ann", "Bob"}
                    await ann_socket.send(type="status", status="away")
                    await presence_of(bob, "Ann", "away")  # Bob still answers visitors
                    await ann_socket.send(type="status", status="online")
                    await presence_of(bob, "Ann", "online")
                await presence_of(ann_socket, "Bob", "offline")
            # Ann's only socket closed on A: the visitor on B hears nobody answers.
            assert (await visitor.until("presence"))["agents_online"] is False
            assert [f["agents_online"] for f in visitor.seen if f["type"] == "presence"] == [
                True,
                False,
                True,
                False,
            ]


async def test_sign_in_failures_count_on_every_node(tmp_path: Path, prefix: str) -> None:
    """Three wrong passwords on A and three on B lock the email on both (five are free)."""
    async with two_nodes(tmp_path, prefix) as (a, b):
        await a.state.store.add_agent(
            agent_id="kari",
            email="kari@example.no",
            name="Kari",
            role="agent",
            password_hash=await hash_password("the right password"),
            now=1,
        )
        wrong = {"email": "kari@example.no", "password": "wrong"}
        async with a.http() as http_a, b.http() as http_b:
            for http in (http_a, http_b) * 3:
                assert (await http.post("/console/login", json=wrong)).status_code == 401
            right = {"email": "kari@example.no", "password": "the right password"}
            locked = await http_a.post("/console/login", json=right)
            assert locked.status_code == 429 and locked.json()["error"]["code"] == "rate_limited"
            assert locked.headers["retry-after"] == "1"


async def new_conversation(server: Server) -> str:
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id=msg_id(), body="hello")
        return str((await visitor.until("ack"))["conversation_id"])


async def assignee_of(conversation_id: str, watcher: Client) -> str:
    frame = await watcher.until("conversation", id=conversation_id)
    while frame["assignee"] is None:
        frame = await watcher.until("conversation", id=conversation_id)
    return str(frame["assignee"]["name"])


async def test_assignments_take_turns_across_nodes(tmp_path: Path, prefix: str) -> None:
    """Ann on A and Bob on B take turns, whichever node the new conversation starts on."""
    async with (
        two_nodes(tmp_path, prefix, auto_assign=True, agent_capacity=10) as (a, b),
        a.agent(await a.token(name="Ann")) as ann,
        b.agent(await b.token(name="Bob")) as bob,
    ):
        await presence_of(ann, "Bob", "online")  # each node knows both now
        await presence_of(bob, "Ann", "online")
        await ann.send(type="subscribe", inbox="all")
        await ann.until("subscribed")
        names = []
        for node in (a, b, a, b, b, a):
            names.append(await assignee_of(await new_conversation(node), ann))
        assert names in (["Ann", "Bob"] * 3, ["Bob", "Ann"] * 3), names


async def test_a_node_cut_off_from_redis_keeps_serving_on_its_own(
    tmp_path: Path, prefix: str
) -> None:
    """Without Redis, a node still knows its own agents, locks out and assigns."""
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    settings = make_settings(
        tmp_path,
        broker=f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}",
        auto_assign=True,
    )
    try:
        async with running_server(settings) as node:
            await node.state.store.add_agent(
                agent_id="kari",
                email="kari@example.no",
                name="Kari",
                role="agent",
                password_hash=await hash_password("the right password"),
                now=1,
            )
            proxy.cut()
            async with node.agent(await node.token(name="Ann")):
                async with node.visitor() as (_, welcome):
                    assert welcome["agents_online"] is True
                conversation_id = await new_conversation(node)
                await node.state.hub.background_done()  # the assignment ran by now
                conversation = await node.state.store.conversation(conversation_id)
                assert conversation is not None and conversation.assignee_name == "Ann"
            wrong = {"email": "kari@example.no", "password": "wrong"}
            async with node.http() as http:
                for _ in range(6):
                    assert (await http.post("/console/login", json=wrong)).status_code == 401
                assert (await http.post("/console/login", json=wrong)).status_code == 429
            proxy.heal()
    finally:
        await proxy.close()
