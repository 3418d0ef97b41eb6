"""The widget's languages: Nynorsk (nn, nn-NO, no-NYN) is its own catalogue, rendered and
visible in every state a visitor meets; plain ``no`` stays Bokmål. (That every catalogue
has the same keys is tests/test_widget_catalogue.py, without a browser.)"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, WebSocketRoute, expect

from tests.browser.support import (
    AXE,
    Agent,
    ChatServer,
    StaticSite,
    agent_online,
    axe_violations,
    conversation_id,
    email_box,
    load,
    message_box,
    own_acked,
    panel,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]
NN_LAUNCHER = "Chat med oss"
NN_ACCEPT = "OK, start chatten"


def widget_lang(page: Page) -> str:
    """The lang the widget put on its own content (inside the shadow root)."""
    return str(page.locator("#chatserver-widget .w").get_attribute("lang"))


def status(bubble: Locator) -> Locator:
    """The delivery state under an own message ("Sendt", "Sett", "Ikkje sendt" …)."""
    return bubble.locator(".t span")


def test_nynorsk_offline_form_and_conversation_are_rendered_in_nynorsk(
    chat: ChatServer, site: StaticSite, new_context: NewContext, artifacts: Path
) -> None:
    """A Nynorsk page (``<html lang="nn">``, a Nynorsk browser) and nobody online: the
    notice, the offline form and its error, the thanks; then an agent types, reads and
    answers. Every string is checked visible, screenshots go to the artifacts."""
    url = site.page("nynorsk.html", chat, lang="nn")
    page = new_context(locale="nn-NO", viewport={"width": 900, "height": 720}).new_page()
    load(page, url)
    # The launcher's accessible name is Nynorsk before anything connects.
    page.get_by_role("button", name=NN_LAUNCHER).click()
    expect(panel(page)).to_be_visible()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    assert widget_lang(page) == "nn"
    check = AXE.exists() or bool(os.environ.get("CI"))
    violations: list[dict[str, object]] = []

    # The privacy notice, above the offline form (nobody is online).
    notice = page.locator("#cs-panel .c p")
    expect(notice).to_be_visible()
    expect(notice).to_have_text(
        "Før du skriv: les korleis vi handsamar chatdata i personvernerklæringa vår."
    )
    expect(page.get_by_role("link", name="personvernerklæringa vår")).to_be_visible()
    expect(page.get_by_role("button", name=NN_ACCEPT)).to_be_visible()
    expect(
        page.get_by_text("Ingen er pålogga akkurat no. Legg att ei melding og e-postadressa di")
    ).to_be_visible()
    expect(page.get_by_placeholder("Skriv ei melding…")).to_be_visible()
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Legg ved ei fil")).to_be_visible()
    expect(page.get_by_role("button", name="Lukk chatten")).to_be_visible()

    message_box(page).fill("Hei! Kor lang tid tek levering til Voss?")
    email_box(page).fill("feil")
    message_box(page).press("Enter")
    expect(email_box(page)).to_have_attribute("aria-invalid", "true")
    expect(
        page.get_by_text("Skriv ei gyldig e-postadresse, til dømes namn@eksempel.no.")
    ).to_be_visible()
    page.screenshot(path=artifacts / "widget-nn-offline.png")
    if check:
        violations += axe_violations(page)

    page.get_by_role("button", name=NN_ACCEPT).click()
    expect(page.get_by_role("button", name=NN_ACCEPT)).to_be_hidden()
    page.get_by_label("E-post").fill("nynorsk@example.com")
    message_box(page).press("Enter")
    expect(
        page.get_by_text("Takk! Vi har fått meldinga di og svarar til nynorsk@example.com.")
    ).to_be_visible()
    mine = own_acked(page).first
    expect(status(mine)).to_be_visible()
    expect(status(mine)).to_have_text("Sendt")
    cid = conversation_id(page)

    with agent_online(chat) as agent:
        agent.watch(cid)
        agent.frame(type="typing", conversation_id=cid, state=True)
        expect(page.get_by_text("Demo Agent skriv…")).to_be_visible()
        agent.frame(type="read", conversation_id=cid, seq=1)
        expect(status(mine)).to_have_text("Sett")
        expect(status(mine)).to_be_visible()
        agent.send(cid, "Hei! Det tek to dagar.")
        expect(page.get_by_text("Hei! Det tek to dagar.")).to_be_visible()
        page.screenshot(path=artifacts / "widget-nn.png")
        if check:
            violations += axe_violations(page)

    for shot in ("widget-nn-offline.png", "widget-nn.png"):
        assert (artifacts / shot).stat().st_size > 1000
    if not check:
        pytest.skip(f"axe-core is not installed ({AXE} missing): npm ci --prefix tests/browser")
    assert violations == [], violations


def test_nynorsk_failed_send_and_retry(
    chat: ChatServer, site: StaticSite, agent: Agent, new_context: NewContext, artifacts: Path
) -> None:
    """Someone is online (a plain chat): the empty state is Nynorsk; a send the server
    refuses for a passing reason shows "Ikkje sendt" and "Prøv igjen", which sends it."""
    page = new_context(locale="nn-NO").new_page()
    hellos: list[dict[str, object]] = []
    sends: list[dict[str, object]] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "hello":
                hellos.append(frame)
            if frame["type"] == "send":
                sends.append(frame)
                if len(sends) == 1:
                    refusal = {
                        "type": "error",
                        "code": "unavailable",
                        "message": "the store is not available",
                        "ref": frame["client_msg_id"],
                    }
                    ws.send(json.dumps(refusal))
                    return
            server.send(message)

        ws.on_message(from_page)
        server.on_message(lambda message: ws.send(message))

    page.route_web_socket(re.compile(r"/ws/visitor$"), route)
    load(page, site.page("nynorsk-retry.html", chat, lang="nn-NO"))
    page.get_by_role("button", name=NN_LAUNCHER).click()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    page.get_by_role("button", name=NN_ACCEPT).click()
    expect(page.get_by_role("button", name=NN_ACCEPT)).to_be_hidden()
    expect(page.get_by_text("Spør oss om kva som helst.")).to_be_visible()
    expect(email_box(page)).to_be_hidden()

    visitor_send(page, "Er det nokon der?")
    failed = page.locator('#cs-panel .m.me[data-state="failed"]')
    retry = failed.get_by_role("button", name="Prøv igjen")
    expect(status(failed)).to_have_text("Ikkje sendtPrøv igjen")  # the button sits in it
    expect(status(failed)).to_be_visible()
    expect(retry).to_be_visible()
    page.screenshot(path=artifacts / "widget-nn-failed.png")
    retry.click()
    expect(own_acked(page)).to_have_count(1)
    expect(failed).to_have_count(0)
    expect(status(own_acked(page).first)).to_have_text("Sendt")
    assert len(sends) == 2 and sends[0]["client_msg_id"] == sends[1]["client_msg_id"]
    # The server hears the page's language (its automatic replies use it).
    assert hellos and all(h.get("locale") == "nn-no" for h in hellos), hellos
    conversation_id(page)


# (data-locale, <html lang>, browser locale) -> the widget's language and its placeholder.
CHOICES = [
    ('data-locale="nn"', "en", "en-US", "nn"),
    ('data-locale="nn-NO"', None, "en-US", "nn"),
    ('data-locale="no-NYN"', "en", "en-US", "nn"),
    ("", "nn", "en-US", "nn"),
    ("", "nn-NO", "nb-NO", "nn"),
    ("", None, "nn-NO", "nn"),
    ('data-locale="no"', "nn", "nn-NO", "nb"),
    ("", "no", "en-US", "nb"),
    ("", "nb-NO", "nn-NO", "nb"),
    ("", None, "nb-NO", "nb"),
    ('data-locale="en"', "nn", "nn-NO", "en"),
    ("", None, "sv-SE", "en"),
]
PLACEHOLDER = {"nn": "Skriv ei melding…", "nb": "Skriv en melding…", "en": "Write a message…"}
LAUNCHER = {"nn": "Chat med oss", "nb": "Chat med oss", "en": "Chat with us"}


@pytest.mark.parametrize(
    ("attrs", "lang", "locale", "expected"),
    CHOICES,
    ids=[f"{a or '-'}|{b or '-'}|{c}->{d}" for a, b, c, d in CHOICES],
)
def test_the_language_comes_from_data_locale_then_page_then_browser(
    attrs: str,
    lang: str | None,
    locale: str,
    expected: str,
    chat: ChatServer,
    site: StaticSite,
    new_context: NewContext,
) -> None:
    name = re.sub(r"\W+", "-", f"lang-{attrs}-{lang}-{locale}") + ".html"
    page = new_context(locale=locale).new_page()
    load(page, site.page(name, chat, attrs=attrs, lang=lang))
    assert widget_lang(page) == expected
    page.get_by_role("button", name=LAUNCHER[expected]).click()
    expect(page.get_by_placeholder(PLACEHOLDER[expected])).to_be_visible()
