"""Webhooks end to end: a real receiver on localhost gets signed deliveries, sees retries
after it answers 500, refuses replays, and every event carries its documented payload."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from chatserver.clock import Clock
from chatserver.webhooks.events import EVENT_TYPES
from chatserver.webhooks.signing import sign
from tests.helpers import (
    Server,
    backend_settings,
    db_rows,
    identity_token,
    make_settings,
    msg_id,
    running_server,
)
from tests.web.test_openapi import assert_conforms
from tests.web.webhook_receiver import Receiver

T = TypeVar("T")

# Fast retries for tests; the receiver is on 127.0.0.1, which only this allows.
FAST: dict[str, Any] = {
    "webhook_allow_private": True,
    "webhook_retry_base": 0.05,
    "webhook_max_attempts": 5,
    "webhook_timeout": 5,
}
ENVELOPE = {"id", "type", "created_at", "data"}
DAY = 86_400 * 1_000_000


async def register(
    server: Server, admin: str, receiver: Receiver, events: list[str], **flags: Any
) -> dict[str, Any]:
    """Register ``receiver`` for ``events``; it learns the secret shown once."""
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/webhooks", json={"url": receiver.url, "events": events, **flags}
        )
    assert r.status_code == 201, r.text
    assert_conforms("post", "/webhooks", 201, r.json())
    receiver.secret = r.json()["secret"]
    return r.json()  # type: ignore[no-any-return]


async def chat(server: Server, text: str, hello: dict[str, Any] | None = None) -> dict[str, Any]:
    """A visitor says ``text``; answers the ack."""
    async with server.visitor(hello=hello) as (visitor, _):
        await visitor.send(type="send", client_msg_id=msg_id(), body=text)
        return await visitor.until("ack")


def rows(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return db_rows(data_dir, sql, params)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Ask ``check`` until it answers something; fails after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.02)  # polling the API, bounded by the timeout above


async def deliveries(server: Server, admin: str, hook_id: str) -> list[dict[str, Any]]:
    async with server.http(admin) as http:
        r = await http.get(f"/api/v1/webhooks/{hook_id}/deliveries")
    assert r.status_code == 200
    assert_conforms("get", "/webhooks/{id}/deliveries", 200, r.json())
    return r.json()["items"]  # type: ignore[no-any-return]


async def settled(server: Server, admin: str, hook_id: str, count: int = 1) -> list[Any]:
    """The delivery log once ``count`` deliveries are delivered or given up."""

    async def check() -> list[Any] | None:
        items = await deliveries(server, admin, hook_id)
        done = [d for d in items if d["status"] != "pending"]
        return items if len(done) >= count else None

    return await eventually(check)


# ---------------------------------------------------------------- signing, retries, replays


async def test_a_refused_delivery_is_retried_with_growing_waits_and_the_same_id(
    tmp_path: Path,
) -> None:
    """The receiver answers 500 twice: the same body and id come again after at least the
    base wait, then after at least twice it; each attempt is signed; the log shows all three.
    The receiver then refuses the same delivery replayed, a stale one and a tampered one."""
    base = 0.4
    settings = make_settings(tmp_path, **{**FAST, "webhook_retry_base": base})
    async with Receiver(fail_first=2) as receiver, running_server(settings) as server:
        admin = await server.token("admin")
        hook = await register(server, admin, receiver, ["message.created"])
        ack = await chat(server, "hello")
        [body] = await receiver.until_accepted("message.created")
        tries = [r for r in receiver.requests if r.id == body["id"]]
        assert [r.status for r in tries] == [500, 500, 204]
        assert {r.verdict for r in tries} == {"failing on purpose", "accepted"}
        assert len({r.body for r in tries}) == 1  # byte for byte the same body each time
        for attempt in tries:
            assert attempt.path == "/hook"
            assert attempt.headers["content-type"] == "application/json"
            assert attempt.headers["chatserver-event"] == "message.created"
            assert attempt.headers["chatserver-delivery"] == body["id"]
            assert attempt.headers["host"] == f"127.0.0.1:{receiver.port}"
        first_wait, second_wait = tries[1].at - tries[0].at, tries[2].at - tries[1].at
        # Jitter only lengthens a wait: at least the base, then at least twice it (how much
        # longer each one is depends on the jitter and the machine's load).
        assert first_wait >= base * 0.99
        assert second_wait >= 2 * base * 0.99
        assert body["data"]["message"]["id"] == ack["message_id"]

        [logged] = await settled(server, admin, hook["id"])
        assert logged["id"] == body["id"] and logged["type"] == "message.created"
        assert logged["status"] == "delivered" and logged["attempts"] == 3
        assert [a["status_code"] for a in logged["log"]] == [500, 500, 204]
        assert [a["error"] for a in logged["log"]] == [None, None, None]
        assert logged["next_attempt_at"] is None and logged["finished_at"] is not None

        last = tries[-1]
        async with httpx.AsyncClient(timeout=10) as http:
            replayed = await http.post(
                receiver.url,
                content=last.body,
                headers={"Chatserver-Signature": last.headers["chatserver-signature"]},
            )
            fresh = json.dumps({**body, "id": "never-seen"}).encode()
            stale = await http.post(
                receiver.url,
                content=fresh,
                headers={
                    "Chatserver-Signature": sign(receiver.secret, int(time.time()) - 301, fresh)
                },
            )
            tampered = await http.post(
                receiver.url,
                content=last.body.replace(b'"seq":1', b'"seq":2'),
                headers={"Chatserver-Signature": last.headers["chatserver-signature"]},
            )
        assert (replayed.status_code, stale.status_code, tampered.status_code) == (409, 400, 400)
        assert [r.verdict for r in receiver.requests[-3:]] == [
            "replay",
            "invalid: timestamp outside the tolerance: a replay, or a clock off",
            "invalid: signature does not match",
        ]
    # Delivered: the outbox row keeps the log only, nothing about the conversation.
    assert rows(tmp_path, "SELECT payload, conversation_id, status FROM webhook_deliveries") == [
        (None, None, "delivered")
    ]


async def test_a_delivery_is_given_up_after_the_last_attempt(tmp_path: Path) -> None:
    """An endpoint that always answers 500 gets ``webhook_max_attempts`` attempts; then the
    delivery is `failed` and its payload is dropped."""
    settings = make_settings(tmp_path, **{**FAST, "webhook_max_attempts": 3})
    async with Receiver(always_fail=True) as receiver, running_server(settings) as server:
        admin = await server.token("admin")
        hook = await register(server, admin, receiver, ["conversation.created"])
        await chat(server, "anyone there?")
        [logged] = await settled(server, admin, hook["id"])
        assert logged["status"] == "failed" and logged["attempts"] == 3
        assert [a["status_code"] for a in logged["log"]] == [500, 500, 500]
        assert len({r.id for r in receiver.requests}) == 1 and len(receiver.requests) == 3
    assert rows(tmp_path, "SELECT payload, conversation_id, status FROM webhook_deliveries") == [
        (None, None, "failed")
    ]


# ---------------------------------------------------------------- what each event carries


async def test_every_event_carries_its_documented_payload_and_nothing_more(
    tmp_path: Path,
) -> None:
    """A verified visitor chats, an agent answers and adds a note, resolves, and compliance
    erases the person: each event arrives once with exactly the documented fields, no
    message text, no note and no name; an endpoint that asked for bodies and notes gets
    those, and only the events it subscribed to."""
    settings = make_settings(tmp_path, **FAST)
    async with (
        Receiver() as plain,
        Receiver() as with_text,
        running_server(settings) as server,
    ):
        admin = await server.token("admin")
        officer = await server.token("compliance")
        await register(server, admin, plain, list(EVENT_TYPES))
        await register(
            server,
            admin,
            with_text,
            ["message.created"],
            include_message_body=True,
            include_notes=True,
        )
        hello = {"identity": identity_token("kari-sub", name="Kari Nordmann")}
        async with server.visitor(hello=hello) as (visitor, welcome):
            await visitor.send(type="send", client_msg_id=msg_id(), body="Hei, jeg trenger hjelp")
            ack = await visitor.until("ack")
        conversation = ack["conversation_id"]
        async with server.http(admin) as http:
            path = f"/api/v1/conversations/{conversation}"
            reply = await http.post(
                path + "/messages", json={"client_msg_id": "r1", "body": "Hello Kari"}
            )
            note = await http.post(
                path + "/messages",
                json={"client_msg_id": "n1", "body": "VIP customer", "kind": "note"},
            )
            resolved = (await http.patch(path, json={"status": "resolved"})).json()
            thread = (await http.get(path + "/messages")).json()["items"]
        assert reply.status_code == note.status_code == 201

        await plain.until_accepted("message.created", 2)
        await plain.until_accepted("conversation.resolved")
        await with_text.until_accepted("message.created", 3)
        async with server.http(officer) as http:
            [subject] = (
                await http.get("/api/v1/subjects", params={"account_id": "kari-sub"})
            ).json()["items"]
            erased = (await http.post(f"/api/v1/subjects/{subject['id']}/erasure")).json()
        [gone] = await plain.until_accepted("subject.erased")

        for body in plain.accepted() + with_text.accepted():
            assert set(body) == ENVELOPE
        assert len({b["id"] for b in plain.accepted() + with_text.accepted()}) == 5 + 3

        [created] = plain.accepted("conversation.created")
        assert created["data"] == {
            "conversation": {"id": conversation, "status": "open", "created_at": ack["ts"]}
        }
        by_seq = {m["seq"]: m for m in thread}

        def message(seq: int) -> dict[str, Any]:
            m = by_seq[seq]
            return {
                "id": m["message_id"],
                "conversation_id": conversation,
                "seq": seq,
                "kind": m["kind"],
                "author": {"role": m["author"]["role"], "id": m["author"]["id"]},
                "created_at": m["ts"],
            }

        assert by_seq[1]["author"] == {
            "role": "visitor",
            "id": welcome["visitor_id"],
            "name": "Kari Nordmann",
        }
        messages = sorted(
            plain.accepted("message.created"), key=lambda b: b["data"]["message"]["seq"]
        )
        assert [b["data"] for b in messages] == [{"message": message(1)}, {"message": message(2)}]
        [closed] = plain.accepted("conversation.resolved")
        assert closed["data"] == {
            "conversation": {
                "id": conversation,
                "status": "resolved",
                "assignee_id": resolved["assignee"]["id"] if resolved["assignee"] else None,
                "last_seq": 4,  # with the `resolved` event line, which is no message.created
                "resolved_at": resolved["closed_at"],
            }
        }
        assert gone["data"] == {
            "subject": {
                "id": subject["id"],
                "kind": "account",
                "account_id": "kari-sub",
                "visitor_ids": [welcome["visitor_id"]],
                "conversation_ids": [conversation],
            },
            "erased_at": erased["erased_at"],
        }
        plain_bytes = b"".join(r.body for r in plain.requests)
        for text in (b"Hei, jeg", b"Hello Kari", b"VIP", b"Nordmann", b'"body"', b'"note"'):
            assert text not in plain_bytes, text
        assert plain_bytes.count(b"kari-sub") == 1  # only in subject.erased

        texts = sorted(with_text.accepted(), key=lambda b: b["data"]["message"]["seq"])
        assert [b["data"]["message"] for b in texts] == [
            {**message(1), "body": "Hei, jeg trenger hjelp"},
            {**message(2), "body": "Hello Kari"},
            {**message(3), "body": "VIP customer"},
        ]
        assert texts[2]["data"]["message"]["kind"] == "note"
        assert {b["type"] for b in with_text.accepted()} == {"message.created"}


async def test_a_test_delivery_reaches_the_endpoint(tmp_path: Path) -> None:
    """``POST /webhooks/{id}/test`` sends a signed ``webhook.test`` with the webhook's id,
    even to an endpoint that subscribed to other events only."""
    async with Receiver() as receiver, running_server(make_settings(tmp_path, **FAST)) as server:
        admin = await server.token("admin")
        hook = await register(server, admin, receiver, ["subject.erased"])
        async with server.http(admin) as http:
            r = await http.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert r.status_code == 202
        assert_conforms("post", "/webhooks/{id}/test", 202, r.json())
        [body] = await receiver.until_accepted("webhook.test")
        assert body["id"] == r.json()["delivery_id"]
        assert body["data"] == {"webhook_id": hook["id"]}


# ---------------------------------------------------------------- durability, privacy


async def test_a_pending_delivery_goes_after_a_restart(tmp_path: Path) -> None:
    """A delivery still pending when the server stops (its endpoint kept failing) is sent
    after the restart, with the same id and body, and then logged as delivered."""
    settings = make_settings(
        tmp_path, **{**FAST, "webhook_retry_base": 0.2, "webhook_max_attempts": 50}
    )
    async with Receiver(always_fail=True) as receiver:
        async with running_server(settings) as server:
            admin = await server.token("admin")
            hook = await register(server, admin, receiver, ["conversation.created"])
            await chat(server, "are you there?")
            await receiver.until(lambda seen: len(seen) >= 1)
        [(status, payload)] = rows(tmp_path, "SELECT status, payload FROM webhook_deliveries")
        assert status == "pending" and json.loads(payload)["type"] == "conversation.created"
        failed_id = receiver.requests[0].id
        assert failed_id == json.loads(payload)["id"]

        receiver.always_fail = False
        async with running_server(settings) as server:
            [body] = await receiver.until_accepted("conversation.created")
            assert body["id"] == failed_id
            accepted = [r for r in receiver.requests if r.verdict == "accepted"]
            assert accepted[0].body == receiver.requests[0].body
            [logged] = await settled(server, admin, hook["id"])
            assert logged["status"] == "delivered"
            assert logged["attempts"] == len(receiver.requests)
            assert logged["log"][-1]["status_code"] == 204


async def test_erasure_removes_pending_deliveries_about_the_person(tmp_path: Path) -> None:
    """Deliveries still pending about a person (here: with message text, to an endpoint
    that keeps failing) are gone after their erasure, leaving no trace of the text in the
    database file; the ``subject.erased`` delivery goes out with their platform id."""
    settings = make_settings(tmp_path, **{**FAST, "webhook_retry_base": 30})
    async with (
        Receiver(always_fail=True) as failing,
        Receiver() as erasures,
        running_server(settings) as server,
    ):
        admin = await server.token("admin")
        officer = await server.token("compliance")
        await register(server, admin, failing, ["message.created"], include_message_body=True)
        await register(server, admin, erasures, ["subject.erased"])
        hello = {"identity": identity_token("ola-sub", name="Ola")}
        await chat(server, "my sentinel-text-4711", hello=hello)
        await failing.until(lambda seen: len(seen) >= 1)
        pending = rows(tmp_path, "SELECT payload FROM webhook_deliveries WHERE status = 'pending'")
        assert len(pending) == 1 and "sentinel-text-4711" in pending[0][0]

        async with server.http(officer) as http:
            [subject] = (
                await http.get("/api/v1/subjects", params={"account_id": "ola-sub"})
            ).json()["items"]
            r = await http.post(f"/api/v1/subjects/{subject['id']}/erasure")
        assert r.status_code == 200
        [gone] = await erasures.until_accepted("subject.erased")
        assert gone["data"]["subject"]["account_id"] == "ola-sub"
        assert rows(tmp_path, "SELECT event_type FROM webhook_deliveries") == [("subject.erased",)]
    if not backend_settings(tmp_path):  # the SQLite file (PostgreSQL: VACUUM after erasure)
        assert b"sentinel-text-4711" not in (tmp_path / "chat.db").read_bytes()


class SteppingClock(Clock):
    """Wall-clock time, plus whatever the test adds."""

    def __init__(self) -> None:
        self.offset = 0

    def now_us(self) -> int:
        return super().now_us() + self.offset


async def test_retention_removes_the_delivery_log(tmp_path: Path) -> None:
    """Deliveries older than ``retention_webhook_log`` go in a retention run; the dry run
    counts them first; younger ones stay."""
    clock = SteppingClock()
    settings = make_settings(tmp_path, **FAST, retention_webhook_log="30d")
    async with Receiver() as receiver, running_server(settings, clock=clock) as server:
        receiver.clock = lambda: clock.now_us() / 1e6
        admin = await server.token("admin")
        officer = await server.token("compliance")
        hook = await register(server, admin, receiver, ["conversation.created"])
        await chat(server, "one")
        await chat(server, "two")
        await settled(server, admin, hook["id"], 2)
        clock.offset += 31 * DAY
        await chat(server, "three")
        await settled(server, admin, hook["id"], 3)

        async with server.http(officer) as http:
            counts = {}
            for dry_run in (True, False):
                r = await http.post("/api/v1/retention/runs", json={"dry_run": dry_run})
                assert r.status_code == 201
                assert_conforms("post", "/retention/runs", 201, r.json())
                [webhooks] = [c for c in r.json()["categories"] if c["category"] == "webhooks"]
                counts[dry_run] = webhooks["counts"]
        assert counts == {True: {"webhook_deliveries": 2}, False: {"webhook_deliveries": 2}}
        left = await deliveries(server, admin, hook["id"])
        assert len(left) == 1 and left[0]["status"] == "delivered"


# ---------------------------------------------------------------- addresses (SSRF)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_a_literal_private_address_is_refused_on_registration(
    server: Server, url: str
) -> None:
    """With ``webhook_allow_private`` off (the default), an endpoint on a loopback, private,
    link-local or unspecified address is refused with a reason naming the setting."""
    async with server.http(await server.token("admin")) as http:
        r = await http.post("/api/v1/webhooks", json={"url": url, "events": EVENT_TYPES})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        assert "webhook_allow_private" in r.json()["error"]["message"]
        assert (await http.get("/api/v1/webhooks")).json()["items"] == []


async def test_a_host_name_resolving_to_a_private_address_is_refused_at_delivery(
    tmp_path: Path,
) -> None:
    """``localhost`` passes registration (a name), but each delivery resolves it and refuses
    to connect to a loopback address: the receiver hears nothing, the log says why."""
    settings = make_settings(tmp_path, webhook_max_attempts=1)
    async with Receiver() as receiver, running_server(settings) as server:
        admin = await server.token("admin")
        async with server.http(admin) as http:
            r = await http.post(
                "/api/v1/webhooks",
                json={"url": f"http://localhost:{receiver.port}/hook", "events": EVENT_TYPES},
            )
            assert r.status_code == 201
            hook = r.json()
            assert (await http.post(f"/api/v1/webhooks/{hook['id']}/test")).status_code == 202
        [logged] = await settled(server, admin, hook["id"])
        assert logged["status"] == "failed"
        [attempt] = logged["log"]
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("refused: localhost resolves to ")
        assert "non-public address (webhook_allow_private is off)" in attempt["error"]
    assert receiver.requests == []


# ---------------------------------------------------------------- the admin API


async def test_admins_manage_webhooks_and_the_secret_is_shown_once(tmp_path: Path) -> None:
    """Create (secret shown), list and get (no secret), change, rotate the secret (shown
    again, and deliveries are signed with the new one), deactivate, delete; each change is
    audited without the URL."""
    async with Receiver() as receiver, running_server(make_settings(tmp_path, **FAST)) as server:
        admin = await server.token("admin")
        hook = await register(
            server, admin, receiver, ["message.created", "message.created"], description=" CRM "
        )
        first_secret = hook.pop("secret")
        assert first_secret.startswith("whsec_") and len(first_secret) > 40
        assert hook["events"] == ["message.created"] and hook["description"] == "CRM"
        assert hook["include_message_body"] is False and hook["include_notes"] is False
        assert hook["active"] is True
        path = f"/api/v1/webhooks/{hook['id']}"
        async with server.http(admin) as http:
            listed = (await http.get("/api/v1/webhooks")).json()
            assert_conforms("get", "/webhooks", 200, listed)
            assert listed["items"] == [hook]
            got = await http.get(path)
            assert_conforms("get", "/webhooks/{id}", 200, got.json())
            assert got.json() == hook
            assert first_secret not in (await http.get("/api/v1/webhooks")).text

            r = await http.patch(
                path, json={"events": ["conversation.resolved"], "include_message_body": True}
            )
            assert r.status_code == 200 and "secret" not in r.json()
            assert_conforms("patch", "/webhooks/{id}", 200, r.json())
            assert r.json()["events"] == ["conversation.resolved"]
            assert r.json()["include_message_body"] is True

            r = await http.patch(path, json={"rotate_secret": True})
            second_secret = r.json()["secret"]
            assert second_secret.startswith("whsec_") and second_secret != first_secret
            receiver.secret = second_secret
            assert (await http.post(path + "/test")).status_code == 202
            await receiver.until_accepted("webhook.test")

            r = await http.patch(path, json={"active": False})
            assert r.json()["active"] is False
            r = await http.post(path + "/test")
            assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
            assert_conforms("post", "/webhooks/{id}/test", 409, r.json())

            r = await http.delete(path)
            assert r.status_code == 204
            r = await http.get(path)
            assert r.status_code == 404
            assert_conforms("get", "/webhooks/{id}", 404, r.json())
            assert (await http.get("/api/v1/webhooks")).json()["items"] == []

        async with server.http(await server.token("compliance")) as http:
            audit = (await http.get("/api/v1/audit", params={"limit": 100})).json()["items"]
        actions = [e["action"] for e in audit if e["action"].startswith("webhook.")]
        assert actions == [
            "webhook.create",
            "webhook.change",
            "webhook.change",
            "webhook.change",
            "webhook.delete",
        ]
        assert receiver.url not in json.dumps(audit) and second_secret not in json.dumps(audit)
    assert rows(tmp_path, "SELECT count(*) FROM webhook_deliveries") == [(0,)]


async def test_an_inactive_or_unsubscribed_endpoint_gets_nothing(tmp_path: Path) -> None:
    """Events go only to active endpoints that subscribed to them."""
    async with (
        Receiver() as resolved_only,
        Receiver() as inactive,
        running_server(make_settings(tmp_path, **FAST)) as server,
    ):
        admin = await server.token("admin")
        await register(server, admin, resolved_only, ["conversation.resolved"])
        await register(server, admin, inactive, list(EVENT_TYPES), active=False)
        ack = await chat(server, "hi")
        async with server.http(admin) as http:
            await http.patch(
                f"/api/v1/conversations/{ack['conversation_id']}", json={"status": "resolved"}
            )
        await resolved_only.until_accepted("conversation.resolved")
    assert {b["type"] for b in resolved_only.accepted()} == {"conversation.resolved"}
    assert inactive.requests == []
    assert rows(tmp_path, "SELECT count(*) FROM webhook_deliveries") == [(1,)]


GOOD = {"url": "https://hooks.example.com/in", "events": ["message.created"]}
BIG = "x" * 1_000_001


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**GOOD, "url": "ftp://hooks.example.com/in"}, 400),
        ({**GOOD, "url": "hooks.example.com/in"}, 400),
        ({**GOOD, "url": "https://user:pw@hooks.example.com/in"}, 400),
        ({**GOOD, "url": "https://token@hooks.example.com/in"}, 400),
        ({**GOOD, "url": "https://hooks.example.com/in#frag"}, 400),
        ({**GOOD, "url": "https://hooks.example.com:99999/in"}, 400),
        ({**GOOD, "url": "https://hooks example.com/in"}, 400),
        ({**GOOD, "url": "https://hooks.exämple.com/in"}, 400),
        ({**GOOD, "url": "https:///in"}, 400),
        ({**GOOD, "url": "https://hooks.example.com/" + "a" * 2048}, 400),
        ({**GOOD, "url": ""}, 400),
        ({**GOOD, "url": 5}, 400),
        ({**GOOD, "events": ["message.deleted"]}, 400),
        ({**GOOD, "events": []}, 400),
        ({**GOOD, "events": "message.created"}, 400),
        ({**GOOD, "events": [1]}, 400),
        ({**GOOD, "include_message_body": "yes"}, 400),
        ({**GOOD, "active": 1}, 400),
        ({**GOOD, "description": "d" * 201}, 400),
        ({**GOOD, "secret": "mine"}, 400),
        ({"url": GOOD["url"]}, 400),
        ({"events": GOOD["events"]}, 400),
        ([GOOD], 400),
        ({**GOOD, "description": BIG}, 413),
    ],
)
async def test_bad_webhooks_are_refused(server: Server, body: object, status: int) -> None:
    """Malformed endpoints are refused with a stable code, and nothing is stored."""
    async with server.http(await server.token("admin")) as http:
        r = await http.post("/api/v1/webhooks", json=body)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == ("too_large" if status == 413 else "bad_request")
        assert_conforms("post", "/webhooks", status, r.json())
        assert (await http.get("/api/v1/webhooks")).json()["items"] == []


async def test_bad_changes_and_queries_are_refused(server: Server) -> None:
    """PATCH with wrong types, unknown fields, a bad URL or nothing to change, a body that is
    not JSON, and bad delivery-log queries answer 400; the endpoint is unchanged."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        hook = (await http.post("/api/v1/webhooks", json=GOOD)).json()
        path = f"/api/v1/webhooks/{hook['id']}"
        changes: list[dict[str, object]] = [
            {"url": "javascript:alert(1)"},
            {"events": ["nope"]},
            {"events": []},
            {"rotate_secret": "yes"},
            {"id": "other"},
            {"active": None},
            {},
            {"rotate_secret": False},
        ]
        for change in changes:
            r = await http.patch(path, json=change)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", change
            assert_conforms("patch", "/webhooks/{id}", 400, r.json())
        r = await http.patch(path, content=b"{", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = await http.patch(path, content=b"{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 400
        for query in ("status=sent", "limit=0", "limit=201", "limit=x", "cursor=nonsense"):
            r = await http.get(f"{path}/deliveries?{query}")
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", query
            assert_conforms("get", "/webhooks/{id}/deliveries", 400, r.json())
        unchanged = (await http.get(path)).json()
        assert {k: v for k, v in unchanged.items() if k != "updated_at"} == {
            k: v for k, v in hook.items() if k not in ("secret", "updated_at")
        }


ROUTES = [
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{id}"),
    ("PATCH", "/api/v1/webhooks/{id}"),
    ("DELETE", "/api/v1/webhooks/{id}"),
    ("GET", "/api/v1/webhooks/{id}/deliveries"),
    ("POST", "/api/v1/webhooks/{id}/test"),
]


async def test_only_admins_may_use_the_webhook_api(server: Server) -> None:
    """Agents and compliance officers get 403, callers without a token 401, on every route;
    an unknown webhook id is 404 for an admin."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        hook = (await http.post("/api/v1/webhooks", json=GOOD)).json()
    for role in ("agent", "compliance", None):
        token = await server.token(role) if role else None
        async with server.http(token) as http:
            for method, route in ROUTES:
                body = GOOD if method in ("POST", "PATCH") else None
                r = await http.request(method, route.format(id=hook["id"]), json=body)
                expected = 403 if role else 401
                assert r.status_code == expected, (role, method, route)
                assert r.json()["error"]["code"] == ("forbidden" if role else "unauthorized")
    async with server.http(admin) as http:
        for method, route in ROUTES:
            if "{id}" not in route:
                continue
            change = {"active": True} if method == "PATCH" else None
            r = await http.request(method, route.format(id="no-such-hook"), json=change)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", route
        assert (await http.get(f"/api/v1/webhooks/{hook['id']}")).status_code == 200


async def test_a_rating_carries_its_score_and_the_comment_only_when_asked(
    tmp_path: Path,
) -> None:
    """A visitor rates a resolved conversation: ``rating.created`` carries the conversation,
    score, time and whether it replaced an earlier rating, never the visitor's or agent's
    id; the comment goes only to an endpoint with ``include_message_body``."""
    async with (
        Receiver() as plain,
        Receiver() as with_text,
        running_server(make_settings(tmp_path, **FAST)) as server,
    ):
        admin = await server.token("admin")
        await register(server, admin, plain, ["rating.created"])
        await register(server, admin, with_text, ["rating.created"], include_message_body=True)
        async with server.visitor() as (visitor, welcome):
            await visitor.send(type="send", client_msg_id=msg_id(), body="help")
            conversation = (await visitor.until("ack"))["conversation_id"]
            async with server.http(admin) as http:
                r = await http.patch(
                    f"/api/v1/conversations/{conversation}", json={"status": "resolved"}
                )
                assert r.status_code == 200
            await visitor.send(
                type="rate", conversation_id=conversation, score=4, comment="Quick, thanks Kari"
            )
            await visitor.until("rated")
        [rated] = await plain.until_accepted("rating.created")
        [rated_with_text] = await with_text.until_accepted("rating.created")
    assert set(rated) == ENVELOPE
    created_at = rated["data"]["rating"]["created_at"]
    assert rated["data"] == {
        "rating": {"conversation_id": conversation, "score": 4, "created_at": created_at},
        "replaced": False,
    }
    assert rated_with_text["data"] == {
        "rating": {
            "conversation_id": conversation,
            "score": 4,
            "created_at": created_at,
            "comment": "Quick, thanks Kari",
        },
        "replaced": False,
    }
    assert welcome["visitor_id"].encode() not in b"".join(
        r.body for r in plain.requests + with_text.requests
    )
