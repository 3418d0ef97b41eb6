"""The inbox API the agent console lists from: each conversation's name, identity
provider, last message and unread count; status lists; the counters endpoint; search
across statuses with snippets in parts. Against a real server, on both backends."""

from __future__ import annotations

from typing import Any

import httpx

from chatserver.auth import token_hash
from chatserver.clock import Clock, uuid7
from chatserver.store.models import NewMessage
from tests.helpers import Client, Server, identity_token, msg_id
from tests.web.test_openapi import assert_conforms

LIST = "/api/v1/conversations"
COUNTS = "/api/v1/conversations/counts"


async def agent_id(server: Server, token: str) -> str:
    found = await server.state.store.token(token_hash(token))
    assert found is not None
    return found.agent.id


async def send(client: Client, body: str, conversation_id: str | None = None, **extra: Any) -> Any:
    frame: dict[str, Any] = {"type": "send", "client_msg_id": msg_id(), "body": body, **extra}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    await client.send(**frame)
    return await client.until("ack", client_msg_id=frame["client_msg_id"])


async def chat(server: Server, *bodies: str, **extra: Any) -> str:
    """A new conversation from a new visitor who wrote ``bodies``; answers its id."""
    async with server.visitor() as (visitor, _):
        conv = (await send(visitor, bodies[0], **extra))["conversation_id"]
        for body in bodies[1:]:
            await send(visitor, body, conv)
    return str(conv)


async def post(http: httpx.AsyncClient, conv: str, body: str, **extra: Any) -> dict[str, Any]:
    r = await http.post(
        f"{LIST}/{conv}/messages", json={"client_msg_id": msg_id(), "body": body, **extra}
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def add_event(server: Server, conv: str, body: str) -> int:
    """An event message (a timeline line such as "Assigned to …"), as the server stores one."""
    stored = await server.state.store.append_message(
        NewMessage(
            message_id=uuid7(),
            author_role="system",
            author_id=None,
            kind="event",
            body=body,
            created_at=Clock().now_us(),
            conversation_id=conv,
        )
    )
    return stored.seq


async def listed(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await http.get(LIST, params=params)
    assert r.status_code == 200, r.text
    assert_conforms("get", "/conversations", 200, r.json())
    return r.json()["items"]  # type: ignore[no-any-return]


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in items}


async def test_items_carry_the_verified_name_and_the_last_message(server: Server) -> None:
    """A verified visitor's conversation has the account's name and idp; each item has its
    last message that is not an event: the first non-empty line, trimmed, a long line cut to
    140 characters with "…", a note as a note, a message of attachments only with an empty
    preview and its file count. GET /conversations/{id} has it too, without `unread`."""
    token = await server.token("agent", name="Agnes")
    identity = identity_token("platform-7", name="Vera Verified", idp="bankid")
    async with server.visitor(hello={"identity": identity}) as (visitor, welcome):
        assert welcome["account"]["verified_by"] == "bankid"
        verified = (await send(visitor, "Hei!"))["conversation_id"]
    first_line = await chat(server, "\n  \n   Where is my parcel?   \nIt was due on Monday.")
    long_line = "word " * 60
    long = await chat(server, long_line.strip() + "\nsecond line")
    noted = await chat(server, "hello")
    files = await chat(server, "a file for you")
    empty = await chat(server, "first")
    async with server.http(token) as http:
        await post(http, noted, "  check the order system  \nthen reply", kind="note")
        uploaded = await http.post(
            f"{LIST}/{files}/attachments",
            files={"file": ("receipt.txt", b"Receipt: 3 x coffee\n", "text/plain")},
        )
        assert uploaded.status_code == 201, uploaded.text
        ack = await post(http, files, "", attachments=[uploaded.json()["id"]])
        event_seq = await add_event(server, empty, "Assigned to Agnes")

        items = by_id(await listed(http))
        assert items[verified]["name"] == "Vera Verified"
        assert items[verified]["verified_by"] == "bankid"
        assert items[verified]["account_id"] == welcome["account"]["id"]
        assert items[first_line]["name"] is None and items[first_line]["verified_by"] is None

        last = items[first_line]["last_message"]
        assert last["preview"] == "Where is my parcel?"
        assert (last["seq"], last["kind"], last["role"], last["attachments"]) == (
            1,
            "text",
            "visitor",
            0,
        )
        assert last["ts"].endswith("Z") or "+" in last["ts"]
        cut = items[long]["last_message"]["preview"]
        assert len(cut) == 140 and cut.endswith("…")
        assert cut[:-1].rstrip() == long_line[:139].rstrip()
        note = items[noted]["last_message"]
        assert (note["kind"], note["role"], note["preview"]) == (
            "note",
            "agent",
            "check the order system",
        )
        attached = items[files]["last_message"]
        assert (attached["seq"], attached["preview"], attached["attachments"]) == (
            ack["seq"],
            "",
            1,
        )
        # The event is the conversation's last seq, but not its last message.
        assert items[empty]["last_seq"] == event_seq
        assert items[empty]["last_message"]["seq"] == event_seq - 1
        assert items[empty]["last_message"]["preview"] == "first"
        assert all("match" not in c for c in items.values())

        r = await http.get(f"{LIST}/{noted}")
        assert r.status_code == 200
        assert_conforms("get", "/conversations/{id}", 200, r.json())
        assert r.json()["last_message"] == note and "unread" not in r.json()
        one = (await http.get(f"{LIST}/{verified}")).json()
        assert (one["name"], one["verified_by"]) == ("Vera Verified", "bankid")


async def test_unread_leaves_out_the_readers_own_messages_and_events(server: Server) -> None:
    """`unread` counts the messages after the agent's read position that are neither events
    nor their own: another agent's note and the visitor's messages count."""
    token = await server.token("agent", name="Agnes")
    other = await server.token("agent", name="Otto")
    async with server.visitor() as (visitor, _), server.agent(token) as agnes:
        conv = (await send(visitor, "one"))["conversation_id"]
        await send(visitor, "two", conv)
        await agnes.send(type="read", conversation_id=conv, seq=1)
        assert (await visitor.until("read"))["seq"] == 1  # stored before it is forwarded
        async with server.http(token) as http:
            await post(http, conv, "my answer")
        async with server.http(other) as http:
            await post(http, conv, "a note from Otto", kind="note")
        await add_event(server, conv, "Assigned to Otto")
        await send(visitor, "three", conv)
        await add_event(server, conv, "Marked as pending")
    async with server.http(token) as http:
        [item] = await listed(http)
        # two, Otto's note, three: not her own answer, not the two events.
        assert item["unread"] == 3
        assert item["last_message"]["preview"] == "three"
    async with server.http(other) as http:
        [item] = await listed(http)
        assert item["unread"] == 4  # one, two, Agnes's answer, three


async def test_status_takes_a_list_and_an_offline_message_is_in_it(server: Server) -> None:
    """`status=open,pending` (or the parameter twice) lists both; a message left with the
    offline form starts `pending` and is listed; an unknown status is a 400 with a sentence."""
    token = await server.token("agent")
    opened = await chat(server, "hello")
    offline = await chat(server, "nobody online?", contact={"email": "kari@visitor.example"})
    resolved = await chat(server, "solved already")
    async with server.http(token) as http:
        r = await http.patch(f"{LIST}/{resolved}", json={"status": "resolved"})
        assert r.status_code == 200, r.text
        both = await listed(http, status="open,pending")
        assert [c["id"] for c in both] == [offline, opened]
        assert by_id(both)[offline]["status"] == "pending"
        assert by_id(both)[offline]["contact_email"] == "kari@visitor.example"
        twice = (await http.get(LIST + "?status=open&status=pending")).json()["items"]
        assert [c["id"] for c in twice] == [offline, opened]
        assert [c["id"] for c in await listed(http, status="pending")] == [offline]
        assert [c["id"] for c in await listed(http, status="resolved, open")] == [
            resolved,
            opened,
        ]
        assert len(await listed(http)) == 3
        for bad in ("open,closed", "open,", "OPEN", "all"):
            r = await http.get(LIST, params={"status": bad})
            assert r.status_code == 400, bad
            assert_conforms("get", "/conversations", 400, r.json())
            error = r.json()["error"]
            assert error["code"] == "bad_request"
            assert error["message"].startswith("status must be open, pending or resolved")
            assert (error.get("field"), error.get("reason")) in {
                ("status", "invalid"),
                (None, None),
            }


async def test_counts_follow_assignment_and_resolution(server: Server) -> None:
    """The counters: by status, the open or pending ones by view (all, unassigned, mine),
    and the caller's unread in the open or pending conversations that are theirs or nobody's;
    `tag=` narrows them all. Answered at /conversations/counts, not taken for an id."""
    token = await server.token("agent", name="Agnes")
    other = await server.token("agent", name="Otto")
    me, otto = await agent_id(server, token), await agent_id(server, other)
    a = await chat(server, "one", "two")
    b = await chat(server, "three")
    c = await chat(server, "four", "five", "six")
    offline = await chat(server, "left a note", contact={"email": "k@v.example"})

    async def counts(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
        r = await http.get(COUNTS, params=params)
        assert r.status_code == 200, r.text
        assert_conforms("get", "/conversations/counts", 200, r.json())
        return r.json()  # type: ignore[no-any-return]

    async with server.http(token) as http:
        assert await counts(http) == {
            "status": {"open": 3, "pending": 1, "resolved": 0},
            "views": {"all": 4, "unassigned": 4, "mine": 0},
            "unread": 7,
        }
        await http.patch(f"{LIST}/{a}", json={"assignee_id": me})
        await http.patch(f"{LIST}/{c}", json={"assignee_id": otto, "tags": ["vip"]})
        await post(http, a, "my reply")  # her own: not unread
        got = await counts(http)
        assert got["views"] == {"all": 4, "unassigned": 2, "mine": 1}
        assert got["unread"] == 4  # a: 2, b: 1, offline: 1; c is Otto's
        await http.patch(f"{LIST}/{a}", json={"status": "resolved"})
        await http.patch(f"{LIST}/{b}", json={"status": "pending"})
        got = await counts(http)
        assert got["status"] == {"open": 1, "pending": 2, "resolved": 1}
        assert got["views"] == {"all": 3, "unassigned": 2, "mine": 0}
        assert got["unread"] == 2
        assert await counts(http, tag="vip") == {
            "status": {"open": 1, "pending": 0, "resolved": 0},
            "views": {"all": 1, "unassigned": 0, "mine": 0},
            "unread": 0,
        }
        assert (await counts(http, tag="none-such"))["views"]["all"] == 0
        r = await http.get(COUNTS, params={"tag": "x" * 51})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        assert_conforms("get", "/conversations/counts", 400, r.json())
        assert [i["id"] for i in await listed(http, status="open,pending")] == [b, c, offline]
    async with server.http(other) as http:
        got = await counts(http)
        assert got["views"] == {"all": 3, "unassigned": 2, "mine": 1}
        assert got["unread"] == 3 + 1 + 1  # c (his), b and offline (nobody's)
    async with server.http() as anonymous:
        r = await anonymous.get(COUNTS)
        assert r.status_code == 401
        assert_conforms("get", "/conversations/counts", 401, r.json())


async def test_search_spans_statuses_and_marks_the_hits(server: Server) -> None:
    """`q` searches every status unless `status` is given; each item carries its newest
    matching message with a snippet in parts, the matched words marked; notes match, events
    never do; accents are folded on both backends but the snippet keeps the message's own."""
    token = await server.token("agent", name="Agnes")
    long_text = (
        "Hello, I placed an order for a blue winter jacket two weeks ago and it still has "
        "not arrived, the tracking page says nothing at all and I am getting worried now"
    )
    shipped = await chat(server, long_text, "Thanks")
    noted = await chat(server, "hi there")
    evented = await chat(server, "nothing here")
    newest = await chat(server, "order one", "unrelated", "order two please")
    accented = await chat(server, "Møte på Café Ångström i morgen")
    async with server.http(token) as http:
        await http.patch(f"{LIST}/{shipped}", json={"status": "resolved"})
        note = await post(http, noted, "customer asks about an ORDER refund", kind="note")
        await add_event(server, evented, "Order moved to Otto")
        await server.state.store.index_now()

        found = await listed(http, q="order")
        assert {c["id"] for c in found} == {shipped, noted, newest}
        items = by_id(found)
        assert items[shipped]["status"] == "resolved"
        match = items[shipped]["match"]
        assert match["seq"] == 1
        parts = match["snippet"]
        assert all(set(p) == {"text", "hit"} for p in parts)
        assert [p["text"] for p in parts if p["hit"]] == ["order"]
        text = "".join(p["text"] for p in parts)
        assert "order for a blue winter jacket" in text
        assert text.endswith("…") and len(text.split()) <= 20
        assert items[noted]["match"]["message_id"] == note["message_id"]
        assert [p["text"] for p in items[noted]["match"]["snippet"] if p["hit"]] == ["ORDER"]
        assert items[newest]["match"]["seq"] == 3
        assert "".join(p["text"] for p in items[newest]["match"]["snippet"]) == "order two please"

        # The note came last: newest activity first.
        assert [c["id"] for c in await listed(http, q="order", status="open")] == [
            noted,
            newest,
        ]
        assert [c["id"] for c in await listed(http, q="order", status="resolved")] == [shipped]
        assert await listed(http, q="moved") == []  # only in the event

        [hit] = await listed(http, q="cafe angstr")
        assert hit["id"] == accented
        assert hit["match"]["snippet"] == [
            {"text": "Møte på ", "hit": False},
            {"text": "Café", "hit": True},
            {"text": " ", "hit": False},
            {"text": "Ångström", "hit": True},
            {"text": " i morgen", "hit": False},
        ]


async def test_bad_listing_input_has_stable_codes(server: Server) -> None:
    """Wrong types and sizes in the listing's parameters: 400 `bad_request`, naming the field."""
    token = await server.token("agent")
    await chat(server, "hello")
    cases = [
        ({"q": "x" * 201}, "q", "too_long"),
        ({"tag": "t" * 51}, "tag", "too_long"),
        ({"assignee": "a" * 65}, "assignee", "too_long"),
        ({"limit": "many"}, "limit", "type"),
        ({"limit": "0"}, "limit", "range"),
        ({"limit": "201"}, "limit", "range"),
        ({"status": "1"}, "status", "invalid"),
        ({"cursor": "not-a-cursor"}, None, None),
    ]
    async with server.http(token) as http:
        for params, field, reason in cases:
            r = await http.get(LIST, params=params)
            assert r.status_code == 400, params
            assert_conforms("get", "/conversations", 400, r.json())
            error = r.json()["error"]
            assert error["code"] == "bad_request", params
            assert error.get("field") in (field, None) and error.get("reason") in (reason, None)
        # A q of only punctuation finds nothing rather than failing.
        assert await listed(http, q="%%") == []
        assert (await listed(http, q="x" * 200)) == []


async def test_an_opened_conversation_says_how_far_the_visitor_has_read(server: Server) -> None:
    """`visitor_read_seq` follows the visitor's `read` frames (0 before any), so the console
    can show Seen under the agent's reply after a reload."""
    token = await server.token("agent", name="Sigrid")
    async with server.visitor() as (visitor, _), server.agent(token) as agent:
        conv = (await send(visitor, "hello"))["conversation_id"]
        async with server.http(token) as http:
            assert (await http.get(f"{LIST}/{conv}")).json()["visitor_read_seq"] == 0
            answer = await post(http, conv, "Hi, how can I help?")
            await agent.send(type="watch", conversation_id=conv)
            await agent.until("watching")
            await visitor.send(type="read", conversation_id=conv, seq=answer["seq"])
            assert (await agent.until("read"))["seq"] == answer["seq"]  # stored, then forwarded
            r = await http.get(f"{LIST}/{conv}")
            assert r.json()["visitor_read_seq"] == answer["seq"]
            assert_conforms("get", "/conversations/{id}", 200, r.json())
