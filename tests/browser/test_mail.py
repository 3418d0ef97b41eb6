"""The widget's "Email me this conversation", in real Chromium against a real server child
process and a real SMTP server (aiosmtpd): an anonymous visitor on a Norwegian page types an
address, gets a confirmation link, opens it in the browser and presses the button, and only
then is the transcript sent; a signed-in visitor gets it at once, without typing anything."""

from __future__ import annotations

import email
import email.policy
import queue
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import (
    AXE,
    TIMEOUT,
    ChatServer,
    StaticSite,
    agent_online,
    axe_violations,
    conversation_id,
    email_box,
    free_port,
    load,
    open_chat,
    own_acked,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


class Inbox:
    """What the SMTP server received (its own thread), read with a bounded wait."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[list[str], EmailMessage]] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.put((list(envelope.rcpt_tos), message))
        return "250 OK"

    def next(self) -> tuple[list[str], EmailMessage]:
        return self.received.get(timeout=TIMEOUT)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mail_chat(
    tmp_path_factory: pytest.TempPathFactory, site: StaticSite, smtp: tuple[Inbox, int]
) -> Iterator[ChatServer]:
    """A demo server of its own, with email on: links point at the server itself."""
    server = ChatServer(
        data_dir=tmp_path_factory.mktemp("mail-data"),
        logs=tmp_path_factory.mktemp("mail-logs"),
        allowed_origins=site.origin,
    )
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp[1]),
            "SMTP_SECURITY": "none",
            "MAIL_FROM": "Support <support@shop.example>",
            "PUBLIC_URL": server.url,
        }.items():
            env.setenv("CHATSERVER_" + name, value)
        server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_anonymous_visitor_confirms_the_address_in_the_browser(
    mail_chat: ChatServer, site: StaticSite, smtp: tuple[Inbox, int], new_context: NewContext
) -> None:
    """The address is checked in the widget, a link goes to it, opening the link sends
    nothing, pressing the page's button sends the transcript (Norwegian, no notes), and
    the link then says it was used. The open form passes axe-core."""
    inbox, _ = smtp
    url = site.page("mail-nb.html", mail_chat, lang="nb")
    page = new_context(locale="nb-NO").new_page()
    with agent_online(mail_chat) as agent:
        load(page, url)
        open_chat(page, consent=True, accept="OK, start chatten", name="Chat med oss")
        mail_me = page.get_by_role("button", name="Send meg samtalen på e-post")
        expect(mail_me).to_be_hidden()  # nothing to send yet
        visitor_send(page, "Hvor er pakken min?")
        expect(own_acked(page)).to_have_count(1)
        cid = conversation_id(page)
        agent.watch(cid)
        agent.send(cid, "Den er sendt i dag.")
        agent.send(cid, "INTERNT: kunden er sur", kind="note")
        expect(page.get_by_text("Den er sendt i dag.")).to_be_visible()

        expect(mail_me).to_be_visible()
        mail_me.click()
        expect(mail_me).to_have_attribute("aria-expanded", "true")
        address = page.locator("#cs-tm-email")
        expect(address).to_be_visible()
        page.wait_for_function(
            "() => document.activeElement.shadowRoot.activeElement.id === 'cs-tm-email'"
        )
        address.fill("ikke en adresse")
        page.locator("#cs-tm-form").get_by_role("button", name="Send").click()
        expect(page.get_by_text("Skriv en gyldig e-postadresse")).to_be_visible()
        expect(address).to_have_attribute("aria-invalid", "true")
        if AXE.exists():
            assert axe_violations(page) == []

        address.fill("kari@besokende.example")
        address.press("Enter")
        expect(
            page.get_by_text("Sjekk e-posten: åpne lenken vi sendte til kari@besokende.example")
        ).to_be_visible()

    rcpt, link_mail = inbox.next()
    assert rcpt == ["kari@besokende.example"]
    assert link_mail["Subject"] == "Bekreft e-postadressen din for å få chatten"
    assert inbox.received.empty()  # the link only: no transcript before confirming
    match = re.search(re.escape(mail_chat.url) + r"/mail/confirm\?token=[\w-]+", text_of(link_mail))
    assert match is not None

    confirm = new_context(locale="nb-NO").new_page()
    confirm.goto(match.group(0))
    expect(confirm.get_by_role("heading", name="Få chatten på e-post")).to_be_visible()
    assert inbox.received.empty()  # opening the link sent nothing
    confirm.get_by_role("button", name="Send meg chatten").click()
    expect(confirm.get_by_role("heading", name="Chatten er på vei")).to_be_visible()

    rcpt, transcript = inbox.next()
    assert rcpt == ["kari@besokende.example"]
    text = text_of(transcript)
    assert transcript["Subject"].startswith("Chatten din ")
    assert "Hvor er pakken min?" in text and "Den er sendt i dag." in text
    assert "INTERNT" not in text and cid  # the note never leaves the agents

    confirm.goto(match.group(0))
    expect(confirm.get_by_role("heading", name="Lenken er allerede brukt")).to_be_visible()


def test_a_signed_in_visitor_gets_the_transcript_at_once(
    mail_chat: ChatServer, smtp: tuple[Inbox, int], new_context: NewContext
) -> None:
    """A verified visitor sees no address field: the account's address gets the transcript
    straight away, and the widget says it is on its way."""
    inbox, _ = smtp
    page = new_context().new_page()
    with agent_online(mail_chat):
        load(page, mail_chat.url + "/demo")
        page.get_by_role("button", name="Sign in as Kari Nordmann (demo BankID)").click()
        open_chat(page, consent=True)
        visitor_send(page, "Please email me this chat")
        expect(own_acked(page)).to_have_count(1)
        page.get_by_role("button", name="Email me this conversation").click()
        # Verified: the account's address is used, so there is nothing to type.
        expect(page.locator("#cs-tm-email")).to_be_hidden()
        page.locator("#cs-tm-form").get_by_role("button", name="Send").click()
        expect(page.get_by_text("The conversation is on its way to your email.")).to_be_visible()
    rcpt, transcript = inbox.next()
    assert rcpt == ["kari.nordmann@example.com"]
    assert "Please email me this chat" in text_of(transcript)


def test_an_offline_message_emails_the_agent_a_link_that_opens_it_in_the_console(
    mail_chat: ChatServer, smtp: tuple[Inbox, int], new_context: NewContext
) -> None:
    """Nobody online: the message left with the widget's offline form reaches the demo agent
    by email, and the email's link, opened in the console, signs in and shows that very
    conversation with the visitor's address."""
    inbox, _ = smtp
    page = new_context().new_page()
    load(page, mail_chat.url + "/demo")
    open_chat(page, consent=True)
    expect(email_box(page)).to_be_visible()
    email_box(page).fill("visitor@example.org")
    visitor_send(page, "Call me back <b>soon</b>")
    expect(page.get_by_text("Thanks! We got your message")).to_be_visible()
    cid = conversation_id(page)

    rcpt, notice = inbox.next()
    assert rcpt == [mail_chat.email]
    assert notice["Reply-To"] == "visitor@example.org"
    link = f"{mail_chat.url}/console#/c/{cid}"
    assert link in text_of(notice)

    console = new_context().new_page()
    console.goto(link)
    console.get_by_label("Email").fill(mail_chat.email)
    console.get_by_label("Password").fill(mail_chat.password)
    console.get_by_role("button", name="Sign in").click()
    expect(console.locator("#thread")).to_be_visible()
    expect(console.locator("#messages")).to_contain_text("Call me back <b>soon</b>")
    expect(console.locator("#contact-email")).to_contain_text("visitor@example.org")
