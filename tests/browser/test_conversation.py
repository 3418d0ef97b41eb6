"""A visitor and an agent talk through the widget: replies, typing both ways, read state,
unread badge, timestamps in the visitor's zone, history after a reload, the offline form,
hostile text from an agent, and the agent console."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from playwright.sync_api import BrowserContext, WebSocketRoute, expect

from tests.browser.support import (
    Agent,
    ChatServer,
    agent_online,
    bubble_texts,
    bubbles,
    conversation_id,
    email_box,
    launcher,
    load,
    message_box,
    open_chat,
    own_acked,
    panel,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


def test_visitor_and_agent_talk_with_typing_read_state_and_unread_badge(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    page = new_context().new_page()
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    expect(email_box(page)).to_be_hidden()  # someone is online: a plain chat
    visitor_send(page, "Hello, where is my order? https://shop.example/orders/7")
    expect(own_acked(page)).to_have_count(1)
    link = page.locator("#cs-panel .m.me a")
    expect(link).to_have_attribute("href", "https://shop.example/orders/7")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    cid = conversation_id(page)
    mine = own_acked(page).first
    expect(mine.locator(".t")).to_contain_text("Sent")

    # The new conversation reached the agent's inbox live.
    agent.until(lambda f: f["type"] == "conversation" and f["id"] == cid)
    agent.watch(cid)

    # Typing, both ways.
    agent.frame(type="typing", conversation_id=cid, state=True)
    expect(page.get_by_text("Demo Agent is typing")).to_be_visible()
    message_box(page).press_sequentially("still there?")
    typing = agent.until(lambda f: f["type"] == "typing")
    assert (typing["state"], typing["author"]["role"]) == (True, "visitor")
    message_box(page).fill("")

    # Read state: the agent read up to the visitor's message.
    agent.frame(type="read", conversation_id=cid, seq=1)
    expect(mine.locator(".t")).to_contain_text("Seen")
    expect(mine).to_have_attribute("data-read", "true")

    agent.send(cid, "Hi! <b>Let me check.</b>")
    agent.send(cid, "INTERNAL: customer asked twice", kind="note")
    agent.send(cid, "It ships tomorrow.")
    # Message text is text, never markup; the agent's name is on each reply.
    expect(page.get_by_text("Hi! <b>Let me check.</b>")).to_be_visible()
    expect(page.get_by_text("It ships tomorrow.")).to_be_visible()
    expect(page.get_by_text("Demo Agent is typing")).to_be_hidden()  # a reply ends it
    expect(bubbles(page).filter(has_text="It ships tomorrow.").locator(".n")).to_have_text(
        "Demo Agent"
    )
    # The note's seq lies between the two replies: had it reached the widget,
    # it would be there by now.
    expect(page.get_by_text("INTERNAL")).to_have_count(0)
    expect(bubbles(page)).to_have_count(3)

    # The visitor's next message reaches the agent; the widget tells it what was read.
    visitor_send(page, "Thanks!")
    got = agent.until(lambda f: f["type"] == "message" and f["body"] == "Thanks!")
    assert (got["author"]["role"], got["conversation_id"]) == ("visitor", cid)

    # Closed panel: a reply shows as an unread badge on the launcher, until opened.
    page.keyboard.press("Escape")
    expect(panel(page)).to_be_hidden()
    reply = agent.send(cid, "Anything else?")
    expect(page.locator(".b")).to_have_text("1")
    expect(page.get_by_role("button", name="Chat with us (1 unread)")).to_be_visible()
    launcher(page).click()
    expect(page.locator(".b")).to_be_hidden()
    read = agent.until(lambda f: f["type"] == "read" and f["seq"] == reply["seq"])
    assert read["author"]["role"] == "visitor"

    stored = chat.messages(cid)
    assert [m["kind"] for m in stored] == ["text", "text", "note", "text", "text", "text"]


def test_timestamps_are_in_the_visitors_locale_and_time_zone(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    # UTC+14 all year: far from the server's UTC, so a wrong zone cannot pass by luck.
    zone = timezone(timedelta(hours=14))
    page = new_context(locale="en-US", timezone_id="Pacific/Kiritimati").new_page()
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    visitor_send(page, "What time is it?")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)
    ts = chat.reply(cid, "Time to chat.")["ts"]
    reply = bubbles(page).filter(has_text="Time to chat.")
    stamp = reply.locator("time")
    expect(stamp).to_have_attribute("datetime", ts)
    local = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone)
    # en-US: 12-hour clock with AM/PM.
    expect(stamp).to_contain_text(local.strftime("%I:%M %p"))

    # The same visitor in Norwegian, on a clock in India (UTC+5:30): a 24-hour clock.
    page2 = new_context(locale="nb-NO", timezone_id="Asia/Kolkata").new_page()
    page2.goto(chat.url + "/demo")
    page2.evaluate(
        "token => localStorage.setItem('chatserver.visitor', token)",
        page.evaluate("() => localStorage.getItem('chatserver.visitor')"),
    )
    load(page2, chat.url + "/demo")
    open_chat(page2, consent=False)
    india = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(
        timezone(timedelta(hours=5, minutes=30))
    )
    stamp2 = bubbles(page2).filter(has_text="Time to chat.").locator("time")
    expect(stamp2).to_contain_text(re.compile(india.strftime("%H[:.]%M")))


def test_reload_restores_history_without_duplicates(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    page = new_context().new_page()
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    visitor_send(page, "first question")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)
    chat.reply(cid, "first answer")
    chat.reply(cid, "private remark", kind="note")
    expect(page.get_by_text("first answer")).to_be_visible()
    visitor_send(page, "second question")
    expect(own_acked(page)).to_have_count(2)
    message_box(page).fill("a draft in progress")
    expected = ["first question", "first answer", "second question"]

    for _ in range(2):  # a reload, then another: nothing doubles up
        page.reload()
        page.wait_for_function("() => !!window.ChatWidget")
        # The panel was open: it is open again, connected, with the history.
        expect(panel(page)).to_have_attribute("data-conn", "ready")
        expect(bubbles(page)).to_have_count(len(expected))
        assert bubble_texts(page) == expected
        # P12: the unsent draft survived the navigation (sessionStorage).
        expect(message_box(page)).to_have_value("a draft in progress")

    # Closed, then reloaded: the launcher is back, closed; opening shows the same history.
    page.get_by_role("button", name="Close chat").click()
    page.reload()
    page.wait_for_function("() => !!window.ChatWidget")
    expect(panel(page)).to_be_hidden()
    open_chat(page, consent=False)
    expect(bubbles(page)).to_have_count(len(expected))
    assert bubble_texts(page) == expected


def test_offline_form_leaves_a_pending_conversation_with_the_email(
    chat: ChatServer, new_context: NewContext
) -> None:
    page = new_context().new_page()
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    # Nobody online: the panel offers to leave a message with an email address.
    expect(email_box(page)).to_be_visible()
    expect(page.get_by_text("No one is online right now.")).to_be_visible()
    # Someone comes online: a plain chat; gone again: the form is back.
    with agent_online(chat):
        expect(email_box(page)).to_be_hidden()
    expect(email_box(page)).to_be_visible()

    message_box(page).fill("Please call me back about invoice 99.")
    email_box(page).fill("not an email")
    message_box(page).press("Enter")
    error = page.get_by_text("Enter a valid email address")
    expect(error).to_be_visible()
    expect(email_box(page)).to_have_attribute("aria-invalid", "true")
    expect(email_box(page)).to_be_focused()
    expect(bubbles(page)).to_have_count(0)

    page.get_by_label("Email").fill("  per@example.com ")
    message_box(page).press("Enter")
    expect(own_acked(page)).to_have_count(1)
    expect(
        page.get_by_text("Thanks! We got your message and will answer at per@example.com.")
    ).to_be_visible()
    expect(email_box(page)).to_be_hidden()  # the conversation goes on as usual
    cid = conversation_id(page)
    conversation = chat.api("GET", f"/conversations/{cid}")
    assert conversation["status"] == "pending"
    assert conversation["contact_email"] == "per@example.com"
    assert [m["body"] for m in chat.messages(cid)] == ["Please call me back about invoice 99."]

    visitor_send(page, "One more detail: it is urgent.")
    expect(own_acked(page)).to_have_count(2)
    chat.reply(cid, "We will call you today.")
    expect(page.get_by_text("We will call you today.")).to_be_visible()
    assert bubble_texts(page) == [
        "Please call me back about invoice 99.",
        "One more detail: it is urgent.",
        "We will call you today.",
    ]


def test_failed_send_is_shown_and_retried_with_the_same_client_msg_id(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    """The real server behind a pass-through socket route that answers the first `send`
    itself with `unavailable`, as a server whose store failed would."""
    page = new_context().new_page()
    sends: list[dict[str, object]] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame["type"] == "send":
                sends.append(frame)
                if len(sends) == 1:
                    ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "code": "unavailable",
                                "message": "the store is not available",
                                "ref": frame["client_msg_id"],
                            }
                        )
                    )
                    return
            server.send(message)

        ws.on_message(from_page)
        server.on_message(lambda message: ws.send(message))

    page.route_web_socket(re.compile(r"/ws/visitor$"), route)
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    visitor_send(page, "Is this thing on?")
    failed = page.locator('#cs-panel .m.me[data-state="failed"]')
    expect(failed).to_contain_text("Not sent")
    page.get_by_role("button", name="Retry").click()
    expect(own_acked(page)).to_have_count(1)
    expect(failed).to_have_count(0)
    assert len(sends) == 2
    assert sends[0]["client_msg_id"] == sends[1]["client_msg_id"]
    cid = conversation_id(page)
    assert [m["body"] for m in chat.messages(cid)] == ["Is this thing on?"]


XSS = [
    '<img src=x onerror="window.__xss=1;alert(1)">',
    "javascript:window.__xss=2;alert(2)",
    '<a href="javascript:window.__xss=3">click me</a>',
    'https://ok.example/"><img src=x onerror=window.__xss=4>',
    "<script>window.__xss=5</script><svg onload=window.__xss=6>",
]


def test_agent_text_with_html_and_javascript_urls_is_shown_as_text(
    chat: ChatServer, agent: Agent, new_context: NewContext
) -> None:
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    load(page, chat.url + "/demo")
    open_chat(page, consent=True)
    visitor_send(page, "Show me something")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)
    for body in XSS:
        agent.send(cid, body)
    expect(bubbles(page)).to_have_count(1 + len(XSS))
    assert bubble_texts(page)[1:] == XSS

    shadow = "document.getElementById('chatserver-widget').shadowRoot"
    found = page.evaluate(
        f"""() => {{
            const root = {shadow};
            return {{
                flag: window.__xss === undefined ? null : window.__xss,
                markup: root.querySelectorAll('#cs-panel .g img, #cs-panel .g script, #cs-panel .g svg').length,
                hrefs: [...root.querySelectorAll('#cs-panel .m a')].map(a => a.getAttribute('href')),
                handlers: [...root.querySelectorAll('#cs-panel .m *')].filter(
                    e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
            }};
        }}"""
    )
    assert found["flag"] is None, "a payload ran"
    assert found["markup"] == 0
    assert found["handlers"] == 0
    # Only the http(s) URL became a link (cut where the quote starts); no javascript: anchor.
    assert found["hrefs"] == ["https://ok.example/"]
    expect(page.get_by_role("link", name=re.compile("javascript"))).to_have_count(0)
    expect(page.get_by_text("javascript:window.__xss=2;alert(2)")).to_be_visible()
    assert dialogs == []


def test_console_agent_sees_new_conversation_live_and_replies(
    chat: ChatServer, new_context: NewContext
) -> None:
    console = new_context().new_page()
    console.goto(chat.url + "/console")
    console.get_by_label("Email").fill(chat.email)
    console.get_by_label("Password").fill("not the password")
    console.get_by_role("button", name="Sign in").click()
    expect(console.get_by_role("alert")).to_have_text("Wrong email or password.")
    console.get_by_label("Password").fill(chat.password)
    console.get_by_role("button", name="Sign in").click()
    expect(console.get_by_role("heading", name="Conversations")).to_be_visible()
    # The list is loaded and the socket subscribed: what comes next arrives live.
    expect(console.locator("#conversations")).to_have_attribute("aria-busy", "false")
    expect(console.locator("body")).to_have_attribute("data-socket", "live")
    cookies = {c["name"]: c for c in console.context.cookies()}
    assert cookies["chatserver_session"]["httpOnly"]

    visitor = new_context().new_page()
    load(visitor, chat.url + "/demo")
    open_chat(visitor, consent=True)
    expect(email_box(visitor)).to_be_hidden()  # the console's agent counts as online
    visitor_send(visitor, "Can a human help me?")
    expect(own_acked(visitor)).to_have_count(1)
    cid = conversation_id(visitor)

    # Appears in the console's list without a reload.
    item = console.locator(f'#conversations button[data-id="{cid}"]')
    expect(item).to_be_visible()
    item.click()
    expect(console.locator("#messages")).to_contain_text("Can a human help me?")

    # New conversations may be auto-assigned (round-robin under capacity); else assign it.
    assign = console.locator("#assign")
    expect(assign).to_have_text(re.compile("^Assign(ed)? to"))
    if assign.is_enabled():
        assign.click(force=True)  # no wait for "enabled": auto-assignment may just land
    expect(console.get_by_role("button", name="Assigned to you")).to_be_visible()
    # The visitor sees who is answering.
    expect(visitor.locator("#cs-panel .h")).to_contain_text("Demo Agent")

    console.get_by_label("Reply").fill("Yes, I am here.")
    console.get_by_label("Reply").press("Enter")
    expect(visitor.get_by_text("Yes, I am here.")).to_be_visible()

    console.get_by_label("Internal note").check()
    console.get_by_label("Reply").fill("NOTE: verify identity first")
    console.get_by_role("button", name="Add note").click()
    note = console.locator('#messages .msg[data-kind="note"][data-state="acked"]')
    expect(note).to_have_count(1)
    expect(note).to_contain_text("Internal note")
    console.get_by_label("Internal note").uncheck()
    console.get_by_label("Reply").fill("What is your order number?")
    console.get_by_role("button", name="Send").click()
    expect(visitor.get_by_text("What is your order number?")).to_be_visible()
    expect(visitor.get_by_text("NOTE: verify identity first")).to_have_count(0)
    expect(bubbles(visitor)).to_have_count(3)

    # The visitor's answer arrives live in the open thread.
    visitor_send(visitor, "It is 4711")
    expect(console.locator("#messages")).to_contain_text("It is 4711")

    console.get_by_role("button", name="Resolve").click()
    expect(console.get_by_role("button", name="Reopen")).to_be_visible()
    assert chat.api("GET", f"/conversations/{cid}")["status"] == "resolved"

    # After that, the visitor's next message starts a new conversation (one an agent sees
    # in the open inbox); the resolved one stays in view above it.
    visitor_send(visitor, "Sorry, one more thing")
    visitor.wait_for_function("() => window.__chat.some(m => m.body === 'Sorry, one more thing')")
    new_cid = visitor.evaluate(
        "() => window.__chat.find(m => m.body === 'Sorry, one more thing').conversation_id"
    )
    assert new_cid != cid
    assert chat.api("GET", f"/conversations/{new_cid}")["status"] == "open"
    assert bubble_texts(visitor)[-2:] == ["It is 4711", "Sorry, one more thing"]
    expect(console.locator(f'#conversations button[data-id="{new_cid}"]')).to_be_visible()

    console.get_by_role("button", name="Sign out").click()
    expect(console.get_by_role("button", name="Sign in")).to_be_visible()
