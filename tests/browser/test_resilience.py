"""Never lose a message: the chat server dies mid-conversation, the visitor keeps typing and
even moves to another page meanwhile, and everything arrives once, in order, after the
server is back on the same port and data; then a graceful restart (a deploy) on top."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import (
    ChatServer,
    StaticSite,
    agent_online,
    bubble_texts,
    conversation_id,
    load,
    open_chat,
    own_acked,
    panel,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


@pytest.fixture
def own_chat(tmp_path: Path, site: StaticSite) -> Iterator[ChatServer]:
    """A chat server of this test's own, to kill and start again."""
    (tmp_path / "data").mkdir()
    server = ChatServer(data_dir=tmp_path / "data", logs=tmp_path, allowed_origins=site.origin)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_server_restart_mid_conversation_loses_and_doubles_nothing(
    own_chat: ChatServer, site: StaticSite, new_context: NewContext
) -> None:
    chat = own_chat
    shop = site.page("shop.html", chat, body='<p><a href="checkout.html">Checkout</a></p>')
    checkout = site.page("checkout.html", chat)
    page = new_context().new_page()
    queued = page.locator('#cs-panel .m.me[data-state="queued"]')

    with agent_online(chat):
        load(page, shop)
        open_chat(page, consent=True)
        visitor_send(page, "before 1")
        expect(own_acked(page)).to_have_count(1)
        cid = conversation_id(page)
        chat.reply(cid, "reply 1")
        expect(page.get_by_text("reply 1")).to_be_visible()

    # The server process dies: no goodbye, no close frame.
    chat.stop(signal.SIGKILL)
    expect(panel(page)).to_have_attribute("data-conn", "offline")
    expect(page.get_by_role("status")).to_contain_text("Offline")
    visitor_send(page, "while down 1")
    visitor_send(page, "while down 2")
    expect(queued).to_have_count(2)

    # The visitor moves on to another page of the shop meanwhile (the widget script comes
    # from the browser's cache; the unsent messages from the tab's sessionStorage).
    page.get_by_role("link", name="Checkout").click()
    page.wait_for_url(checkout)
    page.wait_for_function("() => !!window.ChatWidget")
    expect(panel(page)).to_be_visible()
    expect(queued).to_have_count(2)
    visitor_send(page, "while down 3")
    expect(queued).to_have_count(3)

    chat.start()  # same port, same data directory
    chat.reply(cid, "reply 2")  # live or replayed, depending on who is first: once either way
    expect(own_acked(page)).to_have_count(4)
    expect(page.get_by_text("reply 2")).to_be_visible()
    expect(panel(page)).to_have_attribute("data-conn", "ready")

    stored = [m["body"] for m in chat.messages(cid)]
    assert sorted(stored) == sorted(
        ["before 1", "reply 1", "while down 1", "while down 2", "while down 3", "reply 2"]
    )
    mine = [body for body in stored if body.startswith(("before", "while"))]
    assert mine == ["before 1", "while down 1", "while down 2", "while down 3"]
    assert bubble_texts(page) == stored

    # Then a deploy: a graceful stop closes the socket with 1012; the widget reconnects,
    # resumes after the last seq it has and shows nothing twice.
    chat.stop(signal.SIGINT)
    expect(panel(page)).to_have_attribute("data-conn", "offline")
    chat.start()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    visitor_send(page, "after the deploy")
    expect(own_acked(page)).to_have_count(5)
    stored.append("after the deploy")
    assert [m["body"] for m in chat.messages(cid)] == stored
    assert bubble_texts(page) == stored

    # And after a reload, the same, once.
    page.reload()
    page.wait_for_function("() => !!window.ChatWidget")
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    expect(own_acked(page)).to_have_count(5)
    assert bubble_texts(page) == stored
    assert page.evaluate("() => sessionStorage.getItem('chatserver.outbox')") is None
