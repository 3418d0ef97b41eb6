"""Email, end to end: a real SMTP server (aiosmtpd) on a free localhost port receives what
the real server sends: offline-message notices to agents, transcripts to verified visitors
at once, and to anyone else only after they opened and confirmed the link mailed to them."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from chatserver.clock import Clock, uuid7
from chatserver.config import Settings
from tests.helpers import (
    TIMEOUT,
    Client,
    Server,
    db_rows,
    free_port,
    identity_token,
    make_settings,
    msg_id,
    running_server,
)

PUBLIC_URL = "https://chat.shop.example"
MAIL_FROM = "Shop Support <support@shop.example>"
HOUR_US = 3600 * 1_000_000
LINK = re.compile(re.escape(PUBLIC_URL) + r"/mail/confirm\?token=([A-Za-z0-9_-]+)")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class Inbox:
    """What the SMTP server received, handed from its thread to the test's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.all: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), message)
        self.loop.call_soon_threadsafe(self._arrived, item)
        return "250 OK"

    def _arrived(self, item: Received) -> None:
        self.all.append(item)
        self.queue.put_nowait(item)

    async def next(self, timeout: float = TIMEOUT) -> Received:
        return await asyncio.wait_for(self.queue.get(), timeout)


@contextlib.asynccontextmanager
async def smtp_server(port: int | None = None) -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox(asyncio.get_running_loop())
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield inbox, port
    finally:
        await asyncio.to_thread(controller.stop)


def mail_settings(tmp_path: Path, port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "mail_from": MAIL_FROM,
        "public_url": PUBLIC_URL,
        "smtp_retry_seconds": 0.1,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    async with smtp_server() as pair:
        yield pair


class ShiftedClock(Clock):
    """Real time plus an offset the test moves forward (links expire)."""

    def __init__(self) -> None:
        self.offset_us = 0

    def now_us(self) -> int:
        return super().now_us() + self.offset_us


async def add_agent(server: Server, email_: str, name: str, role: str) -> str:
    """A staff member with an email (no password: argon2 would only slow the tests)."""
    agent = await server.state.store.add_agent(
        agent_id=uuid7(), email=email_, name=name, role=role, password_hash=None, now=0
    )
    return agent.id


async def send(
    client: Client, body: str, conversation_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "send", "client_msg_id": msg_id(), "body": body, **extra}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    await client.send(**frame)
    return await client.until("ack", client_msg_id=frame["client_msg_id"])


async def agent_says(
    server: Server, token: str, conversation_id: str, body: str, kind: str
) -> None:
    async with server.http(token) as http:
        r = await http.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"client_msg_id": msg_id(), "body": body, "kind": kind},
        )
        assert r.status_code == 201, r.text


def outbox_rows(server: Server) -> list[Any]:
    return db_rows(
        Path(server.state.settings.data_dir),
        "SELECT kind, recipient, attempts, last_error FROM mail_outbox ORDER BY created_at",
    )


def confirmation_rows(server: Server) -> list[Any]:
    return db_rows(
        Path(server.state.settings.data_dir),
        "SELECT conversation_id, email, used_at FROM mail_confirmations",
    )


async def outbox_until(server: Server, done: Callable[[Any], bool]) -> None:
    """Wait, without sleeping, until the outbox's counters satisfy ``done``."""
    mail = server.state.hub.mail
    assert mail is not None
    async with asyncio.timeout(TIMEOUT), mail.outbox.attempted:
        await mail.outbox.attempted.wait_for(lambda: done(mail.outbox))


async def transcript(client: Client, **fields: Any) -> dict[str, Any]:
    ref = msg_id()
    await client.send(type="transcript", client_msg_id=ref, **fields)
    while True:
        frame = await client.recv()
        if frame["type"] == "transcript_requested" or (
            frame["type"] == "error" and frame.get("ref") == ref
        ):
            return frame


# ---------------------------------------------------------------- offline messages


async def test_an_offline_message_reaches_every_agent_and_nobody_else(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """A message left with the offline form is emailed to each active human agent and admin
    with an email (one email each), in both a text and an HTML part, with the message, the
    visitor's address to reply to and the console link; HTML in the message is escaped.
    Compliance staff, inactive agents and the visitor get nothing, and a normal chat sends
    no email."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        admin = await server.token("admin", name="Root")
        await add_agent(server, "agnes@staff.example", "Agnes", "agent")
        await add_agent(server, "ada@staff.example", "Ada", "admin")
        await add_agent(server, "cato@staff.example", "Cato", "compliance")
        gone = await add_agent(server, "gone@staff.example", "Gone", "agent")
        async with server.http(admin) as http:
            r = await http.patch(f"/api/v1/agents/{gone}", json={"active": False})
            assert r.status_code == 200, r.text

        body = 'My order <script>alert("x")</script> & 5 < 6 never came'
        async with server.visitor() as (visitor, welcome):
            assert welcome["email_transcripts"] is True
            # A normal chat first: it must not send anything.
            await send(visitor, "just chatting")
        async with server.visitor() as (visitor, _):
            ack = await send(visitor, body, contact={"email": "kari@visitor.example"})
        cid = ack["conversation_id"]

        got = [await inbox.next(), await inbox.next()]
        await outbox_until(server, lambda o: o.sent == 2)
        assert sorted(r for g in got for r in g.rcpt_tos) == [
            "ada@staff.example",
            "agnes@staff.example",
        ]
        link = f"{PUBLIC_URL}/console#/c/{cid}"
        for item in got:
            msg = item.message
            assert item.mail_from == "support@shop.example"
            assert msg["To"] == item.rcpt_tos[0]  # one email each: nobody sees the others
            assert msg["From"] == MAIL_FROM
            assert msg["Subject"] == "New message from kari@visitor.example"
            assert msg["Reply-To"] == "kari@visitor.example"
            assert msg["Auto-Submitted"] == "auto-generated"
            assert msg.get_content_type() == "multipart/alternative"
            assert body in item.text and link in item.text
            assert "<script>" not in item.html
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; 5 &lt; 6" in item.html
            assert f'href="{link}"' in item.html
        assert "Hello Ada," in next(g for g in got if "ada@" in g.rcpt_tos[0]).text
        assert not [g for g in inbox.all if "kari@visitor.example" in g.rcpt_tos]
        assert outbox_rows(server) == []  # sent copies are not kept


async def test_offline_notices_to_admins_only_in_norwegian(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """With ``offline_notify = admins`` only admins are told, and ``mail_staff_locale = nb``
    writes the notice in Norwegian; without ``public_url`` the email names the conversation
    instead of linking to it."""
    inbox, port = smtp
    settings = mail_settings(
        tmp_path, port, offline_notify="admins", mail_staff_locale="nb", public_url=""
    )
    async with running_server(settings) as server:
        await add_agent(server, "agnes@staff.example", "Agnes", "agent")
        await add_agent(server, "ada@staff.example", "Ada", "admin")
        async with server.visitor() as (visitor, _):
            ack = await send(visitor, "Hei, pakken kom aldri", contact={"email": "k@v.example"})
        got = await inbox.next()
        await outbox_until(server, lambda o: o.sent == 1)
        assert got.rcpt_tos == ["ada@staff.example"]
        assert got.message["Subject"] == "Ny melding fra k@v.example"
        assert "Hei Ada," in got.text and "Hei, pakken kom aldri" in got.text
        assert f"se etter samtale {ack['conversation_id']}" in got.text
        assert "/console#" not in got.text and "href" not in got.html.split("<body", 1)[1]
        assert [g.rcpt_tos for g in inbox.all] == [["ada@staff.example"]]


# ---------------------------------------------------------------- transcripts


async def test_a_verified_visitor_gets_the_transcript_at_once_without_notes(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """A verified visitor's ``transcript`` is answered ``sent`` and emailed to the account's
    address straight away: their messages and the agent's replies, never an internal note
    nor an event line."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        agent = await server.token("agent", name="Agnes Agent")
        hello = {
            "identity": identity_token("kari-1", name="Kari", email="kari@verified.example"),
            "locale": "en-GB",
        }
        async with server.visitor(hello=hello) as (visitor, welcome):
            assert welcome["account"]["id"]
            cid = (await send(visitor, "Where is my parcel?"))["conversation_id"]
            await agent_says(server, agent, cid, "It left the warehouse today.", "text")
            await agent_says(server, agent, cid, "INTERNAL: customer is grumpy", "note")
            async with server.http(agent) as http:  # an event line, for agents only too
                r = await http.patch(f"/api/v1/conversations/{cid}", json={"status": "pending"})
                assert r.status_code == 200, r.text
            answer = await transcript(visitor, conversation_id=cid)
            assert answer == {
                "type": "transcript_requested",
                "conversation_id": cid,
                "status": "sent",
            }
        got = await inbox.next()
        assert got.rcpt_tos == ["kari@verified.example"]
        assert got.message["Subject"].startswith("Your chat of ")
        for part in (got.text, got.html):
            assert "Where is my parcel?" in part
            assert "It left the warehouse today." in part
            assert "Agnes Agent" in part and "You" in part
            assert "INTERNAL" not in part and "grumpy" not in part
            assert "Marked pending" not in part
        await outbox_until(server, lambda o: o.sent == 1)
        assert confirmation_rows(server) == []  # nothing to confirm for a verified address


async def test_the_transcript_is_norwegian_for_a_norwegian_visitor(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """The transcript follows the locale of the visitor's ``hello`` (``nb-NO``), and a
    ``locale`` in the frame wins over it."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        hello = {
            "identity": identity_token("ola-1", name="Ola", email="ola@verified.example"),
            "locale": "nb-NO",
        }
        async with server.visitor(hello=hello) as (visitor, _):
            cid = (await send(visitor, "Hvor er pakken min?"))["conversation_id"]
            assert (await transcript(visitor, conversation_id=cid))["status"] == "sent"
            nb = await inbox.next()
            assert (await transcript(visitor, conversation_id=cid, locale="en"))["status"] == "sent"
            en = await inbox.next()
        assert nb.message["Subject"].startswith("Chatten din ")
        assert "Her er samtalen du hadde med kundeservice" in nb.text
        assert "Du:" in nb.text and "Hvor er pakken min?" in nb.text
        assert 'lang="nb"' in nb.html and "Tidene er i UTC" in nb.html
        assert en.message["Subject"].startswith("Your chat of ")
        assert "You:" in en.text


async def test_an_unconfirmed_address_gets_only_a_link_until_it_is_confirmed(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """An anonymous visitor's transcript goes first as a link to the address given; the
    transcript itself is not sent when the link is merely opened (GET, as a mail scanner
    would), only once the page's button is pressed (POST). The link then works no more,
    the stored address is gone, and an unknown link is refused with a page that says so."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        agent = await server.token("agent", name="Agnes Agent")
        async with server.visitor(hello={"locale": "en-US"}) as (visitor, _):
            cid = (await send(visitor, "Please send me this chat"))["conversation_id"]
            await agent_says(server, agent, cid, "Sure thing.", "text")
            await agent_says(server, agent, cid, "note: check refund policy", "note")
            answer = await transcript(visitor, conversation_id=cid, email="me@visitor.example")
            assert answer["status"] == "confirmation_sent"

        link_mail = await inbox.next()
        await outbox_until(server, lambda o: o.sent == 1)
        assert link_mail.rcpt_tos == ["me@visitor.example"]
        assert link_mail.message["Subject"] == "Confirm your email address to get your chat"
        assert "Please send me this chat" not in link_mail.text  # no content before confirming
        match = LINK.search(link_mail.text)
        assert match is not None
        token = match.group(1)
        assert f'href="{PUBLIC_URL}/mail/confirm?token={token}"' in link_mail.html
        assert confirmation_rows(server) == [(cid, "me@visitor.example", None)]
        assert outbox_rows(server) == []

        async with server.http() as http:
            page = await http.get("/mail/confirm", params={"token": token})
            assert page.status_code == 200
            assert 'data-state="ask"' in page.text and f'value="{token}"' in page.text
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["referrer-policy"] == "no-referrer"
            # Opening the link sent nothing.
            assert outbox_rows(server) == [] and len(inbox.all) == 1

            done = await http.post("/mail/confirm", data={"token": token})
            assert done.status_code == 200 and 'data-state="sent"' in done.text
            got = await inbox.next()
            assert got.rcpt_tos == ["me@visitor.example"]
            assert got.message["Subject"].startswith("Your chat of ")
            assert "Please send me this chat" in got.text and "Sure thing." in got.text
            assert "refund policy" not in got.text and "refund policy" not in got.html

            # Once only: both ways now say it was used; the address is no longer kept.
            again = await http.get("/mail/confirm", params={"token": token})
            assert again.status_code == 409 and 'data-state="used"' in again.text
            again = await http.post("/mail/confirm", data={"token": token})
            assert again.status_code == 409 and 'data-state="used"' in again.text
            rows = confirmation_rows(server)
            assert len(rows) == 1 and rows[0][1] is None and rows[0][2] is not None

            for bad in ("", "x" * 43, "y" * 5000):
                r = await http.get("/mail/confirm", params={"token": bad})
                assert r.status_code == 404 and 'data-state="invalid"' in r.text, bad
                r = await http.post("/mail/confirm", data={"token": bad})
                assert r.status_code == 404 and 'data-state="invalid"' in r.text, bad
            r = await http.post("/mail/confirm", content=b"token=a&token=b")
            assert r.status_code == 404
            r = await http.get("/mail/confirm", headers={"Accept-Language": "nb-NO,en;q=0.5"})
            assert r.status_code == 404 and "Lenken virker ikke" in r.text
        await outbox_until(server, lambda o: o.sent == 2)
        assert len(inbox.all) == 2


async def test_an_expired_link_is_refused_and_its_address_forgotten(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """A link opened after ``transcript_confirm_ttl`` answers 410 with an "expired" page
    (in the visitor's language), sends nothing, and the address it was for is removed."""
    inbox, port = smtp
    clock = ShiftedClock()
    settings = mail_settings(tmp_path, port, transcript_confirm_ttl="1h")
    async with running_server(settings, clock=clock) as server:
        async with server.visitor(hello={"locale": "nb"}) as (visitor, _):
            cid = (await send(visitor, "Send den"))["conversation_id"]
            await transcript(visitor, conversation_id=cid, email="meg@besokende.example")
        link_mail = await inbox.next()
        assert link_mail.message["Subject"] == "Bekreft e-postadressen din for å få chatten"
        match = LINK.search(link_mail.text)
        assert match is not None

        clock.offset_us = HOUR_US + 1
        async with server.http() as http:
            r = await http.get("/mail/confirm", params={"token": match.group(1)})
            assert r.status_code == 410 and 'data-state="expired"' in r.text
            assert "Lenken er utløpt" in r.text
            r = await http.post("/mail/confirm", data={"token": match.group(1)})
            assert r.status_code == 410
        mail = server.state.hub.mail
        assert mail is not None
        await mail.outbox.run_once()
        assert confirmation_rows(server) == [(cid, None, None)]
        assert outbox_rows(server) == [] and len(inbox.all) == 1


async def test_bad_transcript_requests_get_clear_errors(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """Wrong types, missing or oversized fields are ``bad_frame``; an address that is not
    one, or none from an anonymous visitor, is ``bad_request``; another visitor's or an
    unknown conversation is ``not_found``; past ``transcript_requests_per_hour`` it is
    ``rate_limited``; agents cannot send the frame. The socket stays usable throughout."""
    inbox, port = smtp
    # Bad frames count towards closing the socket: allow enough to try them all here.
    settings = mail_settings(tmp_path, port, transcript_requests_per_hour=2, max_bad_frames=100)
    async with running_server(settings) as server:
        async with server.visitor() as (other, _):
            others = (await send(other, "someone else's chat"))["conversation_id"]
        async with server.visitor() as (visitor, _):
            cid = (await send(visitor, "mine"))["conversation_id"]

            async def error_for(**fields: Any) -> str:
                answer = await transcript(visitor, **fields)
                assert answer["type"] == "error", answer
                return str(answer["code"])

            for fields in (
                {"conversation_id": 5, "email": "a@b.example"},
                {"conversation_id": cid, "email": 12},
                {"conversation_id": cid, "email": ["a@b.example"]},
                {"conversation_id": cid, "email": ""},
                {"conversation_id": cid, "email": "a@" + "b" * 300 + ".example"},
                {"conversation_id": cid, "email": "a@b.example", "locale": "x" * 36},
                {"conversation_id": "", "email": "a@b.example"},
                {"email": "a@b.example"},
            ):
                assert await error_for(**fields) == "bad_frame", fields
            for email_ in (
                "not an email",
                "a@b",
                "a b@c.example",
                "<a@b.example>",
                "a@b.example\nBcc: x@y.example",
            ):
                assert await error_for(conversation_id=cid, email=email_) == "bad_request"
            assert await error_for(conversation_id=cid) == "bad_request"  # anonymous: email needed
            assert await error_for(conversation_id=others, email="a@b.example") == "not_found"
            assert await error_for(conversation_id="no-such", email="a@b.example") == "not_found"

            for _ in range(2):
                ok = await transcript(visitor, conversation_id=cid, email="me@v.example")
                assert ok["status"] == "confirmation_sent"
            await visitor.send(type="transcript", conversation_id=cid, email="me@v.example")
            limited = await visitor.until("error")
            assert limited["code"] == "rate_limited" and "try again in" in limited["message"]
            await visitor.send(type="ping")
            await visitor.expect("pong")
        # The limit is per visitor and per IP: a fresh visitor from the same address is
        # limited too (every test client is 127.0.0.1).
        async with server.visitor() as (fresh, _):
            mine = (await send(fresh, "hello"))["conversation_id"]
            answer = await transcript(fresh, conversation_id=mine, email="me@v.example")
            assert answer["type"] == "error" and answer["code"] == "rate_limited"

        token = await server.token("agent")
        async with server.agent(token) as agent:
            await agent.send(type="transcript", conversation_id=cid, email="a@b.example")
            assert (await agent.until("error"))["code"] == "bad_frame"
        async with server.raw_visitor() as early:
            await early.send(type="transcript", conversation_id=cid, email="a@b.example")
            assert (await early.until("error"))["code"] == "bad_request"
        await outbox_until(server, lambda o: o.sent == 2)
        assert [g.rcpt_tos for g in inbox.all] == [["me@v.example"], ["me@v.example"]]


async def test_a_new_privacy_notice_comes_before_a_transcript(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """P9: once a new notice is published, a visitor who has not accepted it cannot hand over
    an address for a transcript (``forbidden``), and nothing is stored or sent."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port)) as server:
        admin = await server.token("admin", name="Root")
        async with server.visitor() as (visitor, welcome):
            cid = (await send(visitor, "before the new notice"))["conversation_id"]
        async with server.http(admin) as http:
            r = await http.post("/api/v1/policies", json={"version": "2027-01", "url": "/p"})
            assert r.status_code == 201, r.text
        hello = {"visitor_token": welcome["visitor_token"]}
        async with server.visitor(hello=hello) as (visitor, again):
            assert again["policy"]["accepted"] is False
            answer = await transcript(visitor, conversation_id=cid, email="k@v.example")
            assert answer["type"] == "error" and answer["code"] == "forbidden"
        assert confirmation_rows(server) == [] and outbox_rows(server) == []
        assert inbox.all == []


async def test_without_smtp_there_is_no_email(tmp_path: Path) -> None:
    """With ``smtp_host`` empty (the default) email is off: ``welcome`` says so, a
    ``transcript`` is ``unavailable``, confirmation links are unknown, and offline
    messages are stored as ever."""
    async with running_server(make_settings(tmp_path)) as server:
        assert server.state.hub.mail is None
        async with server.visitor() as (visitor, welcome):
            assert welcome["email_transcripts"] is False
            cid = (await send(visitor, "hi", contact={"email": "k@v.example"}))["conversation_id"]
            answer = await transcript(visitor, conversation_id=cid, email="k@v.example")
            assert answer["type"] == "error" and answer["code"] == "unavailable"
        async with server.http() as http:
            r = await http.get("/mail/confirm", params={"token": "x" * 43})
            assert r.status_code == 404 and 'data-state="invalid"' in r.text


async def test_transcripts_need_public_url_for_unverified_addresses(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    """Without ``public_url`` no confirmation link can be made: an unverified address is
    ``unavailable``, while a verified visitor still gets the transcript."""
    inbox, port = smtp
    async with running_server(mail_settings(tmp_path, port, public_url="")) as server:
        async with server.visitor() as (visitor, welcome):
            assert welcome["email_transcripts"] is False  # the widget offers nothing
            cid = (await send(visitor, "hi"))["conversation_id"]
            answer = await transcript(visitor, conversation_id=cid, email="k@v.example")
            assert answer["type"] == "error" and answer["code"] == "unavailable"
        hello = {"identity": identity_token("v-1", email="v@verified.example")}
        async with server.visitor(hello=hello) as (visitor, welcome):
            assert welcome["email_transcripts"] is True
            cid = (await send(visitor, "hi"))["conversation_id"]
            answer = await transcript(visitor, conversation_id=cid)
            assert answer["status"] == "sent"
        assert (await inbox.next()).rcpt_tos == ["v@verified.example"]


# ---------------------------------------------------------------- failures and privacy


async def test_smtp_down_keeps_the_relay_working_and_the_send_is_retried(tmp_path: Path) -> None:
    """While nothing listens on the SMTP port, the offline message is still acknowledged
    and the chat goes on; the email waits in the outbox with its error and arrives once the
    SMTP server is up."""
    port = free_port()
    settings = mail_settings(tmp_path, port, smtp_timeout=2.0, smtp_max_attempts=100)
    async with running_server(settings) as server:
        admin = await server.token("admin", name="Root")
        await add_agent(server, "agnes@staff.example", "Agnes", "agent")
        async with server.agent(admin) as agent, server.visitor() as (visitor, _):
            ack = await send(visitor, "anyone there?", contact={"email": "k@v.example"})
            cid = ack["conversation_id"]
            await outbox_until(server, lambda o: o.failed >= 1)
            rows = outbox_rows(server)
            assert len(rows) == 1 and rows[0][0] == "offline_notice"
            assert rows[0][2] >= 1 and rows[0][3]  # attempted, and why it failed is kept
            # The relay did not wait for the mail: a reply and a new message still flow.
            await agent.send(type="watch", conversation_id=cid)
            await agent.until("watching")
            await agent.send(
                type="send", client_msg_id=msg_id(), conversation_id=cid, body="We are here"
            )
            reply = await visitor.until("message")
            assert reply["body"] == "We are here"
            await send(visitor, "great", cid)

            async with smtp_server(port) as (inbox, _):
                got = await inbox.next()
            assert got.rcpt_tos == ["agnes@staff.example"]
            assert "anyone there?" in got.text
        await outbox_until(server, lambda o: o.sent == 1)
        assert outbox_rows(server) == []


async def test_a_waiting_email_survives_a_restart(tmp_path: Path) -> None:
    """An email that could not be sent is kept in the outbox table across a restart of the
    server, and is sent by the next process once the SMTP server is reachable."""
    port = free_port()
    settings = mail_settings(tmp_path, port, smtp_timeout=2.0, smtp_max_attempts=100)
    async with running_server(settings) as server:
        await add_agent(server, "agnes@staff.example", "Agnes", "agent")
        async with server.visitor() as (visitor, _):
            await send(visitor, "left before the restart", contact={"email": "k@v.example"})
        await outbox_until(server, lambda o: o.failed >= 1)
        assert len(outbox_rows(server)) == 1

    async with smtp_server(port) as (inbox, _), running_server(settings) as server:
        got = await inbox.next()
        assert got.rcpt_tos == ["agnes@staff.example"]
        assert "left before the restart" in got.text
        await outbox_until(server, lambda o: o.sent == 1)
        assert outbox_rows(server) == []


async def test_a_permanent_refusal_is_not_retried(tmp_path: Path) -> None:
    """A recipient the SMTP server refuses with a 5xx is given up at once (and logged),
    not retried for a day."""

    class Refusing(Inbox):
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            return "550 5.1.1 no such mailbox"

    loop = asyncio.get_running_loop()
    inbox = Refusing(loop)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        settings = mail_settings(tmp_path, port, smtp_max_attempts=100)
        async with running_server(settings) as server:
            await add_agent(server, "nobody@staff.example", "Nobody", "agent")
            async with server.visitor() as (visitor, _):
                await send(visitor, "hello?", contact={"email": "k@v.example"})
            await outbox_until(server, lambda o: o.dropped == 1)
            mail = server.state.hub.mail
            assert mail is not None
            assert mail.outbox.failed == 1 and mail.outbox.sent == 0
            assert outbox_rows(server) == []
    finally:
        await asyncio.to_thread(controller.stop)


async def test_erasure_takes_the_persons_emails_and_confirmations(tmp_path: Path) -> None:
    """Erasing a visitor removes their pending confirmations (with the address they gave)
    and every email about them still waiting in the outbox."""
    port = free_port()  # nothing listens: the emails stay queued
    settings = mail_settings(tmp_path, port, smtp_timeout=2.0, smtp_max_attempts=100)
    async with running_server(settings) as server:
        compliance = await server.token("compliance", name="Cato")
        await add_agent(server, "agnes@staff.example", "Agnes", "agent")
        async with server.visitor() as (visitor, welcome):
            cid = (await send(visitor, "erase me", contact={"email": "k@v.example"}))[
                "conversation_id"
            ]
            answer = await transcript(visitor, conversation_id=cid, email="k@v.example")
            assert answer["status"] == "confirmation_sent"
        async with server.visitor() as (bystander, _):
            kept = (await send(bystander, "keep me", contact={"email": "b@v.example"}))[
                "conversation_id"
            ]
        mail = server.state.hub.mail
        assert mail is not None
        await mail.idle()
        assert sorted(r[0] for r in outbox_rows(server)) == [
            "confirmation",
            "offline_notice",
            "offline_notice",
        ]
        assert len(confirmation_rows(server)) == 1

        async with server.http(compliance) as http:
            r = await http.post(f"/api/v1/subjects/{welcome['visitor_id']}/erasure")
            assert r.status_code == 200, r.text
        assert confirmation_rows(server) == []
        assert [r[0] for r in outbox_rows(server)] == ["offline_notice"]
        left = db_rows(Path(settings.data_dir), "SELECT conversation_id FROM mail_outbox")
        assert left == [(kept,)]
