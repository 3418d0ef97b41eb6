"""The compliance API and identity tokens at their edges: wrong roles, bad tokens, unknown ids,
bad bodies and the rectification rules, each answered with its stable error code and
changing nothing; plus ``verified_only`` on the visitor socket and the privacy CLI's settings.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from chatserver.store.sqlite_privacy import RETENTION_CATEGORIES
from chatserver.web.api import MAX_JSON_BYTES
from chatserver.web.api_privacy import MAX_KEY_CHARS
from tests.helpers import (
    SITE_ID,
    Server,
    cli,
    db_rows,
    identity_token,
    make_settings,
    msg_id,
    running_server,
)

SUB = "platform-person-1"
NAME = "Kari Nordmann"
EMAIL = "kari.nordmann@example.no"
PID = "01019012345"


# ---------------------------------------------------------------- scene


@dataclass
class Scene:
    """A verified person with a conversation and a pending rectification (asked for by
    ``officer``), and an anonymous visitor with a conversation of their own."""

    subject: str
    conversation: str
    rectification: str
    officer: str
    anonymous: str
    anonymous_conversation: str


async def verified_person(server: Server, sub: str = SUB, **claims: Any) -> tuple[str, str]:
    """A person who says hello with an identity token and writes once: (account id, conv id)."""
    claims = {"name": NAME, "email": EMAIL, "pid": PID, "idp": "bankid", **claims}
    async with server.visitor(hello={"identity": identity_token(sub, **claims)}) as (v, welcome):
        assert welcome["account"] is not None, welcome
        await v.send(type="send", client_msg_id=msg_id(), body="where is my parcel?")
        ack = await v.until("ack")
    return str(welcome["account"]["id"]), str(ack["conversation_id"])


async def anonymous_visitor(server: Server) -> tuple[str, str]:
    async with server.visitor() as (v, welcome):
        assert welcome["account"] is None
        await v.send(type="send", client_msg_id=msg_id(), body="just browsing")
        ack = await v.until("ack")
    return str(welcome["visitor_id"]), str(ack["conversation_id"])


async def make_scene(server: Server) -> Scene:
    subject, conversation = await verified_person(server)
    anonymous, anonymous_conversation = await anonymous_visitor(server)
    officer = await server.token("compliance", name="Olga Officer")
    async with server.http(officer) as http:
        r = await http.post(
            f"/api/v1/subjects/{subject}/rectifications",
            json={"field": "name", "value": "Kari Rettet"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    return Scene(
        subject=subject,
        conversation=conversation,
        rectification=r.json()["id"],
        officer=officer,
        anonymous=anonymous,
        anonymous_conversation=anonymous_conversation,
    )


def fill(path: str, scene: Scene) -> str:
    return (
        path.replace("{subject}", scene.subject)
        .replace("{conv}", scene.conversation)
        .replace("{rect}", scene.rectification)
        .replace("{anonymous}", scene.anonymous)
    )


async def audit_count(server: Server) -> int:
    return len(await server.state.store.audit_page(limit=1000))


async def assert_unchanged(server: Server, scene: Scene, audited: int) -> None:
    """Nothing was done: no new audit entry, the person, their thread and the pending
    rectification are all as they were."""
    store = server.state.store
    assert await audit_count(server) == audited
    subject = await store.subject(scene.subject)
    assert subject is not None and subject.legal_hold is False
    conversation = await store.conversation(scene.conversation)
    assert conversation is not None and conversation.legal_hold is False
    rectification = await store.rectification(scene.rectification)
    assert rectification is not None and rectification.status == "pending"
    account = await store.account(scene.subject)
    assert account is not None and account.name == NAME and account.phone is None
    runs = await store.retention_runs()
    assert runs == []


def count(server: Server, table: str) -> int:
    """Rows in ``table``, read beside the server on a connection of the test's own."""
    rows = db_rows(Path(server.state.settings.data_dir), f"SELECT count(*) FROM {table}")
    return int(rows[0][0])


def error_of(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


# ---------------------------------------------------------------- roles

# (method, path, JSON body, what compliance gets, may an admin do it, is it audited)
ROUTES: list[tuple[str, str, dict[str, Any] | None, int, bool, bool]] = [
    ("GET", f"/api/v1/subjects?email={EMAIL}", None, 200, False, True),
    ("GET", "/api/v1/subjects/{subject}/export", None, 200, False, True),
    ("GET", "/api/v1/subjects/{subject}/export?format=zip", None, 200, False, True),
    ("POST", "/api/v1/subjects/{subject}/erasure", None, 200, False, True),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        {"field": "phone", "value": "+47 22 33 44 55"},
        201,
        False,
        True,
    ),
    ("GET", "/api/v1/subjects/{subject}/rectifications", None, 200, False, True),
    ("PUT", "/api/v1/subjects/{subject}/legal-hold", {"hold": True}, 200, False, True),
    ("PUT", "/api/v1/conversations/{conv}/legal-hold", {"hold": True}, 200, False, True),
    ("POST", "/api/v1/rectifications/{rect}/approve", None, 200, True, True),
    ("POST", "/api/v1/rectifications/{rect}/reject", None, 200, True, True),
    ("GET", "/api/v1/audit", None, 200, False, False),
    ("GET", "/api/v1/audit/verify", None, 200, False, False),
    ("POST", "/api/v1/retention/runs", {"dry_run": True}, 201, False, True),
    ("GET", "/api/v1/retention/runs", None, 200, False, False),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "admin_may", "audited"),
    ROUTES,
    ids=[
        f"{m} {p.split('?')[0].replace('/api/v1', '')}{'?' if '?' in p else ''}"
        for m, p, *_ in ROUTES
    ],
)
async def test_each_privacy_route_needs_its_role(
    server: Server,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    admin_may: bool,
    audited: bool,
) -> None:
    """No or an unknown token is 401; an agent 403; an admin 403 (except approve and reject,
    which an admin may do too); a compliance officer gets the answer. Refusals change and
    audit nothing; what compliance does is audited as theirs."""
    scene = await make_scene(server)
    url = fill(path, scene)
    refused = [
        ("no token", None, 401, "unauthorized"),
        ("unknown token", "cs_nope", 401, "unauthorized"),
        ("agent", await server.token("agent"), 403, "forbidden"),
    ]
    if not admin_may:
        refused.append(("admin", await server.token("admin"), 403, "forbidden"))
    before = await audit_count(server)
    for label, token, want_status, want_code in refused:
        async with server.http(token) as http:
            r = await http.request(method, url, json=body)
        assert r.status_code == want_status, (label, r.text)
        error_of(r, want_status, want_code)
        await assert_unchanged(server, scene, before)

    async with server.http(await server.token("compliance", name="Cato Compliance")) as http:
        r = await http.request(method, url, json=body)
    assert r.status_code == status, r.text
    if "format=zip" in url:
        assert r.headers["content-type"] == "application/zip"
        assert r.content[:2] == b"PK"
    else:
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()  # a body, not an error
        assert "error" not in r.json()
    entries = await server.state.store.audit_page(after_seq=0, limit=1000)
    assert len(entries) == before + (1 if audited else 0)
    if audited:
        assert entries[-1].actor_role == "compliance" and entries[-1].actor_id


async def test_admin_and_another_compliance_officer_may_decide(server: Server) -> None:
    """Approve and reject work for an admin and for a compliance officer who did not ask."""
    scene = await make_scene(server)
    admin = await server.token("admin", name="Ada Admin")
    async with server.http(admin) as http:
        r = await http.post(f"/api/v1/rectifications/{scene.rectification}/reject")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    assert r.json()["decided_by"].startswith("admin:")
    async with server.http(scene.officer) as http:
        r = await http.post(
            f"/api/v1/subjects/{scene.subject}/rectifications",
            json={"field": "email", "value": "kari@new.example"},
        )
        assert r.status_code == 201 and r.json()["status"] == "pending"
        second = r.json()["id"]
    async with server.http(await server.token("compliance", name="Cato")) as http:
        r = await http.post(f"/api/v1/rectifications/{second}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied" and r.json()["decided_by"].startswith("compliance:")
    account = await server.state.store.account(scene.subject)
    assert account is not None and account.email == "kari@new.example" and account.name == NAME


@pytest.mark.parametrize(
    "authorization",
    [None, "bearer", "Identity", "IdentityToken x.y.z", "Basic a2FyaTpwYXNz", "Token x.y.z"],
    ids=[
        "none",
        "a bearer token",
        "Identity and nothing",
        "a scheme like Identity",
        "basic",
        "other",
    ],
)
async def test_me_export_needs_the_identity_scheme(
    server: Server, authorization: str | None
) -> None:
    """The person's own export takes ``Authorization: Identity <token>`` only: anything else,
    a staff bearer token included, is 401 unauthorized."""
    await verified_person(server)
    if authorization == "bearer":
        authorization = "Bearer " + await server.token("compliance")
    audited = await audit_count(server)
    headers = {"Authorization": authorization} if authorization else {}
    async with server.http() as http:
        r = await http.get("/api/v1/me/export", headers=headers)
    assert "Authorization: Identity" in error_of(r, 401, "unauthorized")
    assert await audit_count(server) == audited


async def test_me_export_gives_a_person_their_own_data(server: Server) -> None:
    """With a valid identity token a person gets their own export, audited as themself."""
    subject, conversation = await verified_person(server)
    async with server.http() as http:
        r = await http.get(
            "/api/v1/me/export", headers={"Authorization": "Identity " + identity_token(SUB)}
        )
    assert r.status_code == 200, r.text
    document = r.json()
    assert document["subject"]["id"] == subject
    assert document["subject"]["name"] == NAME
    assert [c["id"] for c in document["conversations"]] == [conversation]
    [entry] = await server.state.store.audit_page(action="subject.export")
    assert (entry.actor_role, entry.actor_id, entry.subject_id) == ("subject", subject, subject)


async def test_me_export_of_a_person_with_no_data_is_not_found(server: Server) -> None:
    """A valid token for someone who never chatted here answers 404 not_found."""
    await verified_person(server)
    async with server.http() as http:
        r = await http.get(
            "/api/v1/me/export",
            headers={"Authorization": "Identity " + identity_token("never-chatted")},
        )
    error_of(r, 404, "not_found")
    assert await server.state.store.account_by_sub("never-chatted") is None


# ---------------------------------------------------------------- identity tokens


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def unsigned_token(sub: str) -> str:
    """A hand-built ``alg: none`` token: header, claims and an empty signature."""
    now = int(time.time())
    claims = {"sub": sub, "aud": SITE_ID, "iat": now, "exp": now + 600, "name": "Mallory"}
    return _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."


def forged_token(sub: str) -> str:
    now = int(time.time())
    claims = {"sub": sub, "aud": SITE_ID, "iat": now, "exp": now + 600}
    return jwt.encode(claims, "someone else's secret, also 32 bytes long", algorithm="HS256")


def bad_token(kind: str) -> str:
    now = int(time.time())
    return {
        "forged signature": lambda: forged_token(SUB),
        "expired": lambda: identity_token(SUB, iat=now - 7200, exp=now - 3600),
        "wrong audience": lambda: identity_token(SUB, aud="another-site"),
        "alg none": lambda: unsigned_token(SUB),
        "garbage": lambda: "garbage",
        "three garbage parts": lambda: "a.b.c",
        "claim too long": lambda: identity_token(SUB, name="N" * 201),
        "lifetime over an hour": lambda: identity_token(SUB, lifetime=7200),
    }[kind]()


# (kind, what the refusal says)
BAD_TOKENS = [
    ("forged signature", "signature does not verify"),
    ("expired", "expired"),
    ("wrong audience", "not for this site"),
    ("alg none", "algorithm is not accepted"),
    ("garbage", "malformed"),
    ("three garbage parts", "malformed"),
    ("claim too long", "longer than 200"),
    ("lifetime over an hour", "more than one hour"),
]


@pytest.mark.parametrize(("kind", "reason"), BAD_TOKENS, ids=[k for k, _ in BAD_TOKENS])
async def test_a_bad_identity_at_hello_goes_on_anonymous(
    server: Server, kind: str, reason: str
) -> None:
    """A refused identity token at hello: the ``welcome`` with ``account: null``, then an
    ``error`` ``unauthorized`` saying why; the chat goes on anonymous and no account is made."""
    await verified_person(server)  # the person the bad token claims to be exists
    async with server.raw_visitor() as v:
        await v.send(type="hello", identity=bad_token(kind))
        welcome = await v.expect("welcome")
        error = await v.expect("error", code="unauthorized", ref=None)
        assert reason in error["message"], error
        assert "anonymous" in error["message"]
        assert welcome["account"] is None
        assert welcome["conversations"] == []  # not the verified person's threads
        await v.send(type="send", client_msg_id="c1", body="hello?")
        ack = await v.until("ack", client_msg_id="c1")
    conversation = await server.state.store.conversation(ack["conversation_id"])
    assert conversation is not None and conversation.account_id is None
    visitor = await server.state.store.subject(welcome["visitor_id"])
    assert visitor is not None and visitor.kind == "visitor"
    account = await server.state.store.account_by_sub(SUB)
    assert account is not None and account.name == NAME  # "Mallory" changed nothing


@pytest.mark.parametrize(("kind", "reason"), BAD_TOKENS, ids=[k for k, _ in BAD_TOKENS])
async def test_a_bad_identity_at_me_export_is_unauthorized(
    server: Server, kind: str, reason: str
) -> None:
    """``GET /me/export`` with a refused identity token answers 401 unauthorized saying why,
    even though the person the token names has data here."""
    await verified_person(server)
    audited = await audit_count(server)
    async with server.http() as http:
        r = await http.get(
            "/api/v1/me/export", headers={"Authorization": "Identity " + bad_token(kind)}
        )
    assert reason in error_of(r, 401, "unauthorized")
    assert await audit_count(server) == audited


async def test_an_oversized_identity_at_me_export_is_unauthorized(server: Server) -> None:
    """A token over 8,192 characters is refused unread: 401 unauthorized."""
    await verified_person(server)
    async with server.http() as http:
        r = await http.get("/api/v1/me/export", headers={"Authorization": "Identity " + "a" * 9000})
    assert "longer than 8192" in error_of(r, 401, "unauthorized")


async def test_an_oversized_identity_at_hello_is_a_bad_frame(server: Server) -> None:
    """At hello an identity over 8,192 characters breaks the frame's documented limits
    (docs/protocol.md: ``identity?`` 1–8192): ``bad_frame`` and no welcome; the same socket
    can say hello again and chat anonymous."""
    async with server.raw_visitor() as v:
        await v.send(type="hello", identity="a" * 8193)
        await v.expect("error", code="bad_frame")
        await v.send(type="hello")
        welcome = await v.expect("welcome")
        assert welcome["account"] is None


# ---------------------------------------------------------------- verified_only


async def test_verified_only_refuses_a_hello_without_identity(tmp_path: Path) -> None:
    """On a verified-only site a hello without identity gets ``verification_required`` and
    the socket is closed with 1008; no visitor is made."""
    async with running_server(make_settings(tmp_path, verified_only=True)) as server:
        async with server.raw_visitor() as v:
            await v.send(type="hello")
            error = await v.expect("error", code="verification_required")
            assert "verified" in error["message"]
            assert await v.closed() == 1008
            assert v.seen == [error]  # no welcome, ever
        assert count(server, "visitors") == 0
        assert count(server, "visitor_sessions") == 0


@pytest.mark.parametrize(("kind", "reason"), BAD_TOKENS[:5], ids=[k for k, _ in BAD_TOKENS[:5]])
async def test_verified_only_refuses_a_bad_identity(tmp_path: Path, kind: str, reason: str) -> None:
    """On a verified-only site a refused token gets ``verification_required`` (saying why the
    token was refused) and a 1008 close, not an anonymous chat."""
    async with running_server(make_settings(tmp_path, verified_only=True)) as server:
        async with server.raw_visitor() as v:
            await v.send(type="hello", identity=bad_token(kind))
            error = await v.expect("error", code="verification_required")
            assert reason in error["message"]
            assert await v.closed() == 1008
            assert [f["type"] for f in v.seen] == ["error"]
        assert count(server, "visitors") == 0
        assert count(server, "accounts") == 0


async def test_verified_only_refusal_does_not_promise_an_anonymous_chat(tmp_path: Path) -> None:
    """The ``verification_required`` message for a bad token says why the token was refused,
    without saying that the chat goes on anonymous (it does not: the socket closes)."""
    settings = make_settings(tmp_path, verified_only=True)
    async with running_server(settings) as server, server.raw_visitor() as v:
        await v.send(type="hello", identity=bad_token("expired"))
        error = await v.expect("error", code="verification_required")
        assert await v.closed() == 1008
    assert "expired" in error["message"]
    assert "anonymous" not in error["message"], error["message"]


async def test_verified_only_welcomes_a_good_identity(tmp_path: Path) -> None:
    """On a verified-only site a valid identity token gets the welcome with the account."""
    async with running_server(make_settings(tmp_path, verified_only=True)) as server:
        hello = {"identity": identity_token(SUB, name=NAME)}
        async with server.visitor(hello=hello) as (v, welcome):
            assert welcome["account"]["name"] == NAME
            await v.send(type="send", client_msg_id="c1", body="hi")
            ack = await v.until("ack", client_msg_id="c1")
        conversation = await server.state.store.conversation(ack["conversation_id"])
        assert conversation is not None
        assert conversation.account_id == welcome["account"]["id"]


# ---------------------------------------------------------------- unknown ids and bad input

BIG = "[" * (MAX_JSON_BYTES + 1)
LONG_KEY = "k" * (MAX_KEY_CHARS + 1)

# (method, path, body text, extra headers, status, code)
BAD_REQUESTS: list[tuple[str, str, str, dict[str, str], int, str]] = [
    # Unknown ids.
    ("GET", "/api/v1/subjects/nope/export", "", {}, 404, "not_found"),
    ("GET", "/api/v1/subjects/nope/export?format=zip", "", {}, 404, "not_found"),
    ("POST", "/api/v1/subjects/nope/erasure", "", {}, 404, "not_found"),
    (
        "POST",
        "/api/v1/subjects/nope/rectifications",
        '{"field":"name","value":"x"}',
        {},
        404,
        "not_found",
    ),
    ("GET", "/api/v1/subjects/nope/rectifications", "", {}, 404, "not_found"),
    ("PUT", "/api/v1/subjects/nope/legal-hold", '{"hold":true}', {}, 404, "not_found"),
    ("PUT", "/api/v1/conversations/nope/legal-hold", '{"hold":true}', {}, 404, "not_found"),
    ("POST", "/api/v1/rectifications/nope/approve", "", {}, 404, "not_found"),
    ("POST", "/api/v1/rectifications/nope/reject", "", {}, 404, "not_found"),
    # Rectification bodies.
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"address","value":"x"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"verified_fields","value":"[]"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name","value":5}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":null,"value":"x"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":["name"],"value":"x"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name"}',
        {},
        400,
        "bad_request",
    ),
    ("POST", "/api/v1/subjects/{subject}/rectifications", '{"value":"x"}', {}, 400, "bad_request"),
    ("POST", "/api/v1/subjects/{subject}/rectifications", "{}", {}, 400, "bad_request"),
    ("POST", "/api/v1/subjects/{subject}/rectifications", "[]", {}, 400, "bad_request"),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name","value":"x","why":"y"}',
        {},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name","value":"' + "v" * (MAX_KEY_CHARS + 1) + '"}',
        {},
        400,
        "bad_request",
    ),
    ("POST", "/api/v1/subjects/{subject}/rectifications", "not json", {}, 400, "bad_request"),
    ("POST", "/api/v1/subjects/{subject}/rectifications", "", {}, 400, "bad_request"),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name","value":"x"}',
        {"content-type": "text/plain"},
        400,
        "bad_request",
    ),
    (
        "POST",
        "/api/v1/subjects/{subject}/rectifications",
        '{"field":"name","value":"x"}',
        {"content-type": "application/x-www-form-urlencoded"},
        400,
        "bad_request",
    ),
    ("POST", "/api/v1/subjects/{subject}/rectifications", BIG, {}, 413, "too_large"),
    # Legal holds and retention runs.
    ("PUT", "/api/v1/subjects/{subject}/legal-hold", '{"hold":"yes"}', {}, 400, "bad_request"),
    ("PUT", "/api/v1/subjects/{subject}/legal-hold", '{"hold":1}', {}, 400, "bad_request"),
    ("PUT", "/api/v1/subjects/{subject}/legal-hold", "{}", {}, 400, "bad_request"),
    (
        "PUT",
        "/api/v1/subjects/{subject}/legal-hold",
        '{"hold":true,"until":"2030"}',
        {},
        400,
        "bad_request",
    ),
    ("PUT", "/api/v1/subjects/{subject}/legal-hold", BIG, {}, 413, "too_large"),
    ("PUT", "/api/v1/conversations/{conv}/legal-hold", '{"hold":"yes"}', {}, 400, "bad_request"),
    (
        "PUT",
        "/api/v1/conversations/{conv}/legal-hold",
        '{"hold":true}',
        {"content-type": "text/plain"},
        400,
        "bad_request",
    ),
    ("POST", "/api/v1/retention/runs", '{"dry_run":"no"}', {}, 400, "bad_request"),
    ("POST", "/api/v1/retention/runs", '{"dry_run":0}', {}, 400, "bad_request"),
    ("POST", "/api/v1/retention/runs", '{"dry_run":true,"category":"ip"}', {}, 400, "bad_request"),
    ("POST", "/api/v1/retention/runs", "not json", {}, 400, "bad_request"),
    ("POST", "/api/v1/retention/runs", BIG, {}, 413, "too_large"),
    # Finding a person.
    ("GET", "/api/v1/subjects", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects?email=", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects?email=%20%20", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects?account_id=", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects?pid=", "", {}, 400, "bad_request"),
    ("GET", f"/api/v1/subjects?email={LONG_KEY}", "", {}, 400, "bad_request"),
    ("GET", f"/api/v1/subjects?account_id={LONG_KEY}", "", {}, 400, "bad_request"),
    ("GET", f"/api/v1/subjects?pid={LONG_KEY}", "", {}, 400, "bad_request"),
    ("GET", f"/api/v1/subjects?email={EMAIL}&pid={LONG_KEY}", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects?name=Kari", "", {}, 400, "bad_request"),
    # Export formats.
    ("GET", "/api/v1/subjects/{subject}/export?format=pdf", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects/{subject}/export?format=", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects/{subject}/export?format=zip&locale=de", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/subjects/nope/export?format=pdf", "", {}, 400, "bad_request"),
    # The audit log.
    ("GET", "/api/v1/audit?cursor=abc", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?cursor=-1", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?cursor=1.5", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?cursor=" + "9" * 19, "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?limit=0", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?limit=5000", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?limit=abc", "", {}, 400, "bad_request"),
    ("GET", "/api/v1/audit?subject_id=", "", {}, 400, "bad_request"),
    ("GET", f"/api/v1/audit?action={LONG_KEY}", "", {}, 400, "bad_request"),
    # Methods that are not there.
    ("DELETE", "/api/v1/subjects/{subject}", "", {}, 404, "not_found"),
    ("DELETE", "/api/v1/subjects/{subject}/legal-hold", "", {}, 405, "bad_request"),
    ("GET", "/api/v1/subjects/{subject}/erasure", "", {}, 405, "bad_request"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    BAD_REQUESTS,
    ids=[f"{m} {p.replace('/api/v1', '')[:70]} {b[:40]} {h}" for m, p, b, h, *_ in BAD_REQUESTS],
)
async def test_bad_requests_get_their_code_and_change_nothing(
    server: Server,
    method: str,
    path: str,
    body: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Each unknown id or malformed request from a compliance officer gets a JSON error with
    its stable code; nothing is changed and nothing is audited."""
    scene = await make_scene(server)
    audited = await audit_count(server)
    compliance = await server.token("compliance", name="Cato Compliance")
    async with server.http(compliance) as http:
        r = await http.request(
            method,
            fill(path, scene),
            content=body.encode() if body else None,
            headers={"content-type": "application/json", **headers},
        )
    error_of(r, status, code)
    await assert_unchanged(server, scene, audited)
    assert not (Path(server.state.settings.data_dir) / "exports").exists() or not any(
        (Path(server.state.settings.data_dir) / "exports").iterdir()
    )


async def test_an_unknown_locale_is_refused_whatever_the_format(server: Server) -> None:
    """``locale=de`` is not a locale this server has: 400 bad_request, also for a JSON export."""
    scene = await make_scene(server)
    audited = await audit_count(server)
    async with server.http(await server.token("compliance")) as http:
        r = await http.get(f"/api/v1/subjects/{scene.subject}/export", params={"locale": "de"})
    error_of(r, 400, "bad_request")
    assert await audit_count(server) == audited


async def test_subjects_are_found_by_pid_email_and_account_id(server: Server) -> None:
    """``/subjects?pid=`` finds the person verified with that national id (through its keyed
    hash), as do their email and platform id; another pid finds nobody. The audit entry names
    the kind of key, never the key."""
    subject, _ = await verified_person(server)
    other, _ = await verified_person(server, "platform-person-2", pid="02029012345", email="o@x.no")
    async with server.http(await server.token("compliance")) as http:
        for params in ({"pid": PID}, {"email": EMAIL.upper()}, {"account_id": SUB}):
            r = await http.get("/api/v1/subjects", params=params)
            assert r.status_code == 200, r.text
            [found] = r.json()["items"]
            assert found["id"] == subject and found["kind"] == "account", params
            assert found["account_id"] == SUB
        r = await http.get("/api/v1/subjects", params={"pid": "31129912345"})
        assert r.status_code == 200 and r.json()["items"] == []
    searches = await server.state.store.audit_page(action="subject.search")
    assert [json.loads(e.details)["by"] for e in searches] == [
        ["pid"],
        ["email"],
        ["account_id"],
        ["pid"],
    ]
    for entry in searches:
        assert PID not in entry.details and SUB not in entry.details
        assert EMAIL not in entry.details.lower()
    assert other != subject


# ---------------------------------------------------------------- rectification rules


async def test_rectification_of_a_verified_field_waits_for_someone_else(server: Server) -> None:
    """A field the identity vouched for is ``pending``; the officer who asked cannot approve
    it (403); an admin can, and the export then shows the new value; deciding again is 409."""
    scene = await make_scene(server)
    pending = await server.state.store.rectification(scene.rectification)
    assert pending is not None and pending.old_value == NAME and pending.new_value == "Kari Rettet"
    async with server.http(scene.officer) as http:
        before = (await http.get(f"/api/v1/subjects/{scene.subject}/export")).json()
        assert before["subject"]["name"] == NAME
        assert "name" in before["subject"]["verified_fields"]
        for verb in ("approve", "reject"):
            r = await http.post(f"/api/v1/rectifications/{scene.rectification}/{verb}")
            assert "other than who asked" in error_of(r, 403, "forbidden")
    unchanged = await server.state.store.account(scene.subject)
    assert unchanged is not None and unchanged.name == NAME

    async with server.http(await server.token("admin", name="Ada Admin")) as http:
        r = await http.post(f"/api/v1/rectifications/{scene.rectification}/approve")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied"
        assert r.json()["old_value"] == NAME and r.json()["new_value"] == "Kari Rettet"
        assert r.json()["decided_at"] is not None
        for verb in ("approve", "reject"):
            r = await http.post(f"/api/v1/rectifications/{scene.rectification}/{verb}")
            assert "applied" in error_of(r, 409, "conflict")

    async with server.http(scene.officer) as http:
        after = (await http.get(f"/api/v1/subjects/{scene.subject}/export")).json()
        listed = (await http.get(f"/api/v1/subjects/{scene.subject}/rectifications")).json()
    assert after["subject"]["name"] == "Kari Rettet"
    assert "name" not in after["subject"]["verified_fields"]  # no longer what the eID said
    assert after["subject"]["email"] == EMAIL
    assert [(x["id"], x["status"]) for x in listed["items"]] == [(scene.rectification, "applied")]
    actions = [e.action for e in await server.state.store.audit_page(subject_id=scene.subject)]
    assert actions.count("rectification.request") == 1
    assert actions.count("rectification.approve") == 1
    assert "rectification.reject" not in actions


async def test_rectification_of_a_field_not_in_the_token_applies_at_once(server: Server) -> None:
    """A field the identity token did not carry (no ``phone``) is corrected at once:
    ``applied``, decided by the asker, visible in the export."""
    scene = await make_scene(server)
    async with server.http(scene.officer) as http:
        r = await http.post(
            f"/api/v1/subjects/{scene.subject}/rectifications",
            json={"field": "phone", "value": "  +47 22 33 44 55 "},
        )
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["status"] == "applied"
        assert (out["old_value"], out["new_value"]) == (None, "+47 22 33 44 55")
        assert out["decided_by"] == out["requested_by"] and out["decided_at"] is not None
        export = (await http.get(f"/api/v1/subjects/{scene.subject}/export")).json()
        r = await http.post(f"/api/v1/rectifications/{out['id']}/approve")
    assert export["subject"]["phone"] == "+47 22 33 44 55"
    assert export["subject"]["name"] == NAME  # the pending one still waits
    # Already decided; and by the one who asked, which is refused before anything else.
    error_of(r, 403, "forbidden")


async def test_rectification_of_an_anonymous_visitor_is_a_conflict(server: Server) -> None:
    """A never-verified visitor has no profile to correct: 409 conflict, nothing stored."""
    scene = await make_scene(server)
    audited = await audit_count(server)
    async with server.http(scene.officer) as http:
        r = await http.post(
            f"/api/v1/subjects/{scene.anonymous}/rectifications",
            json={"field": "name", "value": "Somebody"},
        )
        assert "never verified" in error_of(r, 409, "conflict")
        listed = await http.get(f"/api/v1/subjects/{scene.anonymous}/rectifications")
    assert listed.status_code == 200 and listed.json()["items"] == []
    await assert_unchanged(server, scene, audited + 1)  # the listing is a read on the record


# ---------------------------------------------------------------- erasure


async def test_erasure_is_idempotent_over_http(server: Server) -> None:
    """Erasing twice answers 200 both times: first ``already_erased: false``, then ``true``
    with the same tombstone, time and counts; the person is gone in between."""
    scene = await make_scene(server)
    async with server.http(scene.officer) as http:
        first = await http.post(f"/api/v1/subjects/{scene.subject}/erasure")
        assert first.status_code == 200, first.text
        assert first.json()["already_erased"] is False
        assert first.json()["erased"]["conversations"] == 1
        assert first.json()["erased"]["rectifications"] == 1
        error_of(await http.get(f"/api/v1/subjects/{scene.subject}/export"), 404, "not_found")
        found = await http.get("/api/v1/subjects", params={"account_id": SUB})
        assert found.json()["items"] == []
        second = await http.post(f"/api/v1/subjects/{scene.subject}/erasure")
    assert second.status_code == 200, second.text
    assert second.json()["already_erased"] is True
    for key in ("tombstone_id", "erased_at", "erased"):
        assert second.json()[key] == first.json()[key], key
    assert await server.state.store.conversation(scene.conversation) is None
    # The anonymous visitor's data is untouched.
    assert await server.state.store.conversation(scene.anonymous_conversation) is not None
    [erasure] = await server.state.store.audit_page(action="subject.erasure")
    assert json.loads(erasure.details)["tombstone"] == first.json()["tombstone_id"]


# ---------------------------------------------------------------- the CLI's settings


def test_cli_refuses_a_bad_retention_duration(tmp_path: Path) -> None:
    """``CHATSERVER_RETENTION_IP=soon``: exit 2, naming the setting and what a duration
    looks like; the store is not even opened."""
    result = cli(tmp_path, "retention", "run", "--dry-run", env={"CHATSERVER_RETENTION_IP": "soon"})
    assert result.returncode == 2, result
    assert "retention_ip" in result.stderr
    assert "CHATSERVER_RETENTION_IP" in result.stderr
    assert "90d" in result.stderr and "'soon'" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "chat.db").exists()


def test_cli_retention_dry_run_prints_every_category(tmp_path: Path) -> None:
    """``retention run --dry-run`` with valid settings exits 0 with one row per category."""
    assert cli(tmp_path, "migrate").returncode == 0
    result = cli(tmp_path, "retention", "run", "--dry-run", env={"CHATSERVER_RETENTION_IP": "2w"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "dry run" in lines[0]
    assert lines[1].split()[:2] == ["category", "keep"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == list(RETENTION_CATEGORIES)
    assert rows["ip"].split()[1] == "14d"
    assert rows["audit"].split()[1] == "1825d"


def test_cli_audit_verify_on_a_fresh_data_dir(tmp_path: Path) -> None:
    """``audit verify`` on a freshly migrated store: exit 0, the log is intact."""
    assert cli(tmp_path, "migrate").returncode == 0
    result = cli(tmp_path, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout


def test_cli_erase_of_an_unknown_subject_is_not_found(tmp_path: Path) -> None:
    """``erase <unknown>``: exit 1 and ``not_found`` on stderr; nothing printed as erased."""
    assert cli(tmp_path, "migrate").returncode == 0
    result = cli(tmp_path, "erase", "nobody-at-all")
    assert result.returncode == 1, result
    assert "not_found" in result.stderr
    assert "tombstone" not in result.stdout


@pytest.mark.parametrize("on", ["person", "conversation"])
async def test_erasure_waits_for_a_legal_hold_to_be_released(server: Server, on: str) -> None:
    """While the person or one of their conversations is on legal hold, erasure answers 409
    conflict and removes nothing; once the hold is released it goes through."""
    scene = await make_scene(server)
    path = (
        f"/api/v1/subjects/{scene.subject}/legal-hold"
        if on == "person"
        else f"/api/v1/conversations/{scene.conversation}/legal-hold"
    )
    async with server.http(scene.officer) as http:
        r = await http.put(path, json={"hold": True})
        assert r.status_code == 200 and r.json()["legal_hold"] is True, r.text
        audited = await audit_count(server)
        r = await http.post(f"/api/v1/subjects/{scene.subject}/erasure")
        assert "legal hold" in error_of(r, 409, "conflict")
        assert await audit_count(server) == audited
        assert await server.state.store.conversation(scene.conversation) is not None
        assert (await http.get(f"/api/v1/subjects/{scene.subject}/export")).status_code == 200
        r = await http.put(path, json={"hold": False})
        assert r.status_code == 200 and r.json()["legal_hold"] is False
        r = await http.post(f"/api/v1/subjects/{scene.subject}/erasure")
    assert r.status_code == 200, r.text
    assert r.json()["already_erased"] is False
    assert await server.state.store.conversation(scene.conversation) is None
    holds = await server.state.store.audit_page(subject_id=scene.subject)
    assert [json.loads(e.details)["hold"] for e in holds if e.action.endswith("legal_hold")] == [
        True,
        False,
    ]
