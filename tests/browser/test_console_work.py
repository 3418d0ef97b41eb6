"""The console as a support team works in it, checked as a person sees it: inbox rows
that say who, what and when; the unread count in the title and the tab's icon; the
default view of what needs an answer; search with highlighted snippets that jumps to the
message; changes and event lines that reach every open console at once; "Seen" from the
visitor's reads; files sent by button, drop and paste; an honest offline state whose
queued replies are delivered once; and business hours in the schedule's time zone.

A demo server of its own, auto-assignment off. Visitors are Python clients on the visitor
socket (tests/browser/test_console.py's Visitor). Every wait is on a condition.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.request
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.support import TIMEOUT, ChatServer, artifacts_dir, start_with
from tests.browser.test_console import DESKTOP_UA, Visitor, item, new_agent, sign_in

NewContext = Callable[..., BrowserContext]
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("work-data"),
        logs=tmp_path_factory.mktemp("work-logs"),
    )
    start_with(chat, {"AUTO_ASSIGN": "false"})
    try:
        yield chat
    finally:
        chat.stop()


@pytest.fixture
def shots() -> Path:
    return artifacts_dir("console-work")


def identity_token(server: ChatServer) -> str:
    """A token the demo's platform signs for Kari Nordmann (verified with BankID)."""
    req = urllib.request.Request(server.url + "/demo/identity", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as res:
        return str(json.loads(res.read())["token"])


def verify(visitor: Visitor, server: ChatServer) -> None:
    """The visitor signs in on the platform: the widget says hello again with the token."""
    token = visitor.welcome["visitor_token"]
    visitor.ws.close()
    visitor.welcome = visitor._hello(
        server, "Shop", DESKTOP_UA, {"visitor_token": token, "identity": identity_token(server)}
    )
    assert visitor.welcome["account"]["name"] == "Kari Nordmann"


def console(
    new_context: NewContext, server: ChatServer, agent: dict[str, Any], **options: Any
) -> Page:
    page = new_context(viewport=DESKTOP, **options).new_page()
    sign_in(page, server, agent["email"], agent["password"])
    return page


def line(page: Page, text: str) -> Any:
    """An event line of the open thread, by its words."""
    return page.locator('#messages li[data-kind="event"]').filter(has_text=text)


def readable(page: Page, selector: str) -> None:
    """Visible, at least a line tall, and its text not cut off."""
    loc = page.locator(selector)
    expect(loc).to_be_visible()
    box = loc.bounding_box()
    assert box is not None and box["height"] >= 14 and box["width"] >= 12, (selector, box)


# ------------------------------------------------------------------ the inbox


def test_inbox_rows_say_who_what_and_when_and_the_tab_counts_unread(
    server: ChatServer, new_context: NewContext, shots: Path
) -> None:
    agent = new_agent(server, name="Ola Agent")
    page = console(new_context, server, agent)
    anon = Visitor(server)
    kari = Visitor(server)
    try:
        anon.say("My parcel is late\nOrder 4471, sent last week")
        verify(kari, server)
        kari.say("Hei, jeg lurer på fakturaen")
        kari.say("Og en ting til")

        row = item(page, anon.cid)
        expect(row.locator(".inbox-name")).to_have_text(
            "Visitor " + anon.welcome["visitor_id"][-6:]
        )
        # The first line of the last message, not the whole body.
        expect(row.locator(".inbox-preview")).to_have_text("My parcel is late")
        expect(row.locator(".inbox-time")).not_to_be_empty()
        expect(row.locator(".inbox-meta")).to_have_text("Unassigned")
        expect(row.locator(".status-badge")).to_have_text("Open")
        expect(row.locator(".inbox-unread")).to_have_text("1")

        verified = item(page, kari.cid)
        expect(verified.locator(".inbox-name")).to_have_text("Kari Nordmann")
        expect(verified.locator(".verified-badge")).to_have_text("Verified · BankID")
        expect(verified.locator(".inbox-preview")).to_have_text("Og en ting til")
        expect(verified.locator(".inbox-unread")).to_have_text("2")
        for sel in (
            ".inbox-name",
            ".inbox-preview",
            ".inbox-time",
            ".status-badge",
            ".inbox-unread",
        ):
            readable(page, f'#conversations button[data-id="{kari.cid}"] {sel}')

        # The tab shows what waits: the title and the icon carry the unread total.
        expect(page.locator("#favicon")).to_have_attribute("data-unread", "3")
        assert page.title().startswith("(3) ")

        # Live, not on the next reading: a new message moves the row's preview and count.
        anon.say("Any news?")
        expect(row.locator(".inbox-preview")).to_have_text("Any news?")
        expect(row.locator(".inbox-unread")).to_have_text("2")
        expect(page.locator("#favicon")).to_have_attribute("data-unread", "4")
        # A note shows as a note; the agent's reply as the agent's.
        server.reply(anon.cid, "Checked with the carrier\nmore text", kind="note")
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-socket", "live")
        expect(item(page, anon.cid).locator(".inbox-preview")).to_have_text(
            "Note: Checked with the carrier"
        )
        expect(item(page, anon.cid).locator('.inbox-preview[data-kind="note"]')).to_be_visible()

        # Counts per view: taking one moves it from Unassigned to Mine.
        # Another agent's note is news to this one: 3 unread there, 2 here.
        expect(page.locator("#favicon")).to_have_attribute("data-unread", "5")
        item(page, kari.cid).click()
        expect(page.locator("#favicon")).to_have_attribute("data-unread", "3")
        page.locator("#assign").click()
        expect(item(page, kari.cid).locator(".inbox-meta")).to_have_text("Assigned to Ola Agent")
        expect(page.locator('#view-filter option[value="me"]')).to_have_text("Mine (1)")
        expect(page.locator("#status-counts")).to_contain_text("Open: ")
        page.screenshot(path=str(shots / "inbox-rows.png"))
    finally:
        anon.close()
        kari.close()


def test_the_default_view_shows_what_needs_an_answer_and_never_hides_an_offline_message(
    server: ChatServer, new_context: NewContext
) -> None:
    agent = new_agent(server)
    page = console(new_context, server, agent)
    expect(page.locator("#status-filter")).to_have_value("open,pending")
    pending, done = Visitor(server), Visitor(server)
    try:
        pending.say("waiting for you")
        done.say("all sorted")
        server.api("PATCH", f"/conversations/{pending.cid}", {"status": "pending"})
        server.api("PATCH", f"/conversations/{done.cid}", {"status": "resolved"})
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-socket", "live")
        expect(item(page, pending.cid)).to_be_visible()
        expect(item(page, done.cid)).to_have_count(0)
        # Newest activity first.
        ids = page.locator("#conversations button").evaluate_all("bs => bs.map(b => b.dataset.id)")
        assert ids.index(pending.cid) < len(ids)
    finally:
        pending.close()
        done.close()
    offline = Visitor(server)
    try:
        # The widget's offline form while no agent answers: it must show in the default view.
        offline.frame(
            type="send",
            client_msg_id=str(uuid.uuid4()),
            body="Please call me back",
            contact={"email": "caller@example.com"},
        )
        offline.cid = offline.until(lambda f: f["type"] == "ack")["conversation_id"]
        expect(item(page, offline.cid)).to_be_visible()
        expect(item(page, offline.cid).locator(".inbox-preview")).to_have_text(
            "Please call me back"
        )
    finally:
        offline.close()


def test_search_covers_every_status_highlights_the_match_and_jumps_to_it(
    server: ChatServer, new_context: NewContext, shots: Path
) -> None:
    agent = new_agent(server)
    word = "zebra" + uuid.uuid4().hex[:6]
    old = Visitor(server)
    try:
        old.say(f"The {word} invoice was wrong, please look")
        for n in range(80):
            server.reply(old.cid, f"filler reply {n}")
        server.api("PATCH", f"/conversations/{old.cid}", {"status": "resolved"})
    finally:
        old.close()
    page = console(new_context, server, agent)
    page.get_by_label("Search").fill(word)
    row = item(page, old.cid)
    expect(row).to_be_visible()  # resolved, and still found
    mark = row.locator(".inbox-preview mark")
    expect(mark).to_have_text(word)
    readable(page, f'#conversations button[data-id="{old.cid}"] .inbox-preview mark')
    row.click()
    hit = page.locator("#messages li.is-hit")
    expect(hit).to_contain_text(word)
    expect(hit).to_be_in_viewport()
    page.screenshot(path=str(shots / "search-hit.png"))


# ------------------------------------------------------------------ live changes


def test_changes_reach_every_open_console_at_once_with_event_lines(
    server: ChatServer, new_context: NewContext, shots: Path
) -> None:
    ola = new_agent(server, name="Ola Live")
    kim = new_agent(server, name="Kim Live")
    visitor = Visitor(server)
    try:
        visitor.say("I need help with my account")
        pages = [console(new_context, server, a) for a in (ola, kim)]
        for p in pages:
            item(p, visitor.cid).click()
            expect(p.locator("#messages li").first).to_be_visible()
        pa, pk = pages
        pa.locator("#assign").click()
        for p in pages:
            expect(line(p, "Assigned to Ola Live by Ola Live")).to_be_visible()
            expect(item(p, visitor.cid).locator(".inbox-meta")).to_have_text("Assigned to Ola Live")
        pk.get_by_label("Assign to agent").select_option(kim["id"])
        expect(line(pa, "Transferred from Ola Live to Kim Live by Kim Live")).to_be_visible()
        expect(pa.locator("#thread-meta")).to_contain_text("assigned to Kim Live")
        pk.get_by_label("Tags").fill("billing")
        pk.get_by_role("button", name="Save tags").click()
        expect(pa.locator("#thread-tags")).to_have_text("billing")
        pk.locator("#resolve").click()
        expect(line(pa, "Resolved by Kim Live")).to_be_visible()
        expect(pa.locator("#resolve")).to_have_text("Reopen")
        visitor.frame(type="rate", conversation_id=visitor.cid, score=4)
        visitor.until(lambda f: f["type"] == "rated")
        for p in pages:
            expect(line(p, "Rated 4/5 by the visitor")).to_be_visible()
            expect(p.locator("#thread-rating")).to_contain_text("Rated 4 of 5")
        # The visitor signs in: the conversation becomes theirs, verified, everywhere.
        verify(visitor, server)
        for p in pages:
            expect(line(p, "Verified by BankID")).to_be_visible()
            expect(p.locator("#thread-title")).to_contain_text("Kari Nordmann")
            expect(item(p, visitor.cid).locator(".verified-badge")).to_be_visible()
        # A visitor's message reopens it.
        visitor.say("one more thing")
        expect(line(pa, "Reopened by the visitor's message")).to_be_visible()
        pa.screenshot(path=str(shots / "event-lines.png"))
        # The visitor saw none of it.
        texts = [
            m["body"] for m in server.messages(visitor.cid, events=True) if m["kind"] == "event"
        ]
        assert len(texts) >= 5
    finally:
        visitor.close()


def test_seen_shows_under_the_reply_the_visitor_has_read(
    server: ChatServer, new_context: NewContext
) -> None:
    agent = new_agent(server)
    visitor = Visitor(server)
    try:
        visitor.say("hello?")
        page = console(new_context, server, agent)
        item(page, visitor.cid).click()
        page.get_by_label("Reply").fill("Hi, how can I help?")
        page.get_by_label("Reply").press("Enter")
        reply = page.locator('#messages li[data-role="agent"]').last
        expect(reply).to_have_attribute("data-state", "acked")
        expect(page.locator(".thread-msg-seen")).to_have_count(0)
        frame = visitor.until(
            lambda f: f["type"] == "message" and f["body"] == "Hi, how can I help?"
        )
        visitor.frame(type="read", conversation_id=visitor.cid, seq=frame["seq"])
        expect(reply.locator(".thread-msg-seen")).to_have_text("Seen")
        readable(page, ".thread-msg-seen")
        # Still known after a reload (visitor_read_seq), not only from the live frame.
        page.reload()
        item(page, visitor.cid).click()
        expect(
            page.locator('#messages li[data-role="agent"]').last.locator(".thread-msg-seen")
        ).to_have_text("Seen")
    finally:
        visitor.close()


# ------------------------------------------------------------------ files


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def test_agents_send_files_by_button_drop_and_paste(
    server: ChatServer, new_context: NewContext, tmp_path: Path, shots: Path
) -> None:
    agent = new_agent(server)
    visitor = Visitor(server)
    try:
        visitor.say("here is my problem")
        page = console(new_context, server, agent)
        item(page, visitor.cid).click()
        # The button (a file chooser).
        picked = tmp_path / "receipt.png"
        picked.write_bytes(PNG)
        page.locator("#file-input").set_input_files(str(picked))
        expect(page.locator('#composer-files li[data-state="done"]')).to_have_count(1)
        # Dropped onto the composer.
        page.evaluate(
            """(bytes) => {
              const dt = new DataTransfer();
              dt.items.add(new File([new Uint8Array(bytes)], 'dropped.png', {type: 'image/png'}));
              const reply = document.getElementById('reply');
              reply.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
              reply.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""",
            list(PNG),
        )
        # A pasted screenshot.
        page.evaluate(
            """(bytes) => {
              const dt = new DataTransfer();
              dt.items.add(new File([new Uint8Array(bytes)], 'image.png', {type: 'image/png'}));
              const box = document.getElementById('reply-body');
              box.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
            }""",
            list(PNG),
        )
        expect(page.locator('#composer-files li[data-state="done"]')).to_have_count(3)
        page.get_by_label("Reply").fill("Three pictures")
        page.get_by_label("Reply").press("Enter")
        sent = page.locator('#messages li[data-role="agent"]').last
        expect(sent).to_have_attribute("data-state", "acked")
        expect(sent.locator(".thread-msg-files li")).to_have_count(3)
        frame = visitor.until(lambda f: f["type"] == "message" and f["body"] == "Three pictures")
        names = sorted(a["name"] for a in frame["attachments"])
        assert (
            names[0] == "dropped.png"
            and names[1] == "receipt.png"
            and names[2].startswith("screenshot-")
        )
        # A file of a type not allowed is refused with a sentence, and nothing is sent.
        bad = tmp_path / "page.html"
        bad.write_text("<html><script>alert(1)</script></html>")
        page.locator("#file-input").set_input_files(str(bad))
        expect(page.locator('#composer-files li[data-state="failed"]')).to_have_count(1)
        expect(page.locator("#composer-error")).to_contain_text(
            "page.html was not attached: This kind of file is not allowed."
        )
        page.screenshot(path=str(shots / "files.png"))
    finally:
        visitor.close()


# ------------------------------------------------------------------ offline


def test_offline_the_console_says_so_queues_replies_and_delivers_them_once(
    tmp_path_factory: pytest.TempPathFactory, new_context: NewContext, shots: Path
) -> None:
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("offline-data"),
        logs=tmp_path_factory.mktemp("offline-logs"),
    )
    start_with(chat, {"AUTO_ASSIGN": "false"})
    try:
        agent = new_agent(chat)
        visitor = Visitor(chat)
        visitor.say("still there?")
        visitor.close()
        page = console(new_context, chat, agent)
        item(page, visitor.cid).click()
        expect(page.locator("#messages li").first).to_be_visible()
        expect(page.locator("#conn-banner")).to_be_hidden()
        chat.stop()
        banner = page.locator("#conn-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Offline")
        expect(page.locator("#online")).to_have_text("Presence unknown while offline")
        page.get_by_label("Reply").fill("Sorry for the wait")
        page.get_by_label("Reply").press("Enter")
        queued = page.locator('#messages li[data-role="agent"]').last
        expect(queued).to_contain_text("sending…")
        expect(banner).to_contain_text("1 reply is waiting to be sent.")
        page.screenshot(path=str(shots / "offline.png"))
        chat.start()
        expect(queued).to_have_attribute("data-state", "acked", timeout=TIMEOUT * 2 * 1000)
        expect(banner).to_be_hidden()
        bodies = [m["body"] for m in chat.messages(visitor.cid)]
        assert bodies.count("Sorry for the wait") == 1
    finally:
        chat.stop()


# ------------------------------------------------------------------ business hours


def test_business_hours_are_shown_in_the_schedule_zone_with_local_time_beside(
    server: ChatServer, new_context: NewContext
) -> None:
    # Open every day 09:00-17:00 in Auckland, but closed today and the next two days
    # there: closed now, whatever the hour, and opening at 09:00 Auckland time.
    week = {
        d: [{"start": "09:00", "end": "17:00"}]
        for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    today = datetime.datetime.now(zoneinfo.ZoneInfo("Pacific/Auckland")).date()
    closed = [str(today + datetime.timedelta(days=n)) for n in range(3)]
    server.api(
        "PUT",
        "/business-hours",
        {"enabled": True, "time_zone": "Pacific/Auckland", "weekly": week, "closed_dates": closed},
    )
    try:
        page = new_context(viewport=DESKTOP, timezone_id="Europe/Oslo").new_page()
        sign_in(page, server, server.email, server.password, "#/admin/hours")
        status = page.locator("#hours-status")
        expect(status).to_contain_text("Pacific/Auckland")
        expect(status).to_contain_text("your time")
        expect(status).to_contain_text("Closed now")
        expect(status).to_contain_text(re.compile(r"opens .*09:00( AM)? Pacific/Auckland"))
        # Every agent sees in the inbox when the closed chat opens, in the schedule's zone.
        agent = new_agent(server)
        inbox = new_context(viewport=DESKTOP, timezone_id="Europe/Oslo").new_page()
        sign_in(inbox, server, agent["email"], agent["password"])
        line = inbox.locator("#hours-line")
        expect(line).to_contain_text("Closed now · opens")
        expect(line).to_contain_text(re.compile(r"09:00( AM)? Pacific/Auckland \(.* your time\)"))
    finally:
        server.api(
            "PUT",
            "/business-hours",
            {"enabled": False, "time_zone": "Europe/Oslo", "weekly": week, "closed_dates": []},
        )


def test_a_new_chat_while_the_tab_is_visible_shows_a_toast(
    server: ChatServer, new_context: NewContext
) -> None:
    agent = new_agent(server)
    page = console(new_context, server, agent)
    visitor = Visitor(server)
    try:
        visitor.say("hello from a toast")
        toast = page.locator(".toast").filter(has_text="New conversation")
        expect(toast).to_be_visible()
        toast.get_by_role("button", name="Open").click()
        expect(page.locator("#messages")).to_contain_text("hello from a toast")
    finally:
        visitor.close()
