"""Verified identity through the widget (P2): a visitor chats anonymously, signs in on the
host page mid-chat, and the conversation is merged into their account; a second browser
signed in as the same person sees that history; signing out forgets it on the device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.support import (
    Agent,
    ChatServer,
    bubble_texts,
    conversation_id,
    load,
    open_chat,
    own_acked,
    panel,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


def _record_welcomes(page: Page) -> None:
    """Keep every welcome frame the widget receives in ``window.__welcomes``."""
    page.add_init_script(
        """(() => {
            window.__welcomes = [];
            const Real = window.WebSocket;
            window.WebSocket = function (url, protocols) {
                const ws = new Real(url, protocols);
                ws.addEventListener('message', ev => {
                    try {
                        const f = JSON.parse(ev.data);
                        if (f.type === 'welcome') window.__welcomes.push(f);
                    } catch (e) {}
                });
                return ws;
            };
            window.WebSocket.prototype = Real.prototype;
            Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
        })()"""
    )


def _verified_welcome(page: Page) -> dict[str, Any]:
    page.wait_for_function("() => window.__welcomes.some(w => w.account)")
    return page.evaluate("() => window.__welcomes.filter(w => w.account).pop()")  # type: ignore[no-any-return]


def _sign_in(page: Page) -> None:
    page.get_by_role("button", name="Sign in as Kari Nordmann (demo BankID)").click()
    expect(page.locator("#demo-who")).to_have_text("Signed in as Kari Nordmann")


def test_signing_in_mid_chat_merges_the_conversation_into_the_account(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    page = new_context().new_page()
    _record_welcomes(page)
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    visitor_send(page, "asked before signing in")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)

    _sign_in(page)
    # The widget says hello again with the identity; the server links and merges.
    welcome = _verified_welcome(page)
    assert welcome["account"]["name"] == "Kari Nordmann"
    assert welcome["account"]["verified_by"] == "bankid-demo"
    assert welcome["merged"] == 1
    assert [c["id"] for c in welcome["conversations"]] == [cid]
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    visitor_send(page, "and after")
    expect(own_acked(page)).to_have_count(2)

    # The compliance officer finds both messages under the account.
    found = chat.api("GET", "/subjects?account_id=demo-kari", token=chat.compliance)["items"]
    [subject] = found
    export = chat.api("GET", f"/subjects/{subject['id']}/export", token=chat.compliance)
    [thread] = [c for c in export["conversations"] if c["id"] == cid]
    said = [m["body"] for m in thread["messages"] if m["kind"] != "event"]
    assert said == ["asked before signing in", "and after"]
    # The export also tells when the chat became verified (an event line).
    assert any((m.get("event") or {}).get("type") == "verified" for m in thread["messages"])

    # Another browser, signed in as the same person, sees that history.
    other = new_context().new_page()
    _record_welcomes(other)
    load(other, chat.url + "/demo")
    _sign_in(other)
    open_chat(other, consent=False)
    assert _verified_welcome(other)["conversations"][0]["id"] == cid
    expect(panel(other).locator(".m")).to_have_count(2)
    assert bubble_texts(other)[-2:] == ["asked before signing in", "and after"]

    # Signing out forgets the device's visitor: the history is no longer shown there.
    other.get_by_role("button", name="Sign out").click()
    expect(panel(other).locator(".m")).to_have_count(0)
