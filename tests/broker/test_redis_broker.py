"""The Redis broker against a real Redis at 127.0.0.1:6379: two brokers are two nodes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from chatserver.broker import MemoryBroker, broker_from_url
from chatserver.broker.base import Event
from chatserver.broker.redis import RedisBroker, split_url
from tests.helpers import free_port, make_settings, running_server

REDIS = "redis://127.0.0.1:6379/0"
TIMEOUT = 5.0


class Inbox:
    """A deliver callback whose events can be awaited."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Event]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    async def wait_kind(self, kind: str, timeout: float = TIMEOUT) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event.kind == kind:
                        return event
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture
async def nodes(prefix: str) -> AsyncIterator[tuple[RedisBroker, Inbox, RedisBroker, Inbox]]:
    a, b = RedisBroker(f"{REDIS}?prefix={prefix}"), RedisBroker(f"{REDIS}?prefix={prefix}")
    inbox_a, inbox_b = Inbox(), Inbox()
    await a.start(inbox_a)
    await b.start(inbox_b)
    try:
        yield a, inbox_a, b, inbox_b
    finally:
        await a.close()
        await b.close()


def event(topic: str, kind: str = "message", seq: int = 0) -> Event:
    return Event(topic=topic, kind=kind, frame=f'{{"type":"{kind}","seq":{seq}}}', seq=seq)


async def test_event_reaches_a_subscribed_node_only(nodes: tuple) -> None:
    a, _, b, inbox_b = nodes
    await b.subscribe("conv:1")
    a.publish(event("conv:1", seq=1))
    [got] = await inbox_b.wait_for(1)
    assert got == event("conv:1", seq=1)

    await b.unsubscribe("conv:1")
    # A marker on a topic B still follows, published after the unfollowed one:
    # once it arrives, the unfollowed event would have too.
    await b.subscribe("marker")
    a.publish(event("conv:1", seq=2))
    a.publish(event("marker", kind="marker"))
    await inbox_b.wait_kind("marker")
    assert [e.seq for e in inbox_b.events if e.topic == "conv:1"] == [1]


async def test_order_of_many_events_is_kept(nodes: tuple) -> None:
    a, _, b, inbox_b = nodes
    await b.subscribe("conv:many")
    for seq in range(1, 1001):
        a.publish(event("conv:many", seq=seq))
    events = await inbox_b.wait_for(1000)
    assert [e.seq for e in events] == list(range(1, 1001))


async def test_presence_reaches_every_node_and_the_publisher(nodes: tuple) -> None:
    a, inbox_a, b, inbox_b = nodes
    await a.subscribe("presence")
    await b.subscribe("presence")
    a.publish(event("presence", kind="presence"))
    assert (await inbox_a.wait_kind("presence")).topic == "presence"
    assert (await inbox_b.wait_kind("presence")).topic == "presence"


async def test_prefixes_isolate(prefix: str) -> None:
    other = RedisBroker(f"{REDIS}?prefix=other-{prefix}")
    mine = RedisBroker(f"{REDIS}?prefix={prefix}")
    inbox_other, inbox_mine = Inbox(), Inbox()
    await other.start(inbox_other)
    await mine.start(inbox_mine)
    try:
        await other.subscribe("t")
        await mine.subscribe("t")
        other.publish(event("t", kind="theirs"))
        mine.publish(event("t", kind="mine"))
        await inbox_mine.wait_kind("mine")
        await inbox_other.wait_kind("theirs")
        assert [e.kind for e in inbox_mine.events] == ["mine"]
        assert [e.kind for e in inbox_other.events] == ["theirs"]
    finally:
        await other.close()
        await mine.close()


async def test_reconnects_and_resubscribes_after_the_connection_is_killed(
    nodes: tuple, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, _, b, inbox_b = nodes
    await b.subscribe("conv:k")
    await b.subscribe("presence")
    a.publish(event("conv:k", seq=1))
    await inbox_b.wait_for(1)
    assert b.connections == 1

    admin = aioredis.Redis.from_url(REDIS)
    try:
        # Only this test's pub/sub connections (named after the prefix), so that other
        # tests sharing the Redis are not disturbed.
        ours = [
            c["id"]
            for c in await admin.client_list(_type="pubsub")
            if c.get("name") == f"{prefix}pubsub"
        ]
        assert ours  # B's (A follows nothing, so its connection is no pub/sub one yet)
        for client_id in ours:
            killed = await admin.execute_command(
                "CLIENT", "KILL", "TYPE", "pubsub", "ID", client_id
            )
            assert killed == 1
    finally:
        await admin.aclose()

    # B reconnects and has every topic it follows confirmed again.
    await asyncio.wait_for(b.resubscribed.wait(), TIMEOUT)
    assert b.connections == 2
    assert "lost the pub/sub connection" in caplog.text
    assert "resubscribed to 2 topics" in caplog.text

    a.publish(event("conv:k", seq=2))
    a.publish(event("presence", kind="presence"))
    await inbox_b.wait_kind("presence")
    assert [e.seq for e in inbox_b.events if e.topic == "conv:k"][-1] == 2


async def test_ping(prefix: str) -> None:
    broker = RedisBroker(f"{REDIS}?prefix={prefix}")
    await broker.ping()  # before start, on its own connection
    await broker.start(Inbox())
    try:
        await broker.ping()
    finally:
        await broker.close()

    with pytest.raises(Exception):  # noqa: B017 (connection refused, whatever the class)
        await RedisBroker(f"redis://127.0.0.1:{free_port()}/0").ping()


def test_broker_from_url() -> None:
    assert isinstance(broker_from_url("memory://"), MemoryBroker)
    broker = broker_from_url("redis://127.0.0.1:6379/2?prefix=x:")
    assert isinstance(broker, RedisBroker)
    assert broker.prefix == "x:"
    assert broker.url == "redis://127.0.0.1:6379/2"
    with pytest.raises(ValueError, match="unsupported broker URL"):
        broker_from_url("kafka://127.0.0.1:9092")


def test_split_url_defaults() -> None:
    assert split_url("redis://h:1/0") == ("redis://h:1/0", "chatserver:")
    assert split_url("redis://h:1/0?prefix=p:&protocol=3") == ("redis://h:1/0?protocol=3", "p:")


async def test_a_server_on_redis_carries_a_conversation(tmp_path: Path, prefix: str) -> None:
    settings = make_settings(tmp_path, broker=f"{REDIS}?prefix={prefix}")
    async with running_server(settings) as server:
        assert isinstance(server.state.hub.broker, RedisBroker)
        token = await server.token()
        async with server.visitor() as (visitor, _), server.agent(token) as agent:
            await visitor.send(type="send", client_msg_id="v1", body="hello?")
            conv = (await visitor.until("ack", client_msg_id="v1"))["conversation_id"]
            await agent.send(type="watch", conversation_id=conv)
            await agent.until("watching")
            await agent.send(type="send", client_msg_id="a1", conversation_id=conv, body="hi!")
            await agent.until("ack", client_msg_id="a1")
            got = await visitor.until("message", body="hi!")
            assert got["seq"] == 2
            await visitor.send(type="send", client_msg_id="v2", conversation_id=conv, body="thanks")
            assert (await agent.until("message", body="thanks"))["seq"] == 3


async def test_a_node_cut_off_from_redis_catches_up_from_the_store(
    tmp_path: Path, prefix: str
) -> None:
    """Events published while a node cannot hear Redis are lost to it; once it is back,
    every socket on it gets what it missed from the store, each message once, in order."""
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    settings_a = make_settings(tmp_path, broker=f"{REDIS}?prefix={prefix}")
    settings_b = make_settings(tmp_path, broker=f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}")
    try:
        async with running_server(settings_a) as node_a, running_server(settings_b) as node_b:
            token = await node_a.token()
            broker_b = node_b.state.hub.broker
            assert isinstance(broker_b, RedisBroker)
            async with node_a.visitor() as (visitor, _), node_b.agent(token) as agent:
                await visitor.send(type="send", client_msg_id="v1", body="one")
                conv = (await visitor.until("ack", client_msg_id="v1"))["conversation_id"]
                await agent.send(type="watch", conversation_id=conv)
                await agent.until("watching")

                proxy.cut()
                for n in (2, 3, 4):
                    await visitor.send(
                        type="send", client_msg_id=f"v{n}", conversation_id=conv, body=f"m{n}"
                    )
                    await visitor.until("ack", client_msg_id=f"v{n}")
                proxy.heal()
                await asyncio.wait_for(broker_b.resubscribed.wait(), TIMEOUT)

                await visitor.send(type="send", client_msg_id="v5", conversation_id=conv, body="m5")
                seen: list[int] = []
                while not seen or seen[-1] < 5:
                    frame = await agent.until("message")
                    seen.append(frame["seq"])
                assert seen == [2, 3, 4, 5]  # each once, in order, none lost
                assert node_b.state.hub.metrics.resyncs >= 1
    finally:
        await proxy.close()
