"""The Store's core operations answer the same on SQLite and PostgreSQL: conversations
and their listing, reads, agents and tokens, policies and consents, origins, canned
responses, sessions and stats. Each test runs on both stores (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatserver.clock import uuid7
from chatserver.errors import BadRequest, Conflict, NotFound
from chatserver.store.models import AuditRecord, NewMessage, SessionInfo

T0 = 1_700_000_000_000_000
SECOND = 1_000_000


def message(
    conversation: str | None,
    body: str,
    *,
    at: int = T0,
    visitor: str = "v1",
    role: str = "visitor",
    author: str | None = None,
    cid: str | None = None,
    kind: str = "text",
    contact_email: str | None = None,
) -> NewMessage:
    return NewMessage(
        message_id=uuid7(),
        author_role=role,
        author_id=author if author is not None else visitor,
        kind=kind,
        body=body,
        created_at=at,
        client_msg_id=cid or uuid7(),
        conversation_id=conversation,
        new_conversation_id=None if conversation else uuid7(),
        visitor_id=visitor if role == "visitor" else None,
        contact_email=contact_email,
    )


async def start(store: Any, visitor: str = "v1", at: int = T0, **kw: Any) -> str:
    if await store.visitor_by_token_hash("hash-" + visitor) is None:
        await store.create_visitor(visitor, "hash-" + visitor, T0)
    first = await store.append_message(message(None, "hello", at=at, visitor=visitor, **kw))
    return str(first.conversation_id)


async def agent(store: Any, agent_id: str = "a1", role: str = "agent") -> None:
    await store.add_agent(
        agent_id=agent_id,
        email=f"{agent_id}@example.org",
        name=f"Agent {agent_id}",
        role=role,
        password_hash="h",
        now=T0,
    )


async def test_visitors_and_sessions(store: Any) -> None:
    visitor = await store.create_visitor("v1", "hash-v1", T0)
    assert visitor.id == "v1" and visitor.account_id is None
    assert await store.visitor_by_token_hash("hash-v1") == visitor
    assert await store.visitor_by_token_hash("nope") is None
    with pytest.raises(Conflict):
        await store.create_visitor("v2", "hash-v1", T0)
    info = SessionInfo(id="s1", visitor_id="v1", started_at=T0 + 1, ip="192.0.2.1", locale="nb")
    await store.start_session(info)
    store.end_session("s1", T0 + 5)
    await store.writer.idle()
    [got] = await store.sessions_of("v1")
    assert got.ip == "192.0.2.1" and got.locale == "nb" and got.ended_at == T0 + 5


async def test_a_new_conversation_and_its_status(store: Any) -> None:
    await store.create_visitor("v1", "hash-v1", T0)
    first = await store.append_message(message(None, "hi", contact_email="x@example.org"))
    assert first.created_conversation and first.seq == 1
    assert first.conversation_status == "pending"
    conv = await store.conversation(first.conversation_id)
    assert conv.status == "pending" and conv.contact_email == "x@example.org"
    assert conv.last_seq == 1 and conv.last_message_at == T0 and conv.visitor_id == "v1"
    assert [c.id for c in await store.visitor_conversations("v1")] == [conv.id]
    assert await store.last_seqs([conv.id, "missing"]) == {conv.id: 1}
    assert await store.conversation("missing") is None


async def test_a_message_for_an_unknown_visitor_or_without_a_conversation(store: Any) -> None:
    with pytest.raises(NotFound):
        await store.append_message(message(None, "hi", visitor="ghost"))
    bad = NewMessage(
        message_id=uuid7(),
        author_role="agent",
        author_id="a",
        kind="text",
        body="x",
        created_at=T0,
    )
    with pytest.raises(BadRequest):
        await store.append_message(bad)


async def test_a_client_msg_id_from_another_conversation_conflicts(store: Any) -> None:
    one = await start(store)
    two = await start(store)
    await store.append_message(message(one, "a", cid="same"))
    with pytest.raises(Conflict):
        await store.append_message(message(two, "b", cid="same"))
    # A retry of the message that started a conversation answers it, creating nothing.
    again = await store.append_message(message(None, "hello", cid="same"))
    assert again.duplicate and again.conversation_id == one and not again.created_conversation


async def test_a_visitor_writing_again_reopens_a_resolved_conversation(store: Any) -> None:
    await agent(store)
    conv = await start(store)
    before, after = await store.update_conversation(conv, now=T0 + SECOND, status="resolved")
    assert before.status == "open" and after.status == "resolved"
    assert after.closed_at == T0 + SECOND
    reply = await store.append_message(
        message(conv, "agent again", role="agent", author="a1", at=T0 + 2 * SECOND)
    )
    assert not reply.reopened and reply.conversation_status == "resolved"
    back = await store.append_message(message(conv, "me again", at=T0 + 3 * SECOND))
    # 1 hello, 2 the `resolved` line, 3 the agent; then this one and the `reopened` line.
    assert back.reopened and back.conversation_status == "open" and back.seq == 4
    [line] = back.events
    assert (line.seq, line.kind, line.author_role) == (5, "event", "system")
    assert line.event == {"type": "reopened", "by": None}
    got = await store.conversation(conv)
    assert got.status == "open" and got.closed_at is None and got.last_seq == 5
    assert got.last_message_at == T0 + 3 * SECOND and got.updated_at == T0 + 3 * SECOND


async def test_a_resolve_in_the_same_batch_as_a_message_wins(store: Any) -> None:
    conv = await start(store)
    results = await asyncio.gather(
        store.append_message(message(conv, "one", at=T0 + 1)),
        store.update_conversation(conv, now=T0 + 2, status="resolved"),
        store.append_message(message(conv, "two", role="agent", author="a", at=T0 + 3)),
    )
    # The resolve's event line takes seq 3, in the same transaction.
    assert results[2].seq == 4 and results[2].conversation_status == "resolved"
    assert results[1][1].last_seq == 3 and results[1][1].events[0].seq == 3
    assert (await store.conversation(conv)).status == "resolved"


async def test_update_conversation_checks_the_assignee(store: Any) -> None:
    await agent(store, "a1")
    await agent(store, "c1", role="compliance")
    conv = await start(store)
    _, after = await store.update_conversation(conv, now=T0 + 1, assignee_id="a1", tags=["x"])
    assert after.assignee_id == "a1" and after.assignee_name == "Agent a1"
    assert after.tags == ["x"] and after.updated_at == T0 + 1
    for bad in ("c1", "nobody"):
        with pytest.raises(BadRequest):
            await store.update_conversation(conv, now=T0 + 2, assignee_id=bad)
    await store.update_agent("a1", active=False)
    with pytest.raises(BadRequest):
        await store.update_conversation(conv, now=T0 + 2, assignee_id="a1")
    _, after = await store.update_conversation(conv, now=T0 + 3, unassign=True)
    assert after.assignee_id is None
    with pytest.raises(NotFound):
        await store.update_conversation("missing", now=T0, status="open")


async def test_listing_filters_and_pages(store: Any) -> None:
    await agent(store, "a1")
    ids = [await start(store, f"v{i}", at=T0 + i) for i in range(7)]
    await store.update_conversation(ids[1], now=T0 + 1, assignee_id="a1", tags=["vip", "b"])
    await store.update_conversation(ids[2], now=T0 + 2, status="resolved", tags=["b"])
    listed = await store.list_conversations(limit=3)
    assert [c.id for c in listed.items] == ids[::-1][:3]
    seen = [c.id for c in listed.items]
    while listed.next_cursor:
        listed = await store.list_conversations(limit=3, cursor=listed.next_cursor)
        seen += [c.id for c in listed.items]
    assert seen == ids[::-1]
    assert [c.id for c in (await store.list_conversations(tag="vip")).items] == [ids[1]]
    assert [c.id for c in (await store.list_conversations(tag="b")).items] == [ids[2], ids[1]]
    assert (await store.list_conversations(tag="v")).items == []
    resolved = await store.list_conversations(status="resolved")
    assert [c.id for c in resolved.items] == [ids[2]]
    assert [c.id for c in (await store.list_conversations(assignee_id="a1")).items] == [ids[1]]
    unassigned = await store.list_conversations(unassigned=True)
    assert ids[1] not in [c.id for c in unassigned.items] and len(unassigned.items) == 6
    with pytest.raises(BadRequest):
        await store.list_conversations(cursor="not-a-cursor")
    assert await store.assigned_load(["a1", "a2"]) == {"a1": 1}
    assert await store.assigned_load([]) == {}


async def test_reads_and_read_positions(store: Any) -> None:
    conv = await start(store)
    await store.append_message(message(conv, "two"))
    loop = asyncio.get_running_loop()

    async def read(role: str, reader: str, seq: int, conversation: str = conv) -> Any:
        future = loop.create_future()
        store.submit_read(conversation, role, reader, seq, T0 + seq, future.set_result)
        return await future

    assert await read("agent", "a1", 2) == 2
    assert await read("agent", "a1", 1) == 1  # answered, but the stored position stays
    assert await read("visitor", "v1", 1) == 1
    assert isinstance(await read("agent", "a1", 3), BadRequest)
    assert isinstance(await read("agent", "a1", 1, "missing"), NotFound)
    assert sorted(await store.read_state(conv)) == [("agent", "a1", 2), ("visitor", "v1", 1)]
    assert await store.agent_read_positions("v1") == {conv: 2}
    page = await store.list_conversations(reader_id="a1")
    assert [c.read_seq for c in page.items] == [2]
    assert [c.read_seq for c in (await store.list_conversations()).items] == [0]


async def test_a_read_in_the_same_batch_as_its_message(store: Any) -> None:
    conv = await start(store)
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    sent = store.append_message(message(conv, "two"))
    task = asyncio.ensure_future(sent)
    await asyncio.sleep(0)
    store.submit_read(conv, "agent", "a1", 2, T0, future.set_result)
    assert (await task).seq == 2
    assert await future == 2


async def test_agents_and_tokens(store: Any) -> None:
    await agent(store, "b")
    await agent(store, "a")
    with pytest.raises(Conflict):
        await agent(store, "a")  # same email
    assert [a.id for a in await store.list_agents()] == ["a", "b"]
    found = await store.agent_credentials("a@example.org")
    assert found is not None and found[0].id == "a" and found[1] == "h"
    assert await store.agent_credentials("x@example.org") is None
    changed = await store.update_agent("a", name="Ada", role="admin", password_hash="h2")
    assert changed.name == "Ada" and changed.role == "admin" and changed.active
    assert (await store.agent_credentials("a@example.org"))[1] == "h2"
    with pytest.raises(NotFound):
        await store.update_agent("zz", name="x")
    assert (await store.agent("a")) == changed
    assert await store.agent("zz") is None
    await store.create_api_token("t1", "th1", "a", T0)
    await store.create_api_token("t2", "th2", "b", T0 + 1)
    token = await store.token("th1")
    assert token is not None and token.id == "t1" and token.agent.name == "Ada"
    assert [(t[0], t[3].id) for t in await store.tokens()] == [("t2", "b"), ("t1", "a")]
    assert (await store.revoke_token("t1", T0 + 2)).id == "a"
    assert (await store.revoke_token("t1", T0 + 3)).id == "a"
    assert await store.token("th1") is None
    assert [t[2] for t in await store.tokens()] == [None, T0 + 2]
    with pytest.raises(NotFound):
        await store.revoke_token("nope", T0)


async def test_origins_and_canned_responses(store: Any) -> None:
    await store.allow_origin("https://b.example", T0)
    await store.allow_origin("https://a.example", T0)
    await store.allow_origin("https://a.example", T0)
    assert await store.allowed_origins() == ["https://a.example", "https://b.example"]
    assert await store.disallow_origin("https://a.example")
    assert not await store.disallow_origin("https://a.example")
    saved = await store.save_canned_response("r1", "hi", "Hello!", T0, create=True)
    assert saved.shortcut == "hi"
    with pytest.raises(Conflict):
        await store.save_canned_response("r2", "hi", "Other", T0, create=True)
    await store.save_canned_response("r1", "hello", "Hello!!", T0 + 1, create=False)
    with pytest.raises(NotFound):
        await store.save_canned_response("r9", "x", "y", T0, create=False)
    assert [(r.id, r.shortcut, r.updated_at) for r in await store.canned_responses()] == [
        ("r1", "hello", T0 + 1)
    ]
    await store.delete_canned_response("r1")
    with pytest.raises(NotFound):
        await store.delete_canned_response("r1")


async def test_policies_and_consents(store: Any) -> None:
    assert await store.current_policy() is None
    await store.publish_policy("1", None, T0)
    audit = AuditRecord(id=uuid7(), at=T0, action="policy.published", actor_role="admin")
    await store.publish_policy("2", "https://example.org/p", T0, audit=audit)
    with pytest.raises(Conflict):
        await store.publish_policy("1", None, T0 + 1)
    current = await store.current_policy()
    assert current is not None and current.version == "2"  # same time: the later one
    assert [p.version for p in await store.policies()] == ["2", "1"]
    assert [e.action for e in await store.audit_page()] == ["policy.published"]
    await store.create_visitor("v1", "hash-v1", T0)
    assert not await store.has_consent("2", "v1", None)
    await store.record_consent("c1", "2", "v1", None, T0)
    assert await store.has_consent("2", "v1", None)
    assert not await store.has_consent("1", "v1", None)


async def test_stats_rows(store: Any) -> None:
    await agent(store)
    day = 86_400 * SECOND
    conv = await start(store, at=T0)
    await store.append_message(message(conv, "reply", role="agent", author="a1", at=T0 + 5))
    await store.update_conversation(conv, now=T0 + 9, status="resolved")
    await start(store, "v2", at=T0 + day)
    await store.start_session(
        SessionInfo(id="s", visitor_id="v1", started_at=T0, device_class="desktop")
    )
    stats = await store.stats_rows(T0 - day, T0 + 2 * day)
    assert [n for _, n in stats["per_day"]] == [1, 1]
    assert stats["per_day"][0][0] == "2023-11-14"
    assert stats["first_responses"] == [5]
    assert stats["resolutions"] == [9]
    assert stats["devices"] == [("desktop", 1)]


async def test_changes_are_recorded_as_event_messages(store: Any) -> None:
    """Each change of assignee or status stores an event line (`kind: event`, by `system`)
    in the conversation's seq order, with its data in `messages.event` and a sentence as
    its body; tags alone make none. Event lines never count as the conversation's last
    message, visitors' reads leave them out, and the stats' first response ignores them."""
    await agent(store, "a1")
    await agent(store, "a2")
    ann = await store.agent("a1")
    conv = await start(store, at=T0)
    a1 = {"id": "a1", "name": "Agent a1"}
    a2 = {"id": "a2", "name": "Agent a2"}
    changes: list[tuple[dict[str, Any], Any]] = [
        ({"assignee_id": "a1"}, None),
        ({"assignee_id": "a2"}, ann),
        ({"unassign": True}, ann),
        ({"tags": ["vip"]}, ann),
        ({"status": "pending"}, ann),
        ({"status": "resolved", "assignee_id": "a1"}, ann),
        ({"status": "resolved"}, ann),  # no change: no line
        ({"status": "open"}, None),
    ]
    lines = []
    for i, (change, actor) in enumerate(changes, start=1):
        _, after = await store.update_conversation(conv, now=T0 + i, actor=actor, **change)
        lines += after.events
        assert after.last_seq == 1 + len(lines)
    assert [(m.seq, m.kind, m.author_role, m.author_id) for m in lines] == [
        (seq, "event", "system", None) for seq in range(2, 9)
    ]
    expected = [
        ({"type": "assigned", "to": a1, "by": None}, "Assigned to Agent a1 automatically"),
        (
            {"type": "transferred", "from": a1, "to": a2, "by": a1},
            "Transferred from Agent a1 to Agent a2 by Agent a1",
        ),
        ({"type": "unassigned", "from": a2, "by": a1}, "Unassigned from Agent a2 by Agent a1"),
        ({"type": "status", "status": "pending", "by": a1}, "Marked pending by Agent a1"),
        ({"type": "assigned", "to": a1, "by": a1}, "Assigned to Agent a1 by Agent a1"),
        ({"type": "resolved", "by": a1}, "Resolved by Agent a1"),
        ({"type": "reopened", "by": None}, "Reopened"),
    ]
    assert [(m.event, m.body) for m in lines] == expected
    # Read back from the column, in order among the messages.
    stored = await store.messages_after(conv, 0, 100)
    assert [(m.event, m.body) for m in stored[1:]] == expected
    assert stored[0].event is None and stored[0].kind == "text"
    assert [m.seq for m in await store.messages_after(conv, 0, 100, include_notes=False)] == [1]
    got = await store.conversation(conv)
    assert got.last_seq == 8 and got.last_message_at == T0 and got.status == "open"
    assert (await store.stats_rows(T0 - 1, T0 + SECOND))["first_responses"] == []


async def test_an_event_line_never_reopens_nor_moves_the_last_message(store: Any) -> None:
    """A rating stores its `rated` line in a resolved conversation: it stays resolved and
    keeps its last_message_at; a visitor's message reopens it, its `reopened` line after."""
    await agent(store, "a1")
    conv = await start(store, at=T0)
    await store.append_message(message(conv, "answer", role="agent", author="a1", at=T0 + 5))
    await store.update_conversation(conv, now=T0 + 6, status="resolved")
    rating, _ = await store.save_rating(conv, visitor_id="v1", score=4, comment=None, now=T0 + 9)
    [line] = rating.events
    assert (line.seq, line.body, line.event) == (
        4,
        "Rated 4/5",
        {"type": "rated", "score": 4, "comment_given": False},
    )
    got = await store.conversation(conv)
    assert (got.status, got.last_seq, got.last_message_at) == ("resolved", 4, T0 + 5)
    assert got.updated_at == T0 + 6
