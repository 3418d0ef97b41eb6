"""The widget's privacy promises, checked through a real browser: P11 (nothing before the
visitor opens the chat), P9 (the notice before the first message, again after a new version),
P12 (drafts and form input survive navigation, sent only on submit), P13 (no analytics events
under Global Privacy Control or Do Not Track)."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, WebSocket, expect

from tests.browser.support import (
    ChatServer,
    accept_notice,
    bubble_texts,
    conversation_id,
    email_box,
    launcher,
    load,
    message_box,
    open_chat,
    own_acked,
    panel,
    record,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


def _frames_sent(page: Page) -> list[str]:
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    return frames


def test_page_load_opens_nothing_until_the_launcher_is_clicked(
    chat: ChatServer, new_context: NewContext
) -> None:
    context = new_context()
    page = context.new_page()
    sockets: list[WebSocket] = []
    requests: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.on("request", lambda r: requests.append(r.url))

    load(page, chat.url + "/demo")
    page.wait_for_load_state("networkidle")
    expect(launcher(page)).to_be_visible()

    # P11: loading the page made no socket, no storage, no cookie, no other request.
    assert sockets == []
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
    assert context.cookies() == []
    paths = {r.removeprefix(chat.url).split("?")[0] for r in requests}
    assert paths <= {"/demo", "/widget.js", "/favicon.ico", "/favicon.svg"}, paths
    # Nor does hovering, focusing, scrolling or the host page identifying its user: only
    # opening does.
    launcher(page).hover()
    launcher(page).focus()
    page.mouse.wheel(0, 200)
    page.evaluate("() => ChatWidget.identify('eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl')")
    assert sockets == []
    frames = _frames_sent(page)
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]

    with page.expect_websocket() as opened:
        launcher(page).click()
    assert opened.value.url == chat.ws_url + "/ws/visitor"
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    # The privacy notice comes before the first message (P9); the socket is one.
    notice = page.get_by_role("link", name="privacy notice")
    expect(notice).to_be_visible()
    assert len(sockets) == 1
    # The identity token goes with the hello, only now.
    assert json.loads(frames[0])["identity"] == "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"
    # Only now, after the visitor opened the chat, is anything kept: the visitor token, and
    # for this tab the chat's state (open, read position).
    assert page.evaluate("() => Object.keys(localStorage)") == ["chatserver.visitor"]
    assert page.evaluate("() => Object.keys(sessionStorage)") == ["chatserver.state"]
    # The notice links to the policy the welcome named, on the chat server's origin.
    href = notice.get_attribute("href") or ""
    assert href.startswith(chat.url + "/"), href
    assert context.request.get(href).ok


SIGNALS = {
    "none": "",
    "gpc": "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});",
    "dnt": "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'});",
}


def test_analytics_hook_is_silent_under_gpc_and_dnt(
    chat: ChatServer, new_context: NewContext
) -> None:
    """The widget has no analytics; its hook reports only when neither signal is set (P13)."""
    seen: dict[str, list[dict[str, str]]] = {}
    for name, init in SIGNALS.items():
        context = new_context()
        if init:
            context.add_init_script(init)
        page = context.new_page()
        load(page, chat.url + "/demo")
        page.evaluate("() => ChatWidget.open()")
        expect(panel(page)).to_have_attribute("data-conn", "ready")
        accept_notice(page, consent=True)
        if name != "dnt":  # (what holds for one signal holds for the other: one flag)
            # A message through the offline form (nobody is online): the "send" event.
            email_box(page).fill("visitor@example.com")
            visitor_send(page, f"hello with signal {name}")
            expect(own_acked(page)).to_have_count(1)
        page.evaluate("() => ChatWidget.close()")
        expect(panel(page)).to_be_hidden()
        seen[name] = page.evaluate("() => window.__analytics")

    assert seen["none"] == [{"type": "open"}, {"type": "send"}, {"type": "close"}]
    assert seen["gpc"] == [], "analytics events despite Global Privacy Control"
    assert seen["dnt"] == [], "analytics events despite Do Not Track"
    # The hook exists for operators to wire their own analytics; the widget sends nothing.


def test_draft_and_offline_form_survive_navigation_and_are_sent_only_on_submit(
    chat: ChatServer, new_context: NewContext
) -> None:
    """P12: nobody is online, so the panel is the offline form (email and message). What the
    visitor types stays in this tab across page loads and is sent only when they submit."""
    page = new_context().new_page()
    frames = _frames_sent(page)
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    expect(email_box(page)).to_be_visible()
    email_box(page).fill("kari@example.no")
    message_box(page).fill("My order 4711\nhas not arrived")

    for _ in range(2):  # a reload, then a navigation to the page again
        page.reload() if _ == 0 else page.goto(chat.url + "/demo")
        page.wait_for_function("() => !!window.ChatWidget")
        # The panel was open, so it is open again, with everything typed still there.
        expect(panel(page)).to_be_visible()
        expect(panel(page)).to_have_attribute("data-conn", "ready")
        expect(email_box(page)).to_have_value("kari@example.no")
        expect(message_box(page)).to_have_value("My order 4711\nhas not arrived")

    stored = page.evaluate("() => JSON.stringify(sessionStorage)")
    assert "kari@example.no" in stored and "4711" in stored
    assert "kari@example.no" not in page.evaluate("() => JSON.stringify(localStorage)")
    # Nothing typed went over the socket before the visitor pressed Enter.
    assert frames, "the widget should have said hello"
    assert not [f for f in frames if "4711" in f or "kari@" in f]

    record(page)
    message_box(page).press("Enter")
    expect(own_acked(page)).to_have_count(1)
    sends = [json.loads(f) for f in frames if '"send"' in f]
    assert [(s["body"], s.get("contact")) for s in sends] == [
        ("My order 4711\nhas not arrived", {"email": "kari@example.no"})
    ]
    # Once sent, the form's input is gone from the tab's storage.
    stored = page.evaluate("() => JSON.stringify(sessionStorage)")
    assert "kari@example.no" not in stored and "4711" not in stored


def test_new_privacy_notice_version_is_shown_again_once(
    chat: ChatServer, new_context: NewContext
) -> None:
    """P9: accepted once; after a new version is published it is shown again, the visitor's
    message waits for the acceptance, and after that it is not shown again."""
    page = new_context().new_page()
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    email_box(page).fill("ola@example.no")
    visitor_send(page, "before the new notice")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)

    page.reload()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    accept_notice(page, consent=False)  # the same version: no notice

    chat.publish_policy(f"2026-{cid[-6:]}")  # a version no one has accepted
    page.reload()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    accept = page.get_by_role("button", name="OK, start chat")
    expect(accept).to_be_visible()
    # Enter does not send past the notice: it points at the button.
    visitor_send(page, "after the new notice")
    expect(accept).to_be_focused()
    assert [m["body"] for m in chat.messages(cid)] == ["before the new notice"]
    page.keyboard.press("Enter")
    expect(accept).to_be_hidden()
    message_box(page).press("Enter")
    expect(own_acked(page)).to_have_count(2)
    assert [m["body"] for m in chat.messages(cid)] == [
        "before the new notice",
        "after the new notice",
    ]

    page.reload()  # accepted: the server says so in the next welcome, nothing asks again
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    accept_notice(page, consent=False)
    assert bubble_texts(page) == ["before the new notice", "after the new notice"]

    # logout() forgets the visitor on this device: socket closed, nothing kept; the next
    # page load is like the very first one.
    page.evaluate("() => ChatWidget.logout()")
    expect(panel(page)).to_be_hidden()
    expect(panel(page)).to_have_attribute("data-conn", "closed")
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.reload()
    page.wait_for_load_state("networkidle")
    expect(launcher(page)).to_be_visible()
    assert sockets == []
