"""The widget's "Email me this conversation", in real Chromium against a real server child
process and a real SMTP server (aiosmtpd): an anonymous visitor on a Norwegian page types an
address, gets a confirmation link, opens it in the browser and presses the button, and only
then is the transcript sent; a signed-in visitor gets it at once, without typing anything."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import (
    AXE,
    ChatServer,
    Inbox,
    StaticSite,
    agent_online,
    axe_violations,
    conversation_id,
    email_box,
    load,
    mail_settings,
    open_chat,
    own_acked,
    smtp_sink,
    start_with,
    text_of,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as sink:
        yield sink


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
    start_with(server, mail_settings(server, smtp[1]))
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
