"""The protocol core without a socket: sessions fed frames, peers' outboxes read back.

A real SQLite store and the in-process broker; no network.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.broker.base import Event
from chatserver.broker.memory import MemoryBroker
from chatserver.clock import uuid7
from chatserver.config import Settings
from chatserver.hub.hub import Hub, message_frame
from chatserver.hub.peer import Peer
from chatserver.hub.session import AgentSession, VisitorSession
from chatserver.store.models import Agent, NewMessage
from chatserver.store.sqlite import SQLiteStore


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    store = SQLiteStore(tmp_path / "chat.db", synchronous="NORMAL")
    await store.open()
    hub = Hub(store, MemoryBroker())
    await hub.start()
    yield hub
    await hub.close()
    await store.close()


SETTINGS = Settings.from_mapping({"send_queue_max": 10})


async def settle(hub: Hub) -> None:
    """Let committed writes run their callbacks: wait until the writer is idle."""
    await hub.store.writer.idle()  # type: ignore[attr-defined]


def frames(peer: Peer) -> list[dict[str, Any]]:
    return [json.loads(f) for f in peer.take_frames()]


def assert_frame_sent(peer: Peer, type_: str, **fields: Any) -> dict[str, Any]:
    """The peer's queued frames hold exactly one frame, of this type and these fields."""
    sent = frames(peer)
    assert len(sent) == 1, sent
    assert sent[0]["type"] == type_, sent
    for key, value in fields.items():
        assert sent[0][key] == value, sent
    return sent[0]


async def visitor(hub: Hub, **hello: Any) -> tuple[VisitorSession, dict[str, Any]]:
    session = VisitorSession(
        hub,
        SETTINGS,
        ip="203.0.113.9",
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
    )
    await session.handle(json.dumps({"type": "hello", **hello}))
    sent = frames(session.peer)
    welcome = next(f for f in sent if f["type"] == "welcome")
    return session, welcome


async def start(hub: Hub, session: VisitorSession, body: str = "hi") -> str:
    await session.handle(json.dumps({"type": "send", "client_msg_id": uuid7(), "body": body}))
    await settle(hub)
    ack = next(f for f in frames(session.peer) if f["type"] == "ack")
    return str(ack["conversation_id"])


async def test_hello_makes_a_visitor_and_a_session(hub: Hub) -> None:
    """A first hello creates a visitor with a token, and a session with device data (P4)."""
    session, welcome = await visitor(hub, page={"url": "https://shop/x", "referrer": "https://g"})
    assert welcome["account"] is None and welcome["conversations"] == []
    sessions = await hub.store.sessions_of(welcome["visitor_id"])
    assert len(sessions) == 1
    info = sessions[0]
    assert (info.ip, info.device_class, info.os, info.page_url, info.referrer) == (
        "203.0.113.9",
        "mobile",
        "iOS",
        "https://shop/x",
        "https://g",
    )


async def test_a_known_token_is_the_same_visitor_and_an_unknown_one_a_new(hub: Hub) -> None:
    """hello with a stored token resumes that visitor; a token the server does not know starts anew."""
    _, first = await visitor(hub)
    _, again = await visitor(hub, visitor_token=first["visitor_token"])
    assert again["visitor_id"] == first["visitor_id"]
    _, stranger = await visitor(hub, visitor_token="vt_made_up")
    assert stranger["visitor_id"] != first["visitor_id"]
    assert stranger["visitor_token"] != "vt_made_up"


async def test_consent_for_the_current_policy_is_recorded(hub: Hub) -> None:
    """With a policy published, hello with its version records acceptance; welcome says so."""
    await hub.store.publish_policy("2019-06-01", "/privacy", 1)
    _, before = await visitor(hub)
    assert before["policy"] == {"version": "2019-06-01", "url": "/privacy", "accepted": False}
    _, accepted = await visitor(
        hub, visitor_token=before["visitor_token"], consent={"version": "2019-06-01"}
    )
    assert accepted["policy"]["accepted"] is True
    _, later = await visitor(hub, visitor_token=before["visitor_token"])
    assert later["policy"]["accepted"] is True
    await hub.store.publish_policy("2026-11-01", "/privacy", 2)
    _, newer = await visitor(hub, visitor_token=before["visitor_token"])
    assert newer["policy"] == {"version": "2026-11-01", "url": "/privacy", "accepted": False}


async def test_consent_for_an_old_version_is_a_conflict(hub: Hub) -> None:
    """Accepting a version that is not the current one records nothing and says conflict."""
    await hub.store.publish_policy("2026-11-01", None, 1)
    session = VisitorSession(hub, SETTINGS)
    await session.handle('{"type":"hello","consent":{"version":"2019-06-01"}}')
    welcome, error = frames(session.peer)
    assert welcome["policy"]["accepted"] is False
    assert error["code"] == "conflict"


async def test_identity_tokens_need_the_privacy_service(hub: Hub) -> None:
    """Without identity verification wired in, an identity token gets the welcome (anonymous)
    and then unauthorized."""
    session = VisitorSession(hub, SETTINGS)
    await session.handle('{"type":"hello","identity":"x.y.z"}')
    welcome, error = frames(session.peer)
    assert error["code"] == "unauthorized"
    assert welcome["type"] == "welcome" and welcome["account"] is None


async def test_a_gap_in_live_events_is_filled_from_the_store(hub: Hub) -> None:
    """An event whose seq jumps ahead makes the socket read the missed ones first, in order."""
    session, _ = await visitor(hub)
    conv = await start(hub, session)
    # Two messages stored, but only the second one's event reaches this node.
    stored = [
        await hub.store.append_message(
            NewMessage(
                message_id=uuid7(),
                author_role="agent",
                author_id="a",
                kind="text",
                body=f"m{i}",
                created_at=5,
                client_msg_id=f"x{i}",
                conversation_id=conv,
            )
        )
        for i in (2, 3)
    ]
    lost, arrived = stored
    session.peer.deliver(
        Event(
            topic="c:" + conv,
            kind="message",
            frame=message_frame(arrived),
            conversation_id=conv,
            seq=arrived.seq,
        )
    )
    assert session.peer.cursors[conv].syncing  # the fill is under way
    await hub.background_done()
    got = frames(session.peer)
    assert [(f["seq"], f["body"]) for f in got] == [(2, "m2"), (3, "m3")]
    assert lost.seq == 2


async def test_live_duplicates_and_notes_are_not_sent_to_visitors(hub: Hub) -> None:
    """A visitor's socket drops repeated events and notes, yet its seq moves past notes."""
    session, _ = await visitor(hub)
    conv = await start(hub, session)
    peer = session.peer
    note = Event(
        topic="c:" + conv,
        kind="message",
        frame='{"type":"message","kind":"note"}',
        conversation_id=conv,
        seq=2,
        agents_only=True,
    )
    text = Event(
        topic="c:" + conv,
        kind="message",
        frame='{"type":"message","seq":3}',
        conversation_id=conv,
        seq=3,
    )
    for event in (note, text, text, note):
        peer.deliver(event)
    assert frames(peer) == [{"type": "message", "seq": 3}]
    assert peer.cursors[conv].seq == 3 and not peer.cursors[conv].syncing


async def test_a_client_that_does_not_read_is_closed_with_1013(hub: Hub) -> None:
    """More frames waiting than send_queue_max closes the socket (it must resume)."""
    session, _ = await visitor(hub)
    for _ in range(11):
        await session.handle('{"type":"ping"}')
    assert session.peer.closing is not None and session.peer.closing[0] == 1013


async def test_agents_see_each_other_come_and_go(hub: Hub) -> None:
    """An agent's first socket announces online, its last one offline, to other agents."""
    a = AgentSession(
        hub, SETTINGS, Agent(id="a", email=None, name="Ann", role="agent", active=True)
    )
    b = AgentSession(
        hub, SETTINGS, Agent(id="b", email=None, name="Bob", role="agent", active=True)
    )
    assert {"type": "presence", "agent": {"id": "b", "name": "Bob"}, "status": "online"} in frames(
        a.peer
    )
    frames(b.peer)
    b2 = AgentSession(
        hub, SETTINGS, Agent(id="b", email=None, name="Bob", role="agent", active=True)
    )
    assert frames(a.peer) == []  # a second socket of Bob is no news
    b.closed()
    assert frames(a.peer) == []
    b2.closed()
    assert frames(a.peer) == [
        {"type": "presence", "agent": {"id": "b", "name": "Bob"}, "status": "offline"}
    ]


async def test_a_fast_sender_is_held_to_max_unacked(hub: Hub) -> None:
    """A socket never has more than max_unacked sends waiting for commit; the rest wait their turn."""
    settings = Settings.from_mapping(
        {
            "max_unacked": 3,
            "rate_limit_per_second": 1e6,
            "rate_limit_burst": 10**6,
            "send_queue_max": 10**5,
        }
    )
    session = VisitorSession(hub, settings)
    await session.handle('{"type":"hello"}')
    conv = await start(hub, session)
    most = 0
    send_message = hub.send_message

    def counting(*args: Any, **kwargs: Any) -> None:
        nonlocal most
        send_message(*args, **kwargs)
        most = max(most, session._unacked)

    hub.send_message = counting  # type: ignore[method-assign]
    for i in range(300):
        await session.handle(
            json.dumps(
                {"type": "send", "client_msg_id": f"m{i}", "conversation_id": conv, "body": "x"}
            )
        )
    await settle(hub)
    acks = [f for f in frames(session.peer) if f["type"] == "ack"]
    assert [a["seq"] for a in acks] == list(range(2, 302))
    assert most == 3


async def test_nothing_is_stored_before_the_current_notice_is_accepted(hub: Hub) -> None:
    """With a policy published, a visitor who has not accepted it cannot send (P9)."""
    await hub.store.publish_policy("2019-06-01", "/privacy", 1)
    session, welcome = await visitor(hub)
    assert welcome["policy"]["accepted"] is False
    await session.handle('{"type":"send","client_msg_id":"early","body":"hi"}')
    error = assert_frame_sent(session.peer, "error", code="forbidden", ref="early")
    assert "2019-06-01" in error["message"]
    assert await hub.store.visitor_conversations(welcome["visitor_id"]) == []
    accepted, _ = await visitor(
        hub, visitor_token=welcome["visitor_token"], consent={"version": "2019-06-01"}
    )
    await accepted.handle('{"type":"send","client_msg_id":"now","body":"hi"}')
    await settle(hub)
    assert [f["type"] for f in frames(accepted.peer)][:1] == ["ack"]


async def test_a_new_agent_socket_hears_who_is_already_here(hub: Hub) -> None:
    """An agent connecting later gets a presence frame for each agent already online or away."""
    ann = AgentSession(
        hub, SETTINGS, Agent(id="a", email=None, name="Ann", role="agent", active=True)
    )
    await ann.handle('{"type":"status","status":"away"}')
    bob = AgentSession(
        hub, SETTINGS, Agent(id="b", email=None, name="Bob", role="agent", active=True)
    )
    heard = frames(bob.peer)
    assert {"type": "presence", "agent": {"id": "a", "name": "Ann"}, "status": "away"} in heard
    assert {"type": "presence", "agent": {"id": "b", "name": "Bob"}, "status": "online"} in heard
    assert len(heard) == 2


async def test_nothing_reaches_a_visitor_before_its_welcome(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket follows its conversations before the welcome is written (so nothing is
    missed); what happens meanwhile (here an agent typing) comes after the welcome."""
    first, welcome = await visitor(hub)
    conv = await start(hub, first)
    typing = json.dumps({"type": "typing", "conversation_id": conv, "state": True})
    policy = hub.store.current_policy

    async def typing_during_hello() -> Any:
        hub.broker.publish(
            Event(topic="c:" + conv, kind="typing", frame=typing, conversation_id=conv)
        )
        return await policy()

    monkeypatch.setattr(hub.store, "current_policy", typing_during_hello)
    second = VisitorSession(hub, SETTINGS, ip="203.0.113.9", user_agent="test")
    await second.handle(json.dumps({"type": "hello", "visitor_token": welcome["visitor_token"]}))
    assert [f["type"] for f in frames(second.peer)] == ["welcome", "typing"]
