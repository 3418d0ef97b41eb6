"""Event lines in a conversation's timeline, and live changes for every console: over real
sockets, agents watching a conversation get an event message for each assignment, status
change, rating and verification; visitors never do, live or on resume; inbox subscribers
get the rating and the verified account in `conversation` frames; visitors' frames lack them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import (
    Client,
    Server,
    identity_token,
    make_settings,
    msg_id,
    running_server,
)
from tests.web.test_openapi import assert_conforms
from tests.web.test_ratings import named_agent, start_conversation

SYSTEM = {"role": "system", "id": None, "name": None}
AGENT_ONLY_FIELDS = ("name", "verified_by", "rating")


async def patch(http: Any, conversation_id: str, **change: Any) -> dict[str, Any]:
    r = await http.patch(f"/api/v1/conversations/{conversation_id}", json=change)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def watch(agent: Client, conversation_id: str) -> None:
    await agent.send(type="watch", conversation_id=conversation_id)
    await agent.until("watching", conversation_id=conversation_id)


async def line(agent: Client, seq: int, event: dict[str, Any], body: str) -> dict[str, Any]:
    """The event message ``seq``, which must record ``event`` and say ``body``."""
    frame = await agent.until("message", seq=seq)
    assert frame["kind"] == "event" and frame["author"] == SYSTEM, frame
    assert (frame["event"], frame["body"]) == (event, body)
    assert frame["attachments"] == []
    return frame


def event_frames(client: Client) -> list[dict[str, Any]]:
    return [f for f in client.seen if f["type"] == "message" and f["kind"] == "event"]


async def test_each_change_is_an_event_line_for_agents_and_never_for_visitors(
    server: Server,
) -> None:
    """Assign, transfer, unassign, pending, resolve, a visitor's message reopening it, a
    resolve and a reopen by an agent: each is one event message with its data and sentence,
    by the agent who made the change (none for the visitor's reopening). The visitor gets
    none of them, live or on resume; the API lists them with `event`; they never move the
    conversation's last_message_at."""
    ann_id, ann = await named_agent(server, "Ann")
    bob_id, bob = await named_agent(server, "Bob")
    ANN, BOB = {"id": ann_id, "name": "Ann"}, {"id": bob_id, "name": "Bob"}
    async with (
        server.visitor() as (visitor, welcome),
        server.agent(ann) as watcher,
        server.http(ann) as as_ann,
        server.http(bob) as as_bob,
    ):
        conv = await start_conversation(visitor)
        await watch(watcher, conv)

        await patch(as_bob, conv, assignee_id=ann_id)
        await line(watcher, 2, {"type": "assigned", "to": ANN, "by": BOB}, "Assigned to Ann by Bob")
        await patch(as_ann, conv, assignee_id=bob_id)
        await line(
            watcher,
            3,
            {"type": "transferred", "from": ANN, "to": BOB, "by": ANN},
            "Transferred from Ann to Bob by Ann",
        )
        await patch(as_ann, conv, assignee_id=None)
        await line(
            watcher, 4, {"type": "unassigned", "from": BOB, "by": ANN}, "Unassigned from Bob by Ann"
        )
        await patch(as_bob, conv, status="pending", tags=["vip"])  # tags make no line
        await line(
            watcher, 5, {"type": "status", "status": "pending", "by": BOB}, "Marked pending by Bob"
        )
        resolved = await patch(as_bob, conv, status="resolved")
        await line(watcher, 6, {"type": "resolved", "by": BOB}, "Resolved by Bob")
        assert resolved["status"] == "resolved" and resolved["last_seq"] == 6

        # The visitor hears of the change, without what only agents see.
        seen_resolved = await visitor.until("conversation", id=conv, status="resolved")
        assert not set(AGENT_ONLY_FIELDS) & set(seen_resolved), seen_resolved
        assert seen_resolved["tags"] == []

        # The visitor writes again: their message, then the line saying it reopened.
        await visitor.send(type="send", client_msg_id="again", conversation_id=conv, body="Hi?")
        await visitor.until("ack", client_msg_id="again", seq=7)
        written = await watcher.until("message", seq=7)
        assert written["kind"] == "text" and "event" not in written
        await line(
            watcher,
            8,
            {"type": "reopened", "by": None},
            "Reopened by a message from the visitor",
        )
        await patch(as_ann, conv, status="resolved")
        await line(watcher, 9, {"type": "resolved", "by": ANN}, "Resolved by Ann")
        await patch(as_ann, conv, status="open")
        await line(watcher, 10, {"type": "reopened", "by": ANN}, "Reopened by Ann")

        # Event lines are not the conversation's last message.
        got = (await as_ann.get(f"/api/v1/conversations/{conv}")).json()
        assert (got["status"], got["last_seq"]) == ("open", 10)
        assert got["last_message_at"] == written["ts"]

        # The API lists them among the messages, with their data.
        r = await as_ann.get(f"/api/v1/conversations/{conv}/messages")
        assert r.status_code == 200, r.text
        assert_conforms("get", "/conversations/{id}/messages", 200, r.json())
        items = r.json()["items"]
        assert [(m["seq"], m["kind"]) for m in items] == [
            (1, "text"),
            *((seq, "event") for seq in range(2, 7)),
            (7, "text"),
            *((seq, "event") for seq in range(8, 11)),
        ]
        assert [m["event"]["type"] for m in items if m["kind"] == "event"] == [
            "assigned",
            "transferred",
            "unassigned",
            "status",
            "resolved",
            "reopened",
            "resolved",
            "reopened",
        ]
        assert items[0]["event"] is None and items[6]["event"] is None
        assert items[1]["author"] == SYSTEM and items[1]["body"] == "Assigned to Ann by Bob"

        # An agent's reply after all that is the next thing the visitor receives.
        r = await as_ann.post(
            f"/api/v1/conversations/{conv}/messages",
            json={"client_msg_id": msg_id(), "body": "Yes?"},
        )
        assert r.status_code == 201 and r.json()["seq"] == 11
        reply = await visitor.until("message", seq=11)
        assert reply["body"] == "Yes?"
        assert [f["seq"] for f in visitor.seen if f["type"] == "message"] == [11]
        for frame in visitor.seen:
            if frame["type"] == "conversation":
                assert not set(AGENT_ONLY_FIELDS) & set(frame), frame
        # Agents' copies carry them, null for an anonymous, unrated conversation.
        agent_change = next(f for f in watcher.seen if f["type"] == "conversation")
        assert {k: agent_change[k] for k in AGENT_ONLY_FIELDS} == dict.fromkeys(AGENT_ONLY_FIELDS)

    # A reconnecting visitor's resume replays what they may see, and nothing else.
    async with server.visitor(hello={"visitor_token": welcome["visitor_token"]}) as (tab, hi):
        assert hi["conversations"][0]["last_seq"] == 11
        await tab.send(type="resume", conversation_id=conv, after_seq=0)
        await tab.until("resumed", conversation_id=conv, last_seq=11)
        assert [f["seq"] for f in tab.seen if f["type"] == "message"] == [1, 7, 11]
        assert event_frames(tab) == []


async def test_round_robin_assignment_has_no_actor(tmp_path: Path) -> None:
    """A conversation the server assigns by itself records `assigned` with `by: null`."""
    settings = make_settings(tmp_path, auto_assign=True, agent_capacity=5)
    async with running_server(settings) as server:
        ann_id, ann = await named_agent(server, "Ann")
        async with server.agent(ann) as agent, server.visitor() as (visitor, _):
            await agent.send(type="subscribe", inbox="all")
            await agent.until("subscribed")
            conv = await start_conversation(visitor)
            frame = await agent.until("conversation", id=conv)
            while frame["assignee"] is None:
                frame = await agent.until("conversation", id=conv)
            assert frame["assignee"] == {"id": ann_id, "name": "Ann"} and frame["last_seq"] == 2
            await agent.send(type="resume", conversation_id=conv, after_seq=0)
            await line(
                agent,
                2,
                {"type": "assigned", "to": {"id": ann_id, "name": "Ann"}, "by": None},
                "Assigned to Ann automatically",
            )
            await agent.until("resumed", conversation_id=conv, last_seq=2)
            await visitor.send(type="ping")
            await visitor.until("pong")
            assert event_frames(visitor) == []


async def test_a_rating_is_an_event_line_and_reaches_every_inbox(server: Server) -> None:
    """The visitor's rating: watchers get a `rated` line (score, whether a comment came, never
    the comment), inbox subscribers a `conversation` frame with its `rating`; the conversation
    stays resolved with its last_message_at; the visitor gets `rated` and nothing else."""
    ann_id, ann = await named_agent(server, "Ann")
    async with (
        server.visitor() as (visitor, _),
        server.agent(ann) as watcher,
        server.agent(await server.token()) as inbox,
        server.http(ann) as http,
    ):
        await inbox.send(type="subscribe", inbox="all")
        await inbox.until("subscribed")
        conv = await start_conversation(visitor)
        await watch(watcher, conv)
        await patch(http, conv, status="resolved")
        await visitor.until("conversation", id=conv, status="resolved")
        before = (await http.get(f"/api/v1/conversations/{conv}")).json()

        await visitor.send(type="rate", conversation_id=conv, score=4, comment="Kind and quick")
        await visitor.until("rated", score=4)
        await line(
            watcher,
            3,
            {"type": "rated", "score": 4, "comment_given": True},
            "Rated 4/5 with a comment",
        )
        rated = await inbox.until("conversation", id=conv, rating={"score": 4})
        assert (rated["status"], rated["last_seq"], rated["name"]) == ("resolved", 3, None)

        await visitor.send(type="rate", conversation_id=conv, score=2)
        await visitor.until("rated", score=2)
        await line(watcher, 4, {"type": "rated", "score": 2, "comment_given": False}, "Rated 2/5")
        await inbox.until("conversation", id=conv, rating={"score": 2})

        after = (await http.get(f"/api/v1/conversations/{conv}")).json()
        assert after["status"] == "resolved" and after["last_seq"] == 4
        assert after["last_message_at"] == before["last_message_at"]
        assert "Kind and quick" not in str(watcher.seen) + str(inbox.seen)

        await visitor.send(type="ping")
        await visitor.until("pong")
        assert event_frames(visitor) == []
        for frame in visitor.seen:
            if frame["type"] == "conversation":
                assert not set(AGENT_ONLY_FIELDS) & set(frame), frame


async def test_verification_is_an_event_line_and_names_the_visitor_in_every_inbox(
    server: Server,
) -> None:
    """The visitor signs in mid-chat (hello again with an identity token): the conversation
    merged into the account gets one `verified` line, and inboxes a `conversation` frame with
    the account's name and identity provider; signing in again adds no second line. A
    conversation the verified visitor starts is announced with them; the visitor's own
    frames never carry them."""
    ann_id, ann = await named_agent(server, "Ann")
    async with server.agent(ann) as agent, server.http(ann) as http:
        await agent.send(type="subscribe", inbox="all")
        await agent.until("subscribed")
        async with server.visitor() as (anonymous, welcome):
            conv = await start_conversation(anonymous)
        await agent.until("conversation", id=conv, name=None, verified_by=None)
        await watch(agent, conv)

        hello = {
            "visitor_token": welcome["visitor_token"],
            "identity": identity_token("kari-1", name="Kari Nordmann", idp="bankid"),
        }
        async with server.visitor(hello=hello) as (tab, signed_in):
            assert signed_in["merged"] == 1
            await line(
                agent,
                2,
                {"type": "verified", "idp": "bankid", "name": "Kari Nordmann"},
                "Verified by BankID",
            )
            named = await agent.until("conversation", id=conv, name="Kari Nordmann")
            assert (named["verified_by"], named["rating"], named["last_seq"]) == ("bankid", None, 2)

            # A new conversation of the verified visitor is announced with who they are.
            second = await start_conversation(tab)
            announced = await agent.until("conversation", id=second)
            assert (announced["name"], announced["verified_by"]) == ("Kari Nordmann", "bankid")
            own = await tab.until("conversation", id=second)
            assert not set(AGENT_ONLY_FIELDS) & set(own), own
            assert [f["id"] for f in tab.seen if f["type"] == "conversation"] == [second]
            await tab.send(type="resume", conversation_id=conv, after_seq=0)
            await tab.until("resumed", conversation_id=conv, last_seq=2)
            assert [f["seq"] for f in tab.seen if f["type"] == "message"] == [1]
            assert event_frames(tab) == []

        # Signing in again on the same browser merges nothing new: no second line.
        hello["identity"] = identity_token("kari-1", name="Kari Nordmann", idp="bankid")
        async with server.visitor(hello=hello) as (_, again):
            assert again["merged"] == 0
        items = (await http.get(f"/api/v1/conversations/{conv}/messages")).json()["items"]
        assert [m["event"] for m in items if m["kind"] == "event"] == [
            {"type": "verified", "idp": "bankid", "name": "Kari Nordmann"}
        ]
        assert [m["kind"] for m in items] == ["text", "event"]
