"""The HTTP API: listing, threads, replies, changes; every error with its code."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Server, msg_id


async def new_conversation(server: Server, body: str = "hello") -> str:
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id=msg_id(), body=body)
        return str((await visitor.until("ack"))["conversation_id"])


async def test_list_get_and_thread(server: Server, token: str) -> None:
    """Conversations list newest activity first; a thread lists messages in seq order."""
    first = await new_conversation(server, "printer is broken")
    second = await new_conversation(server, "invoice question")
    async with server.http(token) as http:
        r = await http.get("/api/v1/conversations")
        assert r.status_code == 200
        items = r.json()["items"]
        assert [c["id"] for c in items] == [second, first]
        for key in ("id", "status", "assignee", "created_at", "last_seq"):
            assert key in items[0]
        assert r.json()["next_cursor"] is None

        page1 = (await http.get("/api/v1/conversations", params={"limit": 1})).json()
        assert [c["id"] for c in page1["items"]] == [second]
        page2 = (
            await http.get(
                "/api/v1/conversations", params={"limit": 1, "cursor": page1["next_cursor"]}
            )
        ).json()
        assert [c["id"] for c in page2["items"]] == [first]
        assert page2["next_cursor"] is None

        found = (await http.get("/api/v1/conversations", params={"q": "printer"})).json()
        assert [c["id"] for c in found["items"]] == [first]
        none = (await http.get("/api/v1/conversations", params={"q": "100%_"})).json()
        assert none["items"] == []

        one = (await http.get(f"/api/v1/conversations/{first}")).json()
        assert one["id"] == first and one["last_seq"] == 1
        thread = (await http.get(f"/api/v1/conversations/{first}/messages")).json()
        assert [m["body"] for m in thread["items"]] == ["printer is broken"]
        message = thread["items"][0]
        assert set(message) >= {
            "conversation_id",
            "message_id",
            "seq",
            "ts",
            "author",
            "body",
            "kind",
        }


async def test_reply_is_idempotent_and_reaches_the_visitor(server: Server, token: str) -> None:
    """POST a reply twice with one client_msg_id: one message, 201 then 200, live to the visitor."""
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id="v1", body="help")
        conv = (await visitor.until("ack"))["conversation_id"]
        async with server.http(token) as http:
            body = {"client_msg_id": "r1", "body": "On it."}
            r1 = await http.post(f"/api/v1/conversations/{conv}/messages", json=body)
            assert r1.status_code == 201, r1.text
            r2 = await http.post(f"/api/v1/conversations/{conv}/messages", json=body)
            assert r2.status_code == 200
            assert r2.json()["message_id"] == r1.json()["message_id"]
            assert r2.json()["duplicate"] is True
            note = {"client_msg_id": "n1", "body": "internal", "kind": "note"}
            assert (
                await http.post(f"/api/v1/conversations/{conv}/messages", json=note)
            ).status_code == 201
            after = {"client_msg_id": "r2", "body": "Done."}
            await http.post(f"/api/v1/conversations/{conv}/messages", json=after)
            thread = (await http.get(f"/api/v1/conversations/{conv}/messages")).json()
            assert [(m["seq"], m["kind"]) for m in thread["items"]] == [
                (1, "text"),
                (2, "text"),
                (3, "note"),
                (4, "text"),
            ]
        assert (await visitor.until("message", seq=2))["body"] == "On it."
        assert (await visitor.until("message"))["seq"] == 4  # the note was skipped


async def test_patch_changes_status_assignee_and_tags(server: Server, token: str) -> None:
    """PATCH sets status, assignee and tags; null unassigns."""
    conv = await new_conversation(server)
    agent = await server.state.store.token(__import__("chatserver.auth").auth.token_hash(token))
    assert agent is not None
    async with server.http(token) as http:
        r = await http.patch(
            f"/api/v1/conversations/{conv}",
            json={
                "status": "resolved",
                "assignee_id": agent.agent.id,
                "tags": ["billing", "billing"],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "resolved" and r.json()["closed_at"]
        assert r.json()["assignee"] == {"id": agent.agent.id, "name": "Agent Smith"}
        assert r.json()["tags"] == ["billing"]
        mine = (await http.get("/api/v1/conversations", params={"assignee": "me"})).json()
        assert [c["id"] for c in mine["items"]] == [conv]
        r = await http.patch(f"/api/v1/conversations/{conv}", json={"assignee_id": None})
        assert r.json()["assignee"] is None
        unassigned = (await http.get("/api/v1/conversations", params={"assignee": "none"})).json()
        assert [c["id"] for c in unassigned["items"]] == [conv]
        resolved = (await http.get("/api/v1/conversations", params={"status": "resolved"})).json()
        assert [c["id"] for c in resolved["items"]] == [conv]


BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("GET", "/api/v1/conversations?status=closed", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?limit=0", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?limit=abc", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?limit=100000", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?cursor=%%%", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?cursor=WzEsMiwzXQ", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations?q=" + "x" * 201, "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations/nope", "", {}, 404, "not_found"),
    ("GET", "/api/v1/conversations/nope/messages", "", {}, 404, "not_found"),
    ("GET", "/api/v1/conversations/{conv}/messages?after_seq=-1", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/conversations/{conv}/messages?cursor=x", "", {}, 400, "bad_request"),
    ("POST", "/api/v1/conversations/{conv}/messages", "not json", {}, 400, "bad_request"),
    ("POST", "/api/v1/conversations/{conv}/messages", '{"body":"x"}', {}, 400, "bad_request"),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":5}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":" "}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":"' + "y" * 10_001 + '"}',
        {},
        413,
        "too_large",
    ),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":"x"}',
        {"content-type": "text/plain"},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":"x","kind":"event"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/conversations/{conv}/messages",
        '{"client_msg_id":"c","body":"x","x":1}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/conversations/nope/messages",
        '{"client_msg_id":"c","body":"x"}',
        {},
        404,
        "not_found",
    ),
    ("POST", "/api/v1/conversations/{conv}/messages", "[" * 2_000_000, {}, 413, "too_large"),
    ("PATCH", "/api/v1/conversations/{conv}", '{"status":"closed"}', {}, 400, "bad_request"),
    ("PATCH", "/api/v1/conversations/{conv}", '{"assignee_id":"nobody"}', {}, 400, "bad_request"),
    ("PATCH", "/api/v1/conversations/{conv}", '{"tags":"billing"}', {}, 400, "bad_request"),
    ("PATCH", "/api/v1/conversations/{conv}", '{"tags":[""]}', {}, 400, "bad_request"),
    (
        "PATCH",
        "/api/v1/conversations/{conv}",
        '{"tags":' + str(["t"] * 21).replace("'", '"') + "}",
        {},
        400,
        "bad_request",
    ),
    ("PATCH", "/api/v1/conversations/nope", '{"status":"open"}', {}, 404, "not_found"),
    ("DELETE", "/api/v1/conversations/{conv}", "", {}, 405, "bad_request"),
    ("GET", "/api/v1/nothing-here", "", {}, 404, "not_found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    BAD_REQUESTS,
    ids=[f"{m} {p[:60]} {b[:30]}" for m, p, b, *_ in BAD_REQUESTS],
)
async def test_bad_requests_get_their_code(
    server: Server,
    token: str,
    method: str,
    path: str,
    body: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Each malformed request gets a JSON error with a stable code and changes nothing."""
    conv = await new_conversation(server)
    async with server.http(token) as http:
        r = await http.request(
            method,
            path.replace("{conv}", conv),
            content=body.encode() if body else None,
            headers={"content-type": "application/json", **headers},
        )
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
        thread = (await http.get(f"/api/v1/conversations/{conv}/messages")).json()
        assert len(thread["items"]) == 1


@pytest.mark.parametrize(
    ("auth", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("Bearer wrong", 401, "unauthorized"),
        ("Token abc", 401, "unauthorized"),
        ("compliance", 403, "forbidden"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations/{conv}"),
        ("GET", "/api/v1/conversations/{conv}/messages"),
        ("POST", "/api/v1/conversations/{conv}/messages"),
        ("PATCH", "/api/v1/conversations/{conv}"),
    ],
)
async def test_wrong_or_missing_credentials(
    server: Server, method: str, path: str, auth: str | None, status: int, code: str
) -> None:
    """Every endpoint refuses a missing or unknown token (401) and a wrong role (403)."""
    conv = await new_conversation(server)
    if auth == "compliance":
        auth = "Bearer " + await server.token("compliance")
    headers = {"Authorization": auth} if auth else {}
    async with server.http() as http:
        r = await http.request(
            method,
            path.replace("{conv}", conv),
            json={"client_msg_id": "c", "body": "x", "status": "resolved"}
            if method != "GET"
            else None,
            headers=headers,
        )
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    conversation = await server.state.store.conversation(conv)
    assert conversation is not None
    assert conversation.status == "open" and conversation.last_seq == 1


async def test_health_ready_and_metrics(server: Server, token: str) -> None:
    """healthz and readyz answer; metrics count stored messages in Prometheus format."""
    await new_conversation(server)
    async with server.http() as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        text = (await http.get("/metrics")).text
    assert "chatserver_messages_stored_total 1.0" in text
    assert 'chatserver_frames_received_total{type="hello"} 1.0' in text
    assert "chatserver_commit_batch_size_count" in text


async def test_readyz_says_unavailable_when_the_store_is_gone(server: Server) -> None:
    """readyz answers 503 unavailable when the store cannot be reached."""
    await server.state.store.close()
    async with server.http() as http:
        r = await http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    await server.state.store.open()


async def test_listing_filters_by_tag_and_counts_unread(server: Server, token: str) -> None:
    """tag= filters; each item says how many messages came after the caller's read position."""
    billing = await new_conversation(server, "invoice")
    other = await new_conversation(server, "hello")
    async with server.http(token) as http:
        await http.patch(f"/api/v1/conversations/{billing}", json={"tags": ["billing"]})
        tagged = (await http.get("/api/v1/conversations", params={"tag": "billing"})).json()
        assert [c["id"] for c in tagged["items"]] == [billing]
        listing = (await http.get("/api/v1/conversations")).json()["items"]
        assert {c["id"]: c["unread"] for c in listing} == {billing: 1, other: 1}
    async with server.agent(token) as agent:
        await agent.send(type="read", conversation_id=billing, seq=1)
        await agent.send(type="ping")
        await agent.until("pong")
        await server.state.store.writer.idle()  # type: ignore[attr-defined]
    async with server.http(token) as http:
        listing = (await http.get("/api/v1/conversations")).json()["items"]
        assert {c["id"]: c["unread"] for c in listing} == {billing: 0, other: 1}
        r = await http.get("/api/v1/conversations", params={"tag": "x" * 51})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
