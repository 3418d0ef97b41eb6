"""Staff in the console: an admin invites a colleague by email, who sets their own
password from the link (once, checked for strength) and is signed in; refusals read as
sentences beside the field at fault; each agent picks their language and notifications,
and the console follows at once and after a reload. Real SMTP (aiosmtpd), real Chromium.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import (
    ChatServer,
    Inbox,
    artifacts_dir,
    mail_settings,
    smtp_sink,
    start_with,
    text_of,
)
from tests.browser.test_console import new_agent, sign_in

NewContext = Callable[..., BrowserContext]
DESKTOP = {"width": 1280, "height": 860}
LINK = re.compile(r"https?://\S+/console#/invite/[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Inbox, int]
) -> Iterator[ChatServer]:
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("staff-data"),
        logs=tmp_path_factory.mktemp("staff-logs"),
    )
    start_with(chat, {**mail_settings(chat, mailbox[1]), "AUTO_ASSIGN": "false"})
    try:
        yield chat
    finally:
        chat.stop()


@pytest.fixture
def shots() -> Path:
    return artifacts_dir("console-staff")


def test_an_invited_colleague_sets_a_strong_password_from_a_link_that_works_once(
    server: ChatServer, mailbox: tuple[Inbox, int], new_context: NewContext, shots: Path
) -> None:
    inbox, _ = mailbox
    email = f"nina-{uuid.uuid4().hex[:6]}@example.com"
    admin = new_context(viewport=DESKTOP).new_page()
    sign_in(admin, server, server.email, server.password, "#/admin/invitations")
    form = admin.locator("#add-invitation")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Name").fill("Nina Nilsen")
    form.get_by_label("Role").select_option("agent")
    form.get_by_role("button", name="Send invitation").click()
    expect(
        admin.get_by_role("status").filter(has_text=f"Invitation sent to {email}.")
    ).to_be_visible()
    expect(admin.locator("#page-body table")).to_contain_text(email)

    # Inviting the same address again is refused beside the field, as a sentence.
    form = admin.locator("#add-invitation")
    form.get_by_label("Email").fill(server.email)
    form.get_by_label("Name").fill("Someone")
    form.get_by_role("button", name="Send invitation").click()
    expect(form.locator(".form-error")).to_have_text("Email is already in use.")
    expect(form.get_by_label("Email")).to_have_attribute("aria-invalid", "true")

    rcpt, message = inbox.next()
    assert rcpt == [email]
    found = LINK.search(text_of(message))
    assert found, text_of(message)
    link = found.group(0)

    page = new_context(viewport=DESKTOP).new_page()
    page.goto(link)
    expect(page.locator("#invite-intro")).to_contain_text(email)
    expect(page.get_by_label("Your name")).to_have_value("Nina Nilsen")
    page.get_by_label("Choose a password").fill("password123")
    page.get_by_role("button", name="Set password and sign in").click()
    error = page.locator("#invite-error")
    expect(error).to_contain_text("This password is too easy to guess.")
    assert not re.search(r"\$\.|\^\[|\\d|regex", error.text_content() or "")
    page.screenshot(path=str(shots / "invite-weak.png"))
    page.get_by_label("Choose a password").fill("Otter lighthouse marzipan 2047")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.locator("body")).to_have_attribute("data-signed-in", "true")
    expect(page.locator("#me")).to_contain_text("Nina Nilsen")
    expect(page.locator("body")).to_have_attribute("data-socket", "live")

    # The link worked once.
    again = new_context(viewport=DESKTOP).new_page()
    again.goto(link)
    expect(again.locator("#invite-error")).to_contain_text("no longer valid")
    expect(again.get_by_role("button", name="Set password and sign in")).to_be_disabled()
    again.screenshot(path=str(shots / "invite-used.png"))


def test_a_refused_field_is_named_in_a_sentence_never_a_pattern(
    server: ChatServer, new_context: NewContext, shots: Path
) -> None:
    page = new_context(viewport=DESKTOP).new_page()
    sign_in(page, server, server.email, server.password, "#/admin/canned")
    form = page.locator("#add-canned")
    form.get_by_label("Shortcut", exact=False).fill("bad shortcut!")
    form.get_by_label("Body").fill("Hello there")
    form.get_by_role("button", name="Add canned response").click()
    error = form.locator(".form-error")
    expect(error).to_contain_text("has characters that are not allowed.")
    text = error.text_content() or ""
    assert "$." not in text and "^" not in text and "[a-z" not in text, text
    beside = form.locator(".field-error")
    expect(beside).to_be_visible()
    expect(form.locator('[aria-invalid="true"]')).to_have_count(1)
    page.screenshot(path=str(shots / "field-error.png"))


def test_each_agent_chooses_language_and_notifications_and_the_console_follows(
    server: ChatServer, new_context: NewContext, shots: Path
) -> None:
    agent = new_agent(server)
    page = new_context(viewport=DESKTOP, locale="en-GB").new_page()
    sign_in(page, server, agent["email"], agent["password"], "#/account")
    expect(page.locator("#nav-inbox")).to_have_text("Inbox")
    page.get_by_label("Language").select_option("nn")
    page.get_by_label("Play a sound", exact=False).uncheck()
    page.get_by_role("button", name="Save preferences").click()
    # At once, in Nynorsk, and the document says so.
    expect(page.locator("html")).to_have_attribute("lang", "nn")
    expect(page.locator("#nav-inbox")).not_to_have_text("Inbox")
    nn_inbox = page.locator("#nav-inbox").text_content()
    page.screenshot(path=str(shots / "preferences-nn.png"))
    # Kept by the server: after a reload, on another device too.
    other = new_context(viewport=DESKTOP, locale="en-GB").new_page()
    other.goto(server.url + "/console")
    other.locator("#email").fill(agent["email"])
    other.locator("#password").fill(agent["password"])
    other.locator("#login-form button").click()
    expect(other.locator("#nav-inbox")).to_have_text(nn_inbox or "")
    other.goto(server.url + "/console#/account")
    expect(other.locator("#pref-language")).to_have_value("nn")
    expect(other.locator("#pref-sound")).not_to_be_checked()
