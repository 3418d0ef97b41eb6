"""Bad input gets a clear, stable error code, and other clients' traffic goes on untouched."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers import Client, Server, make_settings, msg_id, running_server


@dataclass
class Bystander:
    """A conversation between another visitor and an agent, running beside the bad input."""

    visitor: Client
    agent: Client
    conversation_id: str
    sent: int = 1

    async def still_works(self) -> None:
        self.sent += 1
        cid = msg_id()
        await self.visitor.send(
            type="send", client_msg_id=cid, conversation_id=self.conversation_id, body="still?"
        )
        ack = await self.visitor.until("ack", client_msg_id=cid)
        assert ack["seq"] == self.sent
        got = await self.agent.until("message", seq=self.sent)
        assert got["body"] == "still?"


@contextlib.asynccontextmanager
async def scene(tmp_path: Path, **settings: object) -> AsyncIterator[tuple[Server, str, Bystander]]:
    async with running_server(make_settings(tmp_path, **settings)) as server:
        token = await server.token()
        async with server.visitor() as (visitor, _), server.agent(token) as agent:
            await visitor.send(type="send", client_msg_id="b1", body="bystander")
            conv = (await visitor.until("ack"))["conversation_id"]
            await agent.send(type="watch", conversation_id=conv)
            await agent.until("watching")
            yield server, token, Bystander(visitor, agent, conv)


LONG = "x" * 10_001


def j(**frame: object) -> str:
    return json.dumps(frame)


# (name, frame text or a function of (own conversation, someone else's), code, ref)
VISITOR_FRAMES: list[tuple[str, object, str, str | None]] = [
    ("not json", "garbage", "bad_frame", None),
    ("json array", "[]", "bad_frame", None),
    ("json string", '"hello"', "bad_frame", None),
    ("unknown type", j(type="nope"), "bad_frame", None),
    ("no type", "{}", "bad_frame", None),
    ("type not a string", j(type=5), "bad_frame", None),
    ("send without client_msg_id", j(type="send", body="x"), "bad_frame", None),
    ("client_msg_id wrong type", j(type="send", client_msg_id=5, body="x"), "bad_frame", None),
    ("client_msg_id empty", j(type="send", client_msg_id="", body="x"), "bad_frame", ""),
    ("client_msg_id huge", j(type="send", client_msg_id="c" * 101, body="x"), "bad_frame", None),
    ("body wrong type", j(type="send", client_msg_id="c1", body=7), "bad_frame", "c1"),
    ("body null", j(type="send", client_msg_id="c1", body=None), "bad_frame", "c1"),
    ("body empty", j(type="send", client_msg_id="c1", body=""), "bad_request", "c1"),
    ("body blank", j(type="send", client_msg_id="c1", body="  \n "), "bad_request", "c1"),
    ("body too long", j(type="send", client_msg_id="c1", body=LONG), "too_large", "c1"),
    (
        "unknown conversation",
        j(type="send", client_msg_id="c1", conversation_id="nope", body="x"),
        "not_found",
        "c1",
    ),
    (
        "conversation_id huge",
        j(type="send", client_msg_id="c1", conversation_id="c" * 65, body="x"),
        "bad_frame",
        "c1",
    ),
    (
        "someone else's conversation",
        lambda own, other: j(type="send", client_msg_id="c1", conversation_id=other, body="x"),
        "not_found",
        "c1",
    ),
    (
        "visitor sends a note",
        lambda own, other: j(
            type="send", client_msg_id="n1", conversation_id=own, body="x", kind="note"
        ),
        "forbidden",
        "n1",
    ),
    (
        "typing state not bool",
        lambda own, other: j(type="typing", conversation_id=own, state="yes"),
        "bad_frame",
        None,
    ),
    (
        "read negative seq",
        lambda own, other: j(type="read", conversation_id=own, seq=-1),
        "bad_frame",
        None,
    ),
    (
        "read past the end",
        lambda own, other: j(type="read", conversation_id=own, seq=99),
        "bad_request",
        None,
    ),
    (
        "resume past the end",
        lambda own, other: j(type="resume", conversation_id=own, after_seq=99),
        "bad_request",
        None,
    ),
    (
        "resume someone else's conversation",
        lambda own, other: j(type="resume", conversation_id=other, after_seq=0),
        "not_found",
        None,
    ),
    ("agent-only frame", j(type="watch", conversation_id="x"), "bad_frame", None),
    ("subscribe from a visitor", j(type="subscribe", inbox="all"), "bad_frame", None),
    ("second hello", j(type="hello"), "bad_request", None),
]


@pytest.mark.parametrize(
    ("frame", "code", "ref"),
    [pytest.param(f, c, r, id=name) for name, f, c, r in VISITOR_FRAMES],
)
async def test_bad_visitor_frame(tmp_path: Path, frame: object, code: str, ref: str | None) -> None:
    """Each bad visitor frame gets its error code; the socket and everyone else go on."""
    async with scene(tmp_path) as (server, _, bystander), server.visitor() as (v, _):
        await v.send(type="send", client_msg_id="own", body="mine")
        own = (await v.until("ack"))["conversation_id"]
        text = frame(own, bystander.conversation_id) if callable(frame) else frame
        assert isinstance(text, str)
        await v.send_raw(text)
        err = await v.until("error")
        assert err["code"] == code, err
        assert err["ref"] == ref, err
        assert isinstance(err["message"], str) and err["message"]
        # The same socket still works, and so does everybody else.
        await v.send(type="ping")
        await v.until("pong")
        await bystander.still_works()
        # Nothing was stored by the bad frame: the visitor's conversation has its one message.
        conversation = await server.state.store.conversation(own)
        assert conversation is not None and conversation.last_seq == 1


async def test_frames_before_hello_are_refused(tmp_path: Path) -> None:
    """Anything but hello first is bad_request; hello then still works."""
    async with scene(tmp_path) as (server, _, bystander), server.raw_visitor() as v:
        await v.send(type="send", client_msg_id="early", body="hi")
        await v.expect("error", code="bad_request", ref="early")
        await v.send(type="hello")
        await v.expect("welcome")
        await bystander.still_works()


async def test_binary_frame_is_bad_frame(tmp_path: Path) -> None:
    """A binary frame is answered with bad_frame and the socket stays open."""
    async with scene(tmp_path) as (server, _, bystander), server.visitor() as (v, _):
        await v.send_raw(b"\x00\x01binary")
        await v.expect("error", code="bad_frame")
        await v.send(type="ping")
        await v.expect("pong")
        await bystander.still_works()


async def test_oversized_frame_closes_with_1009(tmp_path: Path) -> None:
    """A frame over max_frame_bytes closes that socket with 1009; others go on."""
    async with scene(tmp_path, max_frame_bytes=4096) as (server, _, bystander):
        async with server.visitor() as (v, _):
            await v.send(type="send", client_msg_id="big", body="y" * 5000)
            assert await v.closed() == 1009
        await bystander.still_works()


async def test_no_hello_in_time_closes_with_1008(tmp_path: Path) -> None:
    """A visitor socket that does not say hello in time gets an error and a 1008 close."""
    async with scene(tmp_path, hello_timeout=0.2) as (server, _, bystander):
        async with server.raw_visitor() as v:
            err = await v.expect("error", code="bad_request")
            assert "hello" in err["message"]
            assert await v.closed() == 1008
        await bystander.still_works()


async def test_flood_is_rate_limited_then_closed(tmp_path: Path) -> None:
    """Frames beyond the rate limit get rate_limited, and a client that keeps on is closed 1008."""
    async with scene(tmp_path, rate_limit_per_second=0.1, rate_limit_burst=5, max_bad_frames=3) as (
        server,
        _,
        bystander,
    ):
        async with server.visitor() as (v, _):
            for _ in range(12):
                await v.send(type="ping")
            codes = []
            with contextlib.suppress(Exception):
                while True:
                    frame = await v.recv(timeout=5)
                    codes.append(frame.get("code") or frame["type"])
            assert codes.count("pong") == 4  # the burst, less the hello
            assert codes[4:] == ["rate_limited"] * 3
            assert v.ws.close_code == 1008
        await bystander.still_works()


async def test_repeated_bad_frames_close_with_1008(tmp_path: Path) -> None:
    """A client that keeps sending bad frames is closed with 1008 after max_bad_frames."""
    async with scene(tmp_path, max_bad_frames=3) as (server, _, bystander):
        async with server.visitor() as (v, _):
            for _ in range(3):
                await v.send_raw("nonsense")
            assert await v.closed() == 1008
            assert [f.get("code") for f in v.seen[1:]] == ["bad_frame"] * 3
        await bystander.still_works()


@pytest.mark.parametrize("origin", ["http://evil.example", "null", None])
async def test_wrong_origin_is_refused_at_upgrade(tmp_path: Path, origin: str | None) -> None:
    """The visitor socket refuses an origin not on the allow-list with HTTP 403 and a code."""
    async with scene(tmp_path) as (server, _, bystander):
        headers = {"Origin": origin} if origin else {}
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws/visitor", additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"]["code"] == "forbidden"
        await bystander.still_works()


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        ({"Authorization": "Bearer " + "x" * 5000}, 401, "unauthorized"),
        ("compliance", 403, "forbidden"),
    ],
    ids=["no token", "unknown token", "wrong scheme", "huge token", "compliance role"],
)
async def test_agent_socket_refuses_the_unauthorised(
    tmp_path: Path, headers: object, status: int, code: str
) -> None:
    """The agent socket needs a valid token of a role that may answer chats."""
    async with scene(tmp_path) as (server, _, bystander):
        if headers == "compliance":
            headers = {"Authorization": "Bearer " + await server.token("compliance")}
        assert isinstance(headers, dict)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/ws/agent", additional_headers=headers):
                pass
        assert refused.value.response.status_code == status
        assert json.loads(refused.value.response.body)["error"]["code"] == code
        await bystander.still_works()


AGENT_FRAMES = [
    (
        "send without conversation",
        j(type="send", client_msg_id="a1", body="x"),
        "bad_request",
        "a1",
    ),
    (
        "send to unknown conversation",
        j(type="send", client_msg_id="a1", conversation_id="nope", body="x"),
        "not_found",
        "a1",
    ),
    ("watch unknown conversation", j(type="watch", conversation_id="nope"), "not_found", None),
    (
        "resume unknown conversation",
        j(type="resume", conversation_id="nope", after_seq=0),
        "not_found",
        None,
    ),
    (
        "typing in unknown conversation",
        j(type="typing", conversation_id="nope", state=True),
        "not_found",
        None,
    ),
    (
        "read in unknown conversation",
        j(type="read", conversation_id="nope", seq=1),
        "not_found",
        None,
    ),
    ("unknown inbox", j(type="subscribe", inbox="everything"), "bad_frame", None),
    (
        "unknown kind",
        j(type="send", client_msg_id="a1", conversation_id="x", body="x", kind="shout"),
        "bad_frame",
        "a1",
    ),
]


@pytest.mark.parametrize(
    ("text", "code", "ref"), [pytest.param(t, c, r, id=n) for n, t, c, r in AGENT_FRAMES]
)
async def test_bad_agent_frame(tmp_path: Path, text: str, code: str, ref: str | None) -> None:
    """Each bad agent frame gets its error code; the agent's socket and the bystanders go on."""
    async with scene(tmp_path) as (server, token, bystander), server.agent(token) as agent:
        await agent.send_raw(text)
        err = await agent.until("error")
        assert (err["code"], err["ref"]) == (code, ref), err
        await agent.send(type="ping")
        await agent.until("pong")
        await bystander.still_works()


# ---------------------------------------------------------------- HTTP bodies, field by field

# What a message for people must never show: regular expressions, msgspec's paths.
REGEX_BITS = ("^", "$.", "$`", "[a-z", "[^", "\\s", "regex", "`", "+$")
CANNED = "/api/v1/canned-responses"
HOURS = "/api/v1/business-hours"
STRONG = "violet kayak mountain 42"

# (name, method, path, body, field, reason, the message when it is exact)
HTTP_BODIES: list[tuple[str, str, str, object, str | None, str, str | None]] = [
    ("missing", "POST", CANNED, {"body": "x"}, "shortcut", "required", "shortcut is required"),
    (
        "wrong type",
        "POST",
        CANNED,
        {"shortcut": 5, "body": "x"},
        "shortcut",
        "type",
        "shortcut: expected a string, got a number",
    ),
    (
        "too long",
        "POST",
        CANNED,
        {"shortcut": "x" * 33, "body": "x"},
        "shortcut",
        "too_long",
        "shortcut: too long (at most 32 characters)",
    ),
    (
        "empty",
        "POST",
        CANNED,
        {"shortcut": "", "body": "x"},
        "shortcut",
        "too_short",
        "shortcut must not be empty",
    ),
    (
        "pattern",
        "POST",
        CANNED,
        {"shortcut": "Hello World!", "body": "x"},
        "shortcut",
        "pattern",
        "shortcut: use only lower-case letters a to z, digits, hyphens and underscores",
    ),
    (
        "unknown field",
        "POST",
        CANNED,
        {"shortcut": "hi", "body": "x", "colour": "red"},
        "colour",
        "unknown_field",
        "colour is not a known field (known: shortcut and body)",
    ),
    (
        "email pattern",
        "POST",
        "/api/v1/agents",
        {"email": "nope", "name": "X", "password": STRONG},
        "email",
        "pattern",
        "email: expected an email address, like name@example.com",
    ),
    (
        "not one of the values",
        "POST",
        "/api/v1/agents",
        {"email": "a@b.example", "name": "X", "password": STRONG, "role": "root"},
        "role",
        "invalid",
        "role: must be one of admin, agent or compliance",
    ),
    (
        "a list item too long",
        "PATCH",
        "/api/v1/conversations/{cid}",
        {"tags": ["x" * 51]},
        "tags",
        "too_long",
        "tags: too long (at most 50 characters)",
    ),
    (
        "too many items",
        "PATCH",
        "/api/v1/conversations/{cid}",
        {"tags": ["a"] * 21},
        "tags",
        "too_long",
        "tags: too many items (at most 20)",
    ),
    (
        "nested pattern",
        "PUT",
        HOURS,
        {"enabled": True, "weekly": {"monday": [{"start": "9", "end": "17:00"}]}},
        "weekly.monday.start",
        "pattern",
        "weekly.monday.start: expected a time of day from 00:00 to 24:00, like 09:30",
    ),
    (
        "nested missing",
        "PUT",
        HOURS,
        {"enabled": True, "weekly": {"monday": [{"start": "09:00"}]}},
        "weekly.monday.end",
        "required",
        "weekly.monday.end is required",
    ),
    (
        "nested unknown field",
        "PUT",
        HOURS,
        {"enabled": True, "weekly": {"funday": []}},
        "weekly.funday",
        "unknown_field",
        None,
    ),
    (
        "a list item's pattern",
        "PUT",
        HOURS,
        {"enabled": True, "closed_dates": ["24.12.2026"]},
        "closed_dates",
        "pattern",
        "closed_dates: expected dates like 2026-12-24",
    ),
    ("not an object", "POST", CANNED, ["shortcut"], None, "type", None),
    (
        "sign-in without password",
        "POST",
        "/console/login",
        {"email": "a@b.example"},
        "password",
        "required",
        "password is required",
    ),
    (
        "sign-in email of the wrong type",
        "POST",
        "/console/login",
        {"email": 5, "password": "x"},
        "email",
        "type",
        "email: expected a string, got a number",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "reason", "message"),
    [pytest.param(m, p, b, f, r, t, id=n) for n, m, p, b, f, r, t in HTTP_BODIES],
)
async def test_a_bad_body_names_its_field_in_words(
    server: Server,
    method: str,
    path: str,
    body: object,
    field: str | None,
    reason: str,
    message: str | None,
) -> None:
    """A JSON body that does not fit gets ``bad_request`` with the field's path in the body
    (list indexes left out), a stable ``reason``, and a sentence that shows no regular
    expression and no ``$.`` path; nothing is changed."""
    from tests.web.test_openapi import assert_conforms

    admin = await server.token("admin")
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id="v", body="hi")
        cid = (await visitor.until("ack"))["conversation_id"]
    async with server.http(admin) as http:
        before = (await http.get(CANNED)).json(), (await http.get(HOURS)).json()
        r = await http.request(method, path.format(cid=cid), json=body)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "bad_request"
        assert error.get("field") == field and error["reason"] == reason, error
        if message is not None:
            assert error["message"] == message
        assert not [bit for bit in REGEX_BITS if bit in error["message"]], error["message"]
        if path == CANNED:
            assert_conforms("post", "/canned-responses", 400, r.json())
        assert ((await http.get(CANNED)).json(), (await http.get(HOURS)).json()) == before
        conversation = await server.state.store.conversation(cid)
        assert conversation is not None and conversation.tags == []


async def test_errors_without_a_field_carry_neither_field_nor_reason(server: Server) -> None:
    """Only an error about one field names one: a body that is not JSON, an unknown
    conversation, a wrong token have just ``code`` and ``message``; a query parameter out of
    range names the parameter."""
    token = await server.token("agent")
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id="v", body="hi")
        cid = (await visitor.until("ack"))["conversation_id"]
    async with server.http(token) as http:
        r = await http.post(
            "/api/v1/conversations/x/messages",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message"}
        r = await http.get("/api/v1/conversations/nope")
        assert r.status_code == 404 and set(r.json()["error"]) == {"code", "message"}
        r = await http.get(f"/api/v1/conversations/{cid}/messages?limit=0")
        error = r.json()["error"]
        assert (r.status_code, error["field"], error["reason"]) == (400, "limit", "range")
        assert error["message"] == "limit must be between 1 and 500"
    async with server.http("nope") as http:
        r = await http.get("/api/v1/conversations")
        assert r.status_code == 401 and set(r.json()["error"]) == {"code", "message"}
