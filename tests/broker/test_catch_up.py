"""Two nodes on one Redis: a message stored whose event never left (its node died between
commit and publish) still reaches every socket, by a retry or by the periodic catch-up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.clock import Clock, uuid7
from chatserver.store.models import NewMessage
from tests.helpers import Client, Server, make_settings, running_server

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    prefix = f"test-{uuid.uuid4().hex}:"
    # Catch-up is driven by hand here, so that the test decides when it runs.
    settings = make_settings(tmp_path, broker=f"{REDIS}?prefix={prefix}", catch_up_interval="off")
    async with running_server(settings) as a, running_server(settings) as b:
        yield a, b


async def _conversation(a: Server, b: Server, agent: Client) -> tuple[Client, Any, str, str]:
    """A visitor on A with one message, the agent on B watching; answers the visitor's ids."""
    cm = a.visitor()
    visitor, welcome = await cm.__aenter__()
    await visitor.send(type="send", client_msg_id="v1", body="first")
    conv = (await visitor.until("ack", client_msg_id="v1"))["conversation_id"]
    await agent.send(type="watch", conversation_id=conv)
    await agent.until("watching")
    return visitor, cm, conv, welcome["visitor_id"]


def _stored_behind_the_hubs_back(visitor_id: str, conv: str, client_msg_id: str) -> NewMessage:
    return NewMessage(
        message_id=uuid7(),
        author_role="visitor",
        author_id=visitor_id,
        kind="text",
        body="lost event",
        created_at=Clock().now_us(),
        client_msg_id=client_msg_id,
        conversation_id=conv,
        visitor_id=visitor_id,
    )


async def test_the_periodic_catch_up_sends_a_message_whose_event_was_lost(
    two_nodes: tuple[Server, Server],
) -> None:
    a, b = two_nodes
    token = await a.token()
    async with b.agent(token) as agent:
        visitor, cm, conv, visitor_id = await _conversation(a, b, agent)
        try:
            # Stored on A, never published: as if A died right after COMMIT.
            stored = await a.state.store.append_message(
                _stored_behind_the_hubs_back(visitor_id, conv, "v2")
            )
            hub_b = b.state.hub
            assert await hub_b.catch_up() == 0  # first look: it may merely be in flight
            assert await hub_b.catch_up() == 1  # still missing at the next: sent from the store
            got = await agent.until("message", seq=stored.seq)
            assert got["body"] == "lost event"
            assert await hub_b.catch_up() == 0  # nothing left behind
            assert hub_b.metrics.caught_up == 1
        finally:
            await cm.__aexit__(None, None, None)


async def test_a_retried_message_is_published_again(two_nodes: tuple[Server, Server]) -> None:
    a, b = two_nodes
    token = await a.token()
    async with b.agent(token) as agent:
        visitor, cm, conv, visitor_id = await _conversation(a, b, agent)
        try:
            stored = await a.state.store.append_message(
                _stored_behind_the_hubs_back(visitor_id, conv, "v2")
            )
            # The visitor never had its ack, so it sends again (here through B).
            async with b.visitor(hello={"visitor_token": _token_of(visitor)}) as (again, _):
                await again.send(
                    type="send", client_msg_id="v2", conversation_id=conv, body="lost event"
                )
                ack = await again.until("ack", client_msg_id="v2")
                assert ack["seq"] == stored.seq and ack["message_id"] == stored.id
            got = await agent.until("message", seq=stored.seq)
            assert got["message_id"] == stored.id
        finally:
            await cm.__aexit__(None, None, None)


def _token_of(visitor: Client) -> str:
    return next(f["visitor_token"] for f in visitor.seen if f["type"] == "welcome")
