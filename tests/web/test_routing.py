"""Presence and routing: away agents, round-robin auto-assignment under capacity."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.helpers import Client, Server, make_settings, msg_id, running_server


async def new_conversation(server: Server) -> str:
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id=msg_id(), body="hello")
        return str((await visitor.until("ack"))["conversation_id"])


async def assignee_of(server: Server, conversation_id: str, watcher: Client) -> str | None:
    """The assignee once auto-assignment has run (the watcher sees the inbox change)."""
    frame = await watcher.until("conversation", id=conversation_id, status="open")
    while frame["assignee"] is None:
        frame = await watcher.until("conversation", id=conversation_id)
    return str(frame["assignee"]["name"])


async def test_new_conversations_go_round_robin_within_capacity(tmp_path: Path) -> None:
    """Online agents take turns; one at capacity is skipped; when all are full it waits."""
    settings = make_settings(tmp_path, auto_assign=True, agent_capacity=2)
    async with running_server(settings) as server, contextlib.AsyncExitStack() as stack:
        tokens = [await server.token(name=n) for n in ("Ann", "Bob")]
        agents = [await stack.enter_async_context(server.agent(t)) for t in tokens]
        watcher = agents[0]
        await watcher.send(type="subscribe", inbox="all")
        await watcher.until("subscribed")
        names = [
            await assignee_of(server, await new_conversation(server), watcher) for _ in range(4)
        ]
        assert sorted(names) == ["Ann", "Ann", "Bob", "Bob"]
        assert names[0] != names[1] and names[2] != names[3]
        # Both hold two open conversations now: the fifth waits in Unassigned.
        fifth = await new_conversation(server)
        async with server.http(tokens[0]) as http:
            unassigned = (
                await http.get("/api/v1/conversations", params={"assignee": "none"})
            ).json()
        assert [c["id"] for c in unassigned["items"]] == [fifth]


async def test_away_agents_get_nothing_and_do_not_count_as_online(tmp_path: Path) -> None:
    """An agent who says away is skipped by routing, shown away, and visitors see nobody online."""
    settings = make_settings(tmp_path, auto_assign=True, agent_capacity=5)
    async with running_server(settings) as server:
        token = await server.token(name="Ann")
        async with server.agent(token) as ann, server.visitor() as (visitor, welcome):
            assert welcome["agents_online"] is True
            await ann.send(type="status", status="away")
            presence = await ann.until("presence", status="away")
            assert presence["agent"]["name"] == "Ann"
            assert (await visitor.until("presence"))["agents_online"] is False
            conv = await new_conversation(server)
            async with server.http(token) as http:
                assert (await http.get(f"/api/v1/conversations/{conv}")).json()["assignee"] is None
            await ann.send(type="status", status="online")
            await ann.until("presence", status="online")
            assert (await visitor.until("presence"))["agents_online"] is True
            await ann.send(type="status", status="busy")
            assert (await ann.until("error"))["code"] == "bad_frame"


async def test_auto_assignment_can_be_turned_off(server: Server, token: str) -> None:
    """With auto_assign off (the test default) new conversations wait in Unassigned."""
    async with server.agent(token):
        conv = await new_conversation(server)
        await server.state.hub.background_done()  # any assignment would have run by now
        async with server.http(token) as http:
            unassigned = (
                await http.get("/api/v1/conversations", params={"assignee": "none"})
            ).json()
        assert [c["id"] for c in unassigned["items"]] == [conv]
