"""The relay over real sockets: visitors and agents converse, and nothing is lost or doubled."""

from __future__ import annotations

from pathlib import Path

from chatserver.auth import token_hash
from tests.helpers import Server, make_settings, msg_id, running_server


async def start_conversation(visitor, body: str = "hello") -> dict:  # type: ignore[no-untyped-def]
    cid = msg_id()
    await visitor.send(type="send", client_msg_id=cid, body=body)
    ack = await visitor.until("ack", client_msg_id=cid)
    assert ack["seq"] == 1
    return ack


async def test_visitor_and_agent_converse(server: Server, token: str) -> None:
    """A visitor's message reaches a watching agent and the agent's reply reaches the visitor."""
    async with server.visitor() as (visitor, welcome), server.agent(token) as agent:
        assert welcome["conversations"] == []
        assert welcome["visitor_token"].startswith("vt_")
        ack = await start_conversation(visitor)
        conv = ack["conversation_id"]
        await agent.send(type="watch", conversation_id=conv)
        await agent.until("watching", conversation_id=conv, last_seq=1)

        await visitor.send(type="send", client_msg_id="v2", conversation_id=conv, body="anyone?")
        got = await agent.until("message", seq=2)
        assert got["body"] == "anyone?"
        assert got["author"]["role"] == "visitor"
        assert got["author"]["id"] == welcome["visitor_id"]
        assert got["ts"].endswith("Z") and len(got["ts"]) == 27

        await agent.send(type="send", client_msg_id="a1", conversation_id=conv, body="Yes, hi!")
        agent_ack = await agent.until("ack", client_msg_id="a1")
        assert agent_ack["seq"] == 3
        reply = await visitor.until("message", seq=3)
        assert reply["body"] == "Yes, hi!"
        assert reply["author"] == {
            "role": "agent",
            "id": reply["author"]["id"],
            "name": "Agent Smith",
        }
        # The sender got an ack for its own message, never a message frame.
        assert not [f for f in agent.seen if f["type"] == "message" and f["seq"] == 3]
        assert not [f for f in visitor.seen if f["type"] == "message" and f["seq"] == 2]


async def test_notes_never_reach_visitors(server: Server, token: str) -> None:
    """An internal note takes a seq but is sent to agents only, live and on resume."""
    async with (
        server.visitor() as (visitor, _),
        server.agent(token) as agent,
        server.agent(await server.token()) as other_agent,
    ):
        conv = (await start_conversation(visitor))["conversation_id"]
        for a in (agent, other_agent):
            await a.send(type="watch", conversation_id=conv)
            await a.until("watching")
        await agent.send(
            type="send", client_msg_id="n1", conversation_id=conv, body="secret", kind="note"
        )
        await agent.until("ack", client_msg_id="n1", seq=2)
        note = await other_agent.until("message", seq=2)
        assert note["kind"] == "note"
        await agent.send(type="send", client_msg_id="t1", conversation_id=conv, body="public")
        public = await visitor.until("message")
        assert public["seq"] == 3 and public["body"] == "public"
        await visitor.send(type="resume", conversation_id=conv, after_seq=0)
        await visitor.until("resumed", last_seq=3)
        assert all(f.get("kind") != "note" for f in visitor.seen)
        assert all("secret" not in str(f) for f in visitor.seen)


async def test_visitor_cannot_send_notes(server: Server) -> None:
    """A visitor's `send` with kind note is refused with forbidden and stores nothing."""
    async with server.visitor() as (visitor, _):
        conv = (await start_conversation(visitor))["conversation_id"]
        await visitor.send(
            type="send", client_msg_id="x", conversation_id=conv, body="hi", kind="note"
        )
        err = await visitor.until("error", code="forbidden", ref="x")
        assert err["message"]
    conversation = await server.state.store.conversation(conv)
    assert conversation is not None and conversation.last_seq == 1


async def test_two_tabs_see_everything(server: Server, token: str) -> None:
    """All of a visitor's tabs get every message, including ones the other tab sent."""
    async with server.visitor() as (tab1, welcome), server.agent(token) as agent:
        hello = {"visitor_token": welcome["visitor_token"]}
        async with server.visitor(hello=hello) as (tab2, welcome2):
            assert welcome2["visitor_id"] == welcome["visitor_id"]
            ack = await start_conversation(tab1, "from tab 1")
            conv = ack["conversation_id"]
            # Tab 2 learns of the new conversation and gets its first message.
            await tab2.until("conversation", id=conv)
            first = await tab2.until("message", seq=1)
            assert first["body"] == "from tab 1"
            await tab2.send(type="send", client_msg_id="t2", conversation_id=conv, body="tab 2")
            await tab2.until("ack", client_msg_id="t2")
            assert (await tab1.until("message", seq=2))["body"] == "tab 2"
            await agent.send(type="watch", conversation_id=conv)
            await agent.until("watching")
            await agent.send(type="send", client_msg_id="a", conversation_id=conv, body="agent")
            assert (await tab1.until("message", seq=3))["body"] == "agent"
            assert (await tab2.until("message", seq=3))["body"] == "agent"


async def test_drop_and_resume_gets_exactly_the_missed(server: Server, token: str) -> None:
    """A visitor that drops and resumes from its last seq gets exactly what it missed, once."""
    async with server.visitor() as (visitor, welcome):
        conv = (await start_conversation(visitor))["conversation_id"]
    token_v = welcome["visitor_token"]
    async with server.agent(token) as agent:
        for i in range(5):
            await agent.send(type="send", client_msg_id=f"a{i}", conversation_id=conv, body=f"m{i}")
            await agent.until("ack", client_msg_id=f"a{i}")
    async with server.visitor(hello={"visitor_token": token_v}) as (visitor, welcome2):
        assert welcome2["conversations"] == [
            {"id": conv, "status": "open", "last_seq": 6, "agent_read_seq": 0}
        ]
        await visitor.send(type="resume", conversation_id=conv, after_seq=1)
        frames = []
        while True:
            frame = await visitor.recv()
            if frame["type"] == "resumed":
                assert frame["last_seq"] == 6
                break
            frames.append(frame)
        assert [f["seq"] for f in frames] == [2, 3, 4, 5, 6]
        assert [f["body"] for f in frames] == [f"m{i}" for i in range(5)]
        # Resuming again on the same socket sends nothing twice.
        await visitor.send(type="resume", conversation_id=conv, after_seq=1)
        assert (await visitor.expect("resumed"))["last_seq"] == 6


async def test_resume_while_live_traffic_keeps_order_without_doubles(tmp_path: Path) -> None:
    """Live messages arriving during a replay are neither lost nor doubled."""
    settings = make_settings(tmp_path, rate_limit_per_second=1e6, rate_limit_burst=10**6)
    async with running_server(settings) as server, server.visitor() as (visitor, welcome):
        conv = (await start_conversation(visitor))["conversation_id"]
    async with running_server(settings) as server, server.agent(await server.token()) as agent:
        for i in range(300):
            await agent.send(type="send", client_msg_id=f"old{i}", conversation_id=conv, body="o")
        await agent.until("ack", client_msg_id="old299")
        async with server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (v, w):
            assert w["conversations"][0]["last_seq"] == 301
            await v.send(type="resume", conversation_id=conv, after_seq=0)
            for i in range(300):
                await agent.send(
                    type="send", client_msg_id=f"new{i}", conversation_id=conv, body="n"
                )
            await agent.until("ack", client_msg_id="new299")
            seqs: list[int] = []
            while len(seqs) < 601:
                frame = await v.recv()
                if frame["type"] == "message":
                    seqs.append(frame["seq"])
            resumed = [f for f in v.seen if f["type"] == "resumed"]
            assert len(resumed) == 1
            # The old ones up to the resume point come in order, then live; never twice.
            assert sorted(seqs) == list(range(1, 602))
            assert len(set(seqs)) == 601


async def test_duplicate_client_msg_id_stores_one_message(server: Server, token: str) -> None:
    """Sending the same client_msg_id again returns the first ack and stores nothing new."""
    async with server.visitor() as (visitor, _), server.agent(token) as agent:
        first = await start_conversation(visitor)
        conv = first["conversation_id"]
        # Even the conversation-starting send is idempotent: no second conversation.
        await visitor.send(type="send", client_msg_id=first["client_msg_id"], body="hello")
        again = await visitor.until("ack", client_msg_id=first["client_msg_id"])
        assert again == first
        await agent.send(type="watch", conversation_id=conv)
        await agent.until("watching")
        for _ in range(3):
            await visitor.send(type="send", client_msg_id="dup", conversation_id=conv, body="x")
        acks = [await visitor.until("ack", client_msg_id="dup") for _ in range(3)]
        assert len({(a["message_id"], a["seq"]) for a in acks}) == 1
        await visitor.send(type="send", client_msg_id="after", conversation_id=conv, body="y")
        await visitor.until("ack", client_msg_id="after", seq=3)
        got = await agent.until("message", seq=2)
        assert got["body"] == "x"
        assert (await agent.until("message"))["seq"] == 3  # no second copy of seq 2 in between
    page = await server.state.store.list_conversations()
    assert len(page.items) == 1
    messages = await server.state.store.messages_after(conv, 0, 100)
    assert [m.seq for m in messages] == [1, 2, 3]


async def test_concurrent_senders_get_gapless_seqs(server: Server, token: str) -> None:
    """Many sockets sending at once into one conversation get seqs 1..N with no gap or repeat."""
    async with server.visitor() as (visitor, welcome):
        conv = (await start_conversation(visitor))["conversation_id"]
        tokens = [await server.token(name=f"agent {i}") for i in range(3)]
        import contextlib

        async with contextlib.AsyncExitStack() as stack:
            agents = [await stack.enter_async_context(server.agent(t)) for t in tokens]
            for n, a in enumerate(agents):
                for i in range(50):
                    await a.send(
                        type="send", client_msg_id=f"{n}-{i}", conversation_id=conv, body="b"
                    )
            for i in range(50):
                await visitor.send(
                    type="send", client_msg_id=f"v{i}", conversation_id=conv, body="v"
                )
            seqs = []
            for n, a in enumerate(agents):
                for i in range(50):
                    seqs.append((await a.until("ack", client_msg_id=f"{n}-{i}"))["seq"])
            for i in range(50):
                seqs.append((await visitor.until("ack", client_msg_id=f"v{i}"))["seq"])
    assert sorted(seqs) == list(range(2, 202))
    batches = server.state.metrics.commit_batch.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    total = next(s.value for s in batches if s.name.endswith("_sum"))
    # Group commit: the 200 concurrent writes shared transactions.
    assert count < total


async def test_typing_and_read_reach_the_other_side(server: Server, token: str) -> None:
    """Typing and read state go to the other participants with their author, not back."""
    async with server.visitor() as (visitor, welcome), server.agent(token) as agent:
        conv = (await start_conversation(visitor))["conversation_id"]
        await agent.send(type="watch", conversation_id=conv)
        await agent.until("watching")
        await visitor.send(type="typing", conversation_id=conv, state=True)
        typing = await agent.until("typing")
        assert typing["state"] is True and typing["author"]["id"] == welcome["visitor_id"]
        await agent.send(type="read", conversation_id=conv, seq=1)
        read = await visitor.until("read")
        assert read["seq"] == 1 and read["author"]["role"] == "agent"
        await visitor.send(type="ping")
        await visitor.expect("pong")
        assert not [f for f in visitor.seen if f["type"] == "typing"]
    state = await server.state.store.read_state(conv)
    assert state[0][0] == "agent" and state[0][2] == 1
    # A later hello tells the visitor how far agents have read ("Seen" after a reload).
    async with server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (_, again):
        assert again["conversations"][0]["agent_read_seq"] == 1


async def test_inbox_subscription_sees_new_and_changed_conversations(
    server: Server, token: str
) -> None:
    """Agents subscribed to an inbox see new conversations and assignment changes live."""
    async with server.agent(token) as agent, server.visitor() as (visitor, _):
        await agent.send(type="subscribe", inbox="unassigned")
        await agent.until("subscribed", inbox="unassigned")
        conv = (await start_conversation(visitor))["conversation_id"]
        created = await agent.until("conversation", id=conv)
        assert created["status"] == "open" and created["assignee"] is None
        async with server.http(token) as http:
            me = (await http.get("/api/v1/conversations/" + conv)).json()
            assert me["id"] == conv
            other = await server.token(name="Other")
            other_agent = await server.state.store.token(token_hash(other))
            assert other_agent is not None
            r = await http.patch(
                f"/api/v1/conversations/{conv}", json={"assignee_id": other_agent.agent.id}
            )
            assert r.status_code == 200, r.text
        changed = await agent.until("conversation", id=conv)
        assert changed["assignee"] == {"id": other_agent.agent.id, "name": "Other"}
        # The visitor hears of the change in their conversation too.
        await visitor.until("conversation", id=conv, assignee=changed["assignee"])


async def test_sockets_survive_a_server_restart_with_resume(tmp_path: Path) -> None:
    """After a clean restart on the same data, a visitor resumes and finds everything."""
    settings = make_settings(tmp_path)
    async with running_server(settings) as server, server.visitor() as (visitor, welcome):
        conv = (await start_conversation(visitor))["conversation_id"]
        for i in range(10):
            await visitor.send(type="send", client_msg_id=f"m{i}", conversation_id=conv, body="b")
        await visitor.until("ack", client_msg_id="m9")
    async with (
        running_server(settings) as server,
        server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (visitor, welcome2),
    ):
        assert welcome2["visitor_id"] == welcome["visitor_id"]
        assert welcome2["conversations"][0]["last_seq"] == 11
        await visitor.send(type="resume", conversation_id=conv, after_seq=0)
        await visitor.until("resumed", last_seq=11)
        assert [f["seq"] for f in visitor.seen if f["type"] == "message"] == list(range(1, 12))


async def test_each_tab_hears_of_a_new_conversation_once(server: Server, token: str) -> None:
    """A new conversation is announced once per visitor socket, with last_seq 1."""
    async with (
        server.visitor() as (tab1, welcome),
        server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (tab2, _),
    ):
        ack = await start_conversation(tab1)
        conv = ack["conversation_id"]
        await tab2.until("message", seq=1)
        await tab1.send(type="ping")
        await tab1.until("pong")
        await tab2.send(type="ping")
        await tab2.until("pong")
        for tab in (tab1, tab2):
            announced = [f for f in tab.seen if f["type"] == "conversation"]
            assert len(announced) == 1, announced
            assert announced[0]["id"] == conv and announced[0]["last_seq"] == 1


async def test_visitors_do_not_see_the_agents_tags(server: Server, token: str) -> None:
    """A conversation change reaches the visitor without tags; agents see them."""
    async with server.visitor() as (visitor, _), server.agent(token) as agent:
        conv = (await start_conversation(visitor))["conversation_id"]
        await agent.send(type="watch", conversation_id=conv)
        await agent.until("watching")
        async with server.http(token) as http:
            r = await http.patch(
                f"/api/v1/conversations/{conv}",
                json={"tags": ["angry-customer"], "status": "pending"},
            )
            assert r.status_code == 200
        seen_by_agent = await agent.until("conversation", id=conv, status="pending")
        assert seen_by_agent["tags"] == ["angry-customer"]
        seen_by_visitor = await visitor.until("conversation", id=conv, status="pending")
        assert seen_by_visitor["tags"] == []
        assert "angry" not in str(visitor.seen)


async def test_a_client_msg_id_reused_in_another_conversation_is_a_conflict(
    server: Server, token: str
) -> None:
    """Retrying a client_msg_id against a different conversation is refused, not mis-acked."""
    async with server.visitor() as (v1, _), server.visitor() as (v2, _):
        conv1 = (await start_conversation(v1))["conversation_id"]
        conv2 = (await start_conversation(v2))["conversation_id"]
    async with server.agent(token) as agent:
        await agent.send(type="send", client_msg_id="same", conversation_id=conv1, body="a")
        await agent.until("ack", client_msg_id="same", conversation_id=conv1)
        await agent.send(type="send", client_msg_id="same", conversation_id=conv2, body="b")
        err = await agent.until("error", ref="same")
        assert err["code"] == "conflict"
    conversation = await server.state.store.conversation(conv2)
    assert conversation is not None and conversation.last_seq == 1


async def test_a_long_replay_fits_a_small_send_queue(tmp_path: Path) -> None:
    """Resume pages by the send queue's size and waits for the reader: no 1013 on replay."""
    settings = make_settings(
        tmp_path, send_queue_max=10, rate_limit_per_second=1e6, rate_limit_burst=10**6
    )
    async with running_server(settings) as server:
        async with server.visitor() as (visitor, welcome):
            conv = (await start_conversation(visitor))["conversation_id"]
            for i in range(60):
                await visitor.send(
                    type="send", client_msg_id=f"m{i}", conversation_id=conv, body=f"{i}"
                )
                await visitor.until("ack", client_msg_id=f"m{i}")
        async with server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (v, _):
            await v.send(type="resume", conversation_id=conv, after_seq=0)
            await v.until("resumed", last_seq=61)
            seqs = [f["seq"] for f in v.seen if f["type"] == "message"]
            assert seqs == list(range(1, 62))


async def test_visitors_learn_whether_an_agent_is_online(server: Server) -> None:
    """welcome says if a human agent is online; visitors hear presence when that changes."""
    async with server.visitor() as (visitor, welcome):
        assert welcome["agents_online"] is False and welcome["open_now"] is True
        token = await server.token()
        async with server.agent(token):
            assert await visitor.until("presence") == {
                "type": "presence",
                "agents_online": True,
                "open_now": True,
            }
            async with server.visitor() as (_, second):
                assert second["agents_online"] is True
            async with server.agent(token):  # a second socket of the same agent: no news
                pass
        assert (await visitor.until("presence"))["agents_online"] is False
        assert [f["agents_online"] for f in visitor.seen if f["type"] == "presence"] == [
            True,
            False,
        ]


async def test_bots_do_not_count_as_someone_online(server: Server) -> None:
    """A bot's socket (a token made by `chatserver token create`) does not make agents_online true."""
    store = server.state.store
    bot = await store.add_agent(
        agent_id="bot-1",
        email=None,
        name="Helper bot",
        role="agent",
        password_hash=None,
        now=1,
        kind="bot",
    )
    await store.create_api_token("tok-1", token_hash("cs_bot"), bot.id, 1)
    async with server.agent("cs_bot") as agent:
        await agent.send(type="ping")
        await agent.until("pong")
        async with server.visitor() as (_, welcome):
            assert welcome["agents_online"] is False


async def test_a_message_left_offline_starts_a_pending_conversation(
    server: Server, token: str
) -> None:
    """A send with a contact email starts the conversation as pending, with that contact."""
    async with server.agent(token) as agent, server.visitor() as (visitor, _):
        await agent.send(type="subscribe", inbox="all")
        await agent.until("subscribed")
        await visitor.send(
            type="send",
            client_msg_id="off",
            body="Call me back",
            contact={"email": "kari@example.no"},
        )
        ack = await visitor.until("ack", client_msg_id="off")
        announced = await agent.until("conversation", id=ack["conversation_id"])
        assert announced["status"] == "pending"
        async with server.http(token) as http:
            c = (await http.get(f"/api/v1/conversations/{ack['conversation_id']}")).json()
        assert c["status"] == "pending" and c["contact_email"] == "kari@example.no"
        # A contact belongs to the first message only, and must look like an email.
        await visitor.send(
            type="send",
            client_msg_id="x1",
            conversation_id=ack["conversation_id"],
            body="b",
            contact={"email": "kari@example.no"},
        )
        assert (await visitor.until("error", ref="x1"))["code"] == "bad_request"
        await visitor.send(
            type="send", client_msg_id="x2", body="b", contact={"email": "not-an-email"}
        )
        assert (await visitor.until("error", ref="x2"))["code"] == "bad_frame"
        await agent.send(
            type="send",
            client_msg_id="x3",
            conversation_id=ack["conversation_id"],
            body="b",
            contact={"email": "a@b.c"},
        )
        assert (await agent.until("error", ref="x3"))["code"] == "bad_request"


async def test_a_visitor_writing_again_reopens_a_resolved_conversation(
    server: Server, token: str
) -> None:
    """A resolved conversation the visitor writes into is open again, and agents hear of it."""
    async with server.visitor() as (visitor, _), server.agent(token) as agent:
        conv = (await start_conversation(visitor))["conversation_id"]
        await agent.send(type="subscribe", inbox="all")
        await agent.until("subscribed")
        async with server.http(token) as http:
            r = await http.patch(f"/api/v1/conversations/{conv}", json={"status": "resolved"})
            assert r.json()["status"] == "resolved"
            await agent.until("conversation", id=conv, status="resolved")
            # An agent's message does not reopen it; the visitor's does.
            await http.post(
                f"/api/v1/conversations/{conv}/messages", json={"client_msg_id": "a", "body": "Bye"}
            )
            assert (await http.get(f"/api/v1/conversations/{conv}")).json()["status"] == "resolved"
            await visitor.send(
                type="send", client_msg_id="again", conversation_id=conv, body="One more thing"
            )
            await visitor.until("ack", client_msg_id="again")
            reopened = await agent.until("conversation", id=conv, status="open")
            # 1 hello, 2 the `resolved` line, 3 "Bye", 4 the visitor's, 5 the `reopened` line.
            assert reopened["last_seq"] == 5
            c = (await http.get(f"/api/v1/conversations/{conv}")).json()
            assert c["status"] == "open" and c["closed_at"] is None
