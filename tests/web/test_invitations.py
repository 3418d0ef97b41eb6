"""Agent invitations, end to end: an admin invites by email, a real SMTP server (aiosmtpd)
receives the email, and the test follows the link's token as the invitee's browser
would: it works once, for 72 hours, until revoked; accepting with a password that is
strong enough makes the agent and signs them in."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.auth import hash_password
from chatserver.clock import uuid7
from tests.helpers import (
    Server,
    db_rows,
    free_port,
    make_settings,
    running_server,
)
from tests.web.test_mail import (
    PUBLIC_URL,
    Inbox,
    ShiftedClock,
    mail_settings,
    outbox_until,
    smtp_server,
)
from tests.web.test_openapi import assert_conforms

HOUR_US = 3600 * 1_000_000
LINK = re.compile(re.escape(PUBLIC_URL) + r"/console#/invite/([A-Za-z0-9_-]+)")
STRONG = "violet kayak mountain 42"
DEFAULT_PREFERENCES = {
    "language": None,
    "sound": True,
    "desktop": True,
    "notify": {"new_conversation": True, "new_message_mine": True, "assigned_to_me": True},
}


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    async with smtp_server() as pair:
        yield pair


async def invite(
    server: Server, admin: str, email: str, name: str = "Kari Nordmann", role: str = "agent"
) -> dict[str, Any]:
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/invitations", json={"email": email, "name": name, "role": role}
        )
    assert r.status_code == 201, r.text
    assert_conforms("post", "/invitations", 201, r.json())
    return r.json()  # type: ignore[no-any-return]


async def token_from(inbox: Inbox, to: str) -> str:
    got = await inbox.next()
    assert got.rcpt_tos == [to]
    match = LINK.search(got.text)
    assert match is not None, got.text
    assert match.group(0) in got.html
    return match.group(1)


def invitation_rows(server: Server) -> list[Any]:
    return db_rows(
        Path(server.state.settings.data_dir),
        "SELECT email, token_hash, used_at, revoked_at FROM agent_invitations ORDER BY created_at",
    )


def outbox_kinds(server: Server) -> list[Any]:
    return db_rows(
        Path(server.state.settings.data_dir),
        "SELECT kind, recipient FROM mail_outbox ORDER BY created_at",
    )


async def test_an_invitation_is_emailed_and_its_link_signs_the_invitee_in(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """The invitee gets an email with the console link; the link's page shows who is
    invited; a weak password is refused with zxcvbn's advice; a strong one makes the agent,
    signs them in (the cookie works on /console/me) and uses the link up. Only the token's
    SHA-256 is stored."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        admin = await server.token("admin", name="Ada Admin")
        sent = await invite(server, admin, "Kari@Example.no", name="  Kari   Nordmann ")
        assert (sent["email"], sent["name"], sent["role"]) == (
            "kari@example.no",
            "Kari Nordmann",
            "agent",
        )
        made, ends = (datetime.fromisoformat(sent[k]) for k in ("created_at", "expires_at"))
        assert (ends - made).total_seconds() == 72 * 3600
        token = await token_from(inbox, "kari@example.no")
        got = inbox.all[-1]
        assert got.message["Subject"] == "Ada Admin invites you to the support chat console"
        assert "Hello Kari Nordmann" in got.text and "until" in got.text

        # Only the hash is kept; the email with the token left the outbox once sent.
        ((email, stored_hash, used_at, revoked_at),) = invitation_rows(server)
        assert stored_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (email, used_at, revoked_at) == ("kari@example.no", None, None)
        await outbox_until(server, lambda o: o.sent == 1)
        assert outbox_kinds(server) == []

        async with server.http(admin) as http:
            r = await http.get("/api/v1/invitations")
            assert_conforms("get", "/invitations", 200, r.json())
            assert [i["id"] for i in r.json()["items"]] == [sent["id"]]

        async with server.http() as browser:
            r = await browser.post("/console/invitations/lookup", json={"token": token})
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
            shown = r.json()
            assert shown == {
                "email": "kari@example.no",
                "name": "Kari Nordmann",
                "role": "agent",
                "expires_at": sent["expires_at"],
            }

            for weak, why in (
                ("kari nordmann", "too easy to guess"),
                ("Nordmann2024", "too easy to guess"),
                ("short", "at least 10 characters"),
            ):
                r = await browser.post(
                    "/console/invitations/accept", json={"token": token, "password": weak}
                )
                assert r.status_code == 400, r.text
                error = r.json()["error"]
                assert (error["code"], error["field"]) == ("weak_password", "password")
                assert why in error["message"] and error["message"].endswith(".")
            assert "chatserver_session" not in browser.cookies

            r = await browser.post(
                "/console/invitations/accept",
                json={"token": token, "password": STRONG, "name": "Kari N."},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["agent"]["name"] == "Kari N." and body["agent"]["role"] == "agent"
            assert body["agent"]["email"] == "kari@example.no"
            assert body["preferences"] == DEFAULT_PREFERENCES
            assert browser.cookies.get("chatserver_session")
            me = await browser.get("/console/me")
            assert me.status_code == 200 and me.json()["agent"] == body["agent"]

            # Used once: the same link, looked at or accepted again, is gone.
            again = await browser.post(
                "/console/invitations/accept", json={"token": token, "password": STRONG}
            )
            assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
            assert (await browser.post("/console/invitations/lookup", json={"token": token})).status_code == 404

        async with server.http() as other:
            r = await other.post(
                "/console/login", json={"email": "kari@example.no", "password": STRONG}
            )
            assert r.status_code == 200 and r.json()["agent"]["name"] == "Kari N."
        async with server.http(admin) as http:
            assert (await http.get("/api/v1/invitations")).json()["items"] == []
            agents = (await http.get("/api/v1/agents")).json()["items"]
            assert [a["role"] for a in agents if a["email"] == "kari@example.no"] == ["agent"]
        assert invitation_rows(server)[0][2] is not None  # used_at
        assert next(a for a in agents if a["email"] == "kari@example.no")["active"]


async def test_an_invitation_in_norwegian_for_an_admin(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """With ``mail_staff_locale = nb`` the email is Norwegian; the role invited to is the
    role the new agent gets."""
    inbox, port = smtp
    settings = mail_settings(tmp_path, port, mail_staff_locale="nb")
    async with running_server(settings) as server:
        admin = await server.token("admin", name="Ada")
        await invite(server, admin, "ola@example.no", name="Ola", role="admin")
        token = await token_from(inbox, "ola@example.no")
        assert inbox.all[-1].message["Subject"] == "Ada inviterer deg til kundechattens konsoll"
        assert "administrator" in inbox.all[-1].text
        async with server.http() as browser:
            r = await browser.post(
                "/console/invitations/accept", json={"token": token, "password": STRONG}
            )
            assert r.status_code == 200 and r.json()["agent"]["role"] == "admin"
            # An admin at once: they may list the invitations.
            csrf = browser.cookies["chatserver_csrf"]
            r = await browser.get("/api/v1/invitations", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200


async def test_an_invitation_expires_after_72_hours(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """The server's clock moved past 72 hours: the link's page and accepting it answer the
    same 404 as an unknown token, and the invitation is no longer listed."""
    inbox, port = smtp
    clock = ShiftedClock()
    async with running_server(mail_settings(tmp_path, port), clock=clock) as server:
        admin = await server.token("admin")
        await invite(server, admin, "late@example.no")
        token = await token_from(inbox, "late@example.no")
        async with server.http() as browser:
            clock.offset_us = 72 * HOUR_US - 60 * 1_000_000
            assert (await browser.post("/console/invitations/lookup", json={"token": token})).status_code == 200
            clock.offset_us = 72 * HOUR_US + 1
            expired = await browser.post("/console/invitations/lookup", json={"token": token})
            unknown = await browser.post("/console/invitations/lookup", json={"token": "x" * 43})
            assert expired.status_code == unknown.status_code == 404
            assert expired.json() == unknown.json()
            r = await browser.post(
                "/console/invitations/accept", json={"token": token, "password": STRONG}
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        async with server.http(admin) as http:
            assert (await http.get("/api/v1/invitations")).json()["items"] == []
        assert await server.state.store.agent_credentials("late@example.no") is None


async def test_a_revoked_invitation_stops_working_and_its_unsent_email_is_dropped(
    tmp_path: Path,
) -> None:
    """With the SMTP server down the email waits in the outbox; revoking the invitation
    drops it, and the token answers 404. Revoking twice is fine; an unknown id is 404.
    Inviting the same email again replaces the earlier invitation (its email too)."""
    settings = mail_settings(
        tmp_path, free_port(), smtp_timeout=2.0, smtp_max_attempts=100, smtp_retry_seconds=3600
    )
    async with running_server(settings) as server:
        admin = await server.token("admin")
        first = await invite(server, admin, "twice@example.no")
        second = await invite(server, admin, "twice@example.no", name="Twice Again")
        await outbox_until(server, lambda o: o.failed >= 1)
        # One email waits: the second invitation's. The first was revoked by it.
        assert outbox_kinds(server) == [("invitation", "twice@example.no")]
        rows = invitation_rows(server)
        assert [r[3] is not None for r in rows] == [True, False]
        async with server.http(admin) as http:
            listed = (await http.get("/api/v1/invitations")).json()["items"]
            assert [i["id"] for i in listed] == [second["id"]]
            r = await http.delete(f"/api/v1/invitations/{second['id']}")
            assert r.status_code == 204
            assert outbox_kinds(server) == []
            assert (await http.get("/api/v1/invitations")).json()["items"] == []
            assert (await http.delete(f"/api/v1/invitations/{second['id']}")).status_code == 204
            assert (await http.delete(f"/api/v1/invitations/{first['id']}")).status_code == 204
            r = await http.delete("/api/v1/invitations/nope")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_revoked_link_answers_404(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    """A link revoked after its email arrived no longer works; an accepted invitation
    cannot be revoked (409: deactivate the agent instead)."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        admin = await server.token("admin")
        revoked = await invite(server, admin, "gone@example.no")
        gone_token = await token_from(inbox, "gone@example.no")
        accepted = await invite(server, admin, "kept@example.no")
        kept_token = await token_from(inbox, "kept@example.no")
        async with server.http(admin) as http:
            assert (await http.delete(f"/api/v1/invitations/{revoked['id']}")).status_code == 204
        async with server.http() as browser:
            assert (await browser.post("/console/invitations/lookup", json={"token": gone_token})).status_code == 404
            r = await browser.post(
                "/console/invitations/accept", json={"token": gone_token, "password": STRONG}
            )
            assert r.status_code == 404
            r = await browser.post(
                "/console/invitations/accept", json={"token": kept_token, "password": STRONG}
            )
            assert r.status_code == 200
        async with server.http(admin) as http:
            r = await http.delete(f"/api/v1/invitations/{accepted['id']}")
            assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("role", ["agent", "compliance", None])
async def test_only_admins_manage_invitations(tmp_path: Path, role: str | None) -> None:
    """Agents and compliance officers get 403, no token 401, on every invitation route."""
    async with running_server(mail_settings(tmp_path, free_port())) as server:
        token = await server.token(role) if role else None
        async with server.http(token) as http:
            for method, path, body in (
                ("GET", "/api/v1/invitations", None),
                ("POST", "/api/v1/invitations", {"email": "a@b.example", "name": "A"}),
                ("DELETE", "/api/v1/invitations/x", None),
            ):
                r = await http.request(method, path, json=body)
                want = (403, "forbidden") if role else (401, "unauthorized")
                assert (r.status_code, r.json()["error"]["code"]) == want, (method, path)
        assert outbox_kinds(server) == []


async def test_an_agents_email_cannot_be_invited(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    """Inviting an email an agent has is 409 with field ``email``; so is accepting an
    invitation whose email an agent got meanwhile (and the invitation stays unused)."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        admin = await server.token("admin")
        store = server.state.store
        await store.add_agent(
            agent_id=uuid7(),
            email="taken@example.no",
            name="Taken",
            role="agent",
            password_hash=None,
            now=1,
        )
        async with server.http(admin) as http:
            r = await http.post(
                "/api/v1/invitations", json={"email": "Taken@Example.no", "name": "Again"}
            )
            assert r.status_code == 409, r.text
            assert_conforms("post", "/invitations", 409, r.json())
            assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("conflict", "email")
            # The same for adding the agent directly.
            r = await http.post(
                "/api/v1/agents",
                json={"email": "taken@example.no", "name": "Again", "password": STRONG},
            )
            assert (r.status_code, r.json()["error"]["field"]) == (409, "email")

        await invite(server, admin, "race@example.no")
        token = await token_from(inbox, "race@example.no")
        await store.add_agent(
            agent_id=uuid7(),
            email="race@example.no",
            name="Quicker",
            role="agent",
            password_hash=await hash_password("not the one"),
            now=2,
        )
        async with server.http() as browser:
            r = await browser.post(
                "/console/invitations/accept", json={"token": token, "password": STRONG}
            )
            assert r.status_code == 409
            assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("conflict", "email")
            assert "chatserver_session" not in browser.cookies
        assert invitation_rows(server)[-1][2] is None  # not used


async def test_bad_invitations_name_their_field(tmp_path: Path) -> None:
    """Bad bodies get ``bad_request`` with the field and the reason, and send nothing;
    without email configured, inviting is 503 ``unavailable``."""
    async with running_server(mail_settings(tmp_path, free_port())) as server:
        admin = await server.token("admin")
        async with server.http(admin) as http:
            for body, field, reason in (
                ({"name": "A"}, "email", "required"),
                ({"email": 5, "name": "A"}, "email", "type"),
                ({"email": "not an email", "name": "A"}, "email", "pattern"),
                ({"email": "a@b", "name": "A"}, "email", "pattern"),
                ({"email": "a@b.example", "name": ""}, "name", "too_short"),
                ({"email": "a@b.example", "name": "   "}, "name", "too_short"),
                ({"email": "a@b.example", "name": "x" * 101}, "name", "too_long"),
                ({"email": "a@b.example", "name": "A", "role": "root"}, "role", "invalid"),
                ({"email": "a@b.example", "name": "A", "admin": True}, "admin", "unknown_field"),
            ):
                r = await http.post("/api/v1/invitations", json=body)
                assert r.status_code == 400, (body, r.text)
                assert_conforms("post", "/invitations", 400, r.json())
                error = r.json()["error"]
                assert (error["code"], error["field"], error["reason"]) == (
                    "bad_request",
                    field,
                    reason,
                ), body
        async with server.http() as browser:
            for body, field, reason in (
                ({"password": STRONG}, "token", "required"),
                ({"token": "t", "password": STRONG, "role": "admin"}, "role", "unknown_field"),
                ({"token": "t", "password": 12}, "password", "type"),
            ):
                r = await browser.post("/console/invitations/accept", json=body)
                error = r.json()["error"]
                assert (r.status_code, error["field"], error["reason"]) == (400, field, reason)
        assert outbox_kinds(server) == [] and invitation_rows(server) == []

    async with running_server(make_settings(tmp_path / "no-mail")) as server:
        admin = await server.token("admin")
        async with server.http(admin) as http:
            r = await http.post("/api/v1/invitations", json={"email": "a@b.example", "name": "A"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
            assert_conforms("post", "/invitations", 503, r.json())


async def test_weak_passwords_are_refused_everywhere_a_password_is_set(
    server: Server,
) -> None:
    """POST /api/v1/agents and /console/password take the same rule as accepting an
    invitation: ``weak_password`` with the field and zxcvbn's advice, nothing changed."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        for weak in ("short", "ingrid.hansen", "Ingrid1234", "qwertyuiopas"):
            r = await http.post(
                "/api/v1/agents",
                json={"email": "ingrid@example.no", "name": "Ingrid Hansen", "password": weak},
            )
            assert r.status_code == 400, (weak, r.text)
            assert_conforms("post", "/agents", 400, r.json())
            error = r.json()["error"]
            assert (error["code"], error["field"]) == ("weak_password", "password")
            assert error["message"].startswith("The password is too")
        assert await server.state.store.agent_credentials("ingrid@example.no") is None
        r = await http.post(
            "/api/v1/agents",
            json={"email": "ingrid@example.no", "name": "Ingrid Hansen", "password": STRONG},
        )
        assert r.status_code == 201
    async with httpx.AsyncClient(base_url=server.url) as browser:
        r = await browser.post(
            "/console/login", json={"email": "ingrid@example.no", "password": STRONG}
        )
        assert r.status_code == 200
        csrf = {"X-CSRF-Token": browser.cookies["chatserver_csrf"]}
        r = await browser.post(
            "/console/password", json={"current": STRONG, "new": "hansen ingrid"}, headers=csrf
        )
        error = r.json()["error"]
        assert (r.status_code, error["code"], error["field"]) == (400, "weak_password", "new")
