"""The PostgreSQL store's own behaviour: connection loss, and a database out of reach.

The server itself is never stopped (other tests use it): its backends serving one store
are ended with ``pg_terminate_backend``, or the network to it is cut by a proxy.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chatserver.clock import uuid7
from chatserver.errors import Unavailable
from chatserver.store.models import NewMessage
from chatserver.store.postgres import PostgresStore, parse_url
from tests import helpers
from tests.tcp_proxy import TcpProxy

T0 = 1_700_000_000_000_000


def note(conversation: str) -> NewMessage:
    return NewMessage(
        message_id=uuid7(),
        author_role="agent",
        author_id="a1",
        kind="note",
        body="still here",
        created_at=T0,
        client_msg_id=uuid7(),
        conversation_id=conversation,
    )


async def first_conversation(store: PostgresStore) -> str:
    await store.create_visitor("v1", "h1", T0)
    first = await store.append_message(
        NewMessage(
            message_id=uuid7(),
            author_role="visitor",
            author_id="v1",
            kind="text",
            body="hi",
            created_at=T0,
            new_conversation_id=uuid7(),
            visitor_id="v1",
        )
    )
    return first.conversation_id


@pytest.fixture
async def named(pg_url: str) -> AsyncIterator[tuple[PostgresStore, str]]:
    """A store whose connections carry a name of their own, so exactly they can be ended."""
    name = "chatserver-test-" + secrets.token_hex(4)
    store = PostgresStore.from_url(f"{pg_url}&application_name={name}")
    await store.open()
    yield store, name
    await store.close()


async def terminate(name: str, *, wait_for_active: int = 0) -> int:
    """End the store's backends from another connection; answers how many were ended."""
    conn = await asyncpg.connect(helpers.PG_DSN, timeout=3)
    try:
        deadline = time.monotonic() + 5
        while wait_for_active and time.monotonic() < deadline:
            active = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND state = 'active' AND query LIKE '%pg_sleep%'",
                name,
            )
            if active >= wait_for_active:
                break
            await asyncio.sleep(0.02)
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
        )
    finally:
        await conn.close()


async def test_a_killed_connection_answers_unavailable_then_recovers(
    named: tuple[PostgresStore, str],
) -> None:
    """A read and a write in flight when their backends die answer ``unavailable``; the
    next read and write succeed on fresh connections."""
    store, name = named
    conv = await first_conversation(store)
    read = asyncio.ensure_future(store._rows("SELECT pg_sleep(30)"))
    write = asyncio.ensure_future(
        store.writer.run(lambda conn, tx: conn.execute("SELECT pg_sleep(30)"))
    )
    assert await terminate(name, wait_for_active=2) >= 2
    results = await asyncio.wait_for(asyncio.gather(read, write, return_exceptions=True), 10)
    assert all(isinstance(r, Unavailable) for r in results), results
    stored = await store.append_message(note(conv))
    assert stored.seq == 2
    assert [m.seq for m in await store.messages_after(conv, 0, 10)] == [1, 2]


async def test_connections_killed_while_idle_are_replaced(
    named: tuple[PostgresStore, str],
) -> None:
    """Connections ended between calls: at most one call of each kind is refused."""
    store, name = named
    conv = await first_conversation(store)
    assert await terminate(name) >= 2
    for attempt in range(2):
        try:
            await store.conversation(conv)
            await store.append_message(note(conv))
            break
        except Unavailable:
            assert attempt == 0
    await store.ping()


async def test_a_database_out_of_reach_answers_unavailable_promptly(pg_url: str) -> None:
    """With the network to PostgreSQL cut, reads and writes are refused within seconds;
    once it is back, the same store works again by itself."""
    dsn, schema = parse_url(pg_url)
    host, port = "127.0.0.1", int(dsn.split("@", 1)[1].split("/", 1)[0].split(":")[1])
    proxy = TcpProxy(host, port)
    await proxy.start()
    via_proxy = pg_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    store = PostgresStore.from_url(via_proxy, connect_timeout=2)
    await store.open()
    try:
        conv = await first_conversation(store)
        proxy.cut()
        started = time.monotonic()
        calls: list[Any] = [store.conversation(conv), store.append_message(note(conv))]
        for call in calls:
            with pytest.raises(Unavailable):
                await call
        assert time.monotonic() - started < 10
        proxy.heal()
        assert (await store.append_message(note(conv))).seq == 2
        got = await store.conversation(conv)
        assert got is not None and got.last_seq == 2
    finally:
        await store.close()
        await proxy.close()


async def test_nodes_writing_one_conversation_share_its_seqs(pg_url: str) -> None:
    """Three stores on one database, as three nodes: concurrent messages to one
    conversation get gapless seqs, each once, and a message sent to two nodes at once
    (a retry) is stored once and answered as the duplicate by the other."""
    nodes = [PostgresStore.from_url(pg_url) for _ in range(3)]
    for node in nodes:
        await node.open()
    try:
        conv = await first_conversation(nodes[0])
        messages = [note(conv) for _ in range(300)]
        # A retry reaches the other node as a new message (a new id) with the same client id.
        retried = [NewMessage(**{**_fields(m), "message_id": uuid7()}) for m in messages[:30]]
        results = await asyncio.gather(
            *(nodes[i % 3].append_message(m) for i, m in enumerate(messages)),
            *(nodes[(i + 1) % 3].append_message(m) for i, m in enumerate(retried)),
        )
        fresh = [r for r in results if not r.duplicate]
        assert sorted(r.seq for r in fresh) == list(range(2, 302))
        assert len([r for r in results if r.duplicate]) == 30
        by_client_id = {r.client_msg_id: (r.id, r.seq) for r in fresh}
        assert all(by_client_id[r.client_msg_id] == (r.id, r.seq) for r in results)
        got = await nodes[1].conversation(conv)
        assert got is not None and got.last_seq == 301
        stored = await nodes[2].messages_after(conv, 0, 1000)
        assert [m.seq for m in stored] == list(range(1, 302))
    finally:
        for node in nodes:
            await node.close()


async def test_a_new_conversation_sent_to_two_nodes_is_started_once(pg_url: str) -> None:
    """The first message of a conversation, retried on another node at the same moment:
    one conversation, one message; the other node answers the duplicate."""
    nodes = [PostgresStore.from_url(pg_url) for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        await nodes[0].create_visitor("v1", "h1", T0)
        first = NewMessage(
            message_id=uuid7(),
            author_role="visitor",
            author_id="v1",
            kind="text",
            body="hi",
            created_at=T0,
            client_msg_id="c1",
            new_conversation_id=uuid7(),
            visitor_id="v1",
        )
        retry = NewMessage(**{**_fields(first), "new_conversation_id": uuid7()})
        a, b = await asyncio.gather(nodes[0].append_message(first), nodes[1].append_message(retry))
        assert sorted([a.duplicate, b.duplicate]) == [False, True]
        assert a.conversation_id == b.conversation_id and a.id == b.id
        assert [c.id for c in await nodes[1].visitor_conversations("v1")] == [a.conversation_id]
    finally:
        for node in nodes:
            await node.close()


def _fields(message: NewMessage) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__struct_fields__}
