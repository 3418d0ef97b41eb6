"""The agent console in a browser: the live inbox, a conversation (replies, notes, canned
responses, keyboard shortcuts, history paging), the visitor panel by role, presence,
cut-off on deactivation, admin pages and their 403s, CSRF, stats and hostile text.

The console runs against its own demo server with auto-assignment off, so a new
conversation waits in Unassigned until an agent takes it. Visitors are Python clients on
``/ws/visitor`` with the server's own (allowed) origin. Every wait is on a condition.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.browser.support import AXE, TIMEOUT, ChatServer, SocketClient

NewContext = Callable[..., BrowserContext]

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
XSS_TITLE = "<img src=x onerror=\"window.__xss='title'\"><b>Checkout</b>"
XSS_BODY = "<script>window.__xss='body'</script><img src=x onerror=\"window.__xss='img'\">"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """A demo server of its own, with auto-assignment off (new chats wait in Unassigned)."""
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("console-data"),
        logs=tmp_path_factory.mktemp("console-logs"),
    )
    before = os.environ.get("CHATSERVER_AUTO_ASSIGN")
    os.environ["CHATSERVER_AUTO_ASSIGN"] = "false"
    try:
        chat.start()
    finally:
        if before is None:
            del os.environ["CHATSERVER_AUTO_ASSIGN"]
        else:
            os.environ["CHATSERVER_AUTO_ASSIGN"] = before
    try:
        yield chat
    finally:
        chat.stop()


# ------------------------------------------------------------------ helpers


class Visitor(SocketClient):
    """A visitor on a raw visitor socket, from the server's own origin unless told."""

    def __init__(
        self,
        server: ChatServer,
        *,
        title: str = "Shop",
        ua: str = DESKTOP_UA,
        origin: str | None = None,
    ) -> None:
        self.seen = []
        self.cid = ""
        self.origin = origin or server.url
        self.welcome = self._hello(server, title, ua, {})
        policy = self.welcome["policy"]
        if policy["version"] and not policy["accepted"]:
            # Accept the privacy notice, as the widget does, on a new socket.
            self.ws.close()
            consent = {"visitor_token": self.welcome["visitor_token"]}
            consent["consent"] = {"version": policy["version"]}  # type: ignore[assignment]
            self.welcome = self._hello(server, title, ua, consent)

    def _hello(
        self, server: ChatServer, title: str, ua: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        self.ws: ClientConnection = connect(
            server.ws_url + "/ws/visitor",
            origin=self.origin,  # type: ignore[arg-type]
            user_agent_header=ua,
            open_timeout=TIMEOUT,
            legacy=True,
        )
        self.frame(
            type="hello",
            page={
                "url": "https://shop.example/checkout",
                "title": title,
                "referrer": "https://search.example/?q=shoes",
            },
            locale="en-GB",
            **extra,
        )
        return self.until(lambda f: f["type"] == "welcome")

    @property
    def token(self) -> str:
        return str(self.welcome["visitor_token"])

    def say(self, body: str, attachments: list[str] | None = None) -> dict[str, Any]:
        cmid = str(uuid.uuid4())
        frame: dict[str, Any] = {"type": "send", "client_msg_id": cmid, "body": body}
        if self.cid:
            frame["conversation_id"] = self.cid
        if attachments:
            frame["attachments"] = attachments
        self.frame(**frame)
        ack = self.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == cmid)
        if self.cid:
            assert ack["conversation_id"] == self.cid, ack
        self.cid = ack["conversation_id"]
        return ack

    def close(self) -> None:
        self.ws.close()


def new_agent(server: ChatServer, role: str = "agent", name: str = "") -> dict[str, Any]:
    """An agent with a password, made by the demo admin through the API."""
    tag = uuid.uuid4().hex[:6]
    password = "pw-" + uuid.uuid4().hex
    agent: dict[str, Any] = server.api(
        "POST",
        "/agents",
        {
            "email": f"{role}-{tag}@example.com",
            "name": name or f"{role.title()} {tag}",
            "password": password,
            "role": role,
        },
    )
    agent["password"] = password
    return agent


ERRORS: list[str] = []  # uncaught errors in any console page of the running test


@pytest.fixture(autouse=True)
def no_uncaught_script_errors() -> Iterator[None]:
    """Each test fails if a console page it opened threw an uncaught script error."""
    ERRORS.clear()
    yield
    assert ERRORS == [], ERRORS


def sign_in(page: Page, server: ChatServer, email: str, password: str, hash_: str = "") -> None:
    page.on("pageerror", lambda e: ERRORS.append(f"{page.url}: {e}"))
    page.goto(server.url + "/console" + hash_)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "live")
    expect(page.locator("#conversations")).to_have_attribute("aria-busy", "false")


def item(page: Page, cid: str) -> Any:
    return page.locator(f'#conversations button[data-id="{cid}"]')


def choose_view(page: Page, value: str) -> None:
    page.select_option("#view-filter", value)
    expect(page.locator("#conversations")).to_have_attribute("aria-busy", "false")


# ------------------------------------------------------------------ tests


def test_agent_takes_a_live_chat_replies_and_notes_stay_internal(
    server: ChatServer, new_context: NewContext, artifacts: Path
) -> None:
    alice = new_agent(server, name="Alice Agent")
    page = new_context(viewport={"width": 1360, "height": 820}).new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, alice["email"], alice["password"])
    expect(page.locator("#nav-admin")).to_be_hidden()  # not an admin
    choose_view(page, "none")  # Unassigned

    visitor = Visitor(server, title=XSS_TITLE)
    try:
        visitor.say("Hi, my parcel is late " + XSS_BODY)
        cid = visitor.cid
        # The new conversation appears in Unassigned without a reload, with an unread count.
        expect(item(page, cid)).to_be_visible()
        expect(item(page, cid)).to_contain_text("Unassigned")
        expect(item(page, cid)).to_contain_text("Visitor " + visitor.welcome["visitor_id"][-6:])
        page.screenshot(path=str(artifacts / "console-inbox.png"))

        item(page, cid).click()
        messages = page.locator("#messages")
        expect(messages).to_contain_text("Hi, my parcel is late <script>")
        expect(messages).to_contain_text("onerror=")
        # The visitor panel: device, browser and page, the hostile title as text; no IP.
        session = page.locator("#visitor-session")
        expect(session).to_contain_text("desktop")
        expect(session).to_contain_text("Chrome")
        expect(session).to_contain_text(XSS_TITLE)
        expect(session.get_by_role("link", name="https://shop.example/checkout")).to_be_visible()
        expect(page.locator("#visitor-ip")).to_have_count(0)
        assert page.evaluate("() => window.__xss") is None
        assert page.locator("#messages img, #visitor img, #messages script").count() == 0

        # Take it: it stays open here, and its assignee shows.
        page.locator("#assign").click()
        expect(page.locator("#assign")).to_have_text("Assigned to you")
        expect(item(page, cid)).to_contain_text("Assigned to Alice Agent")
        assert server.api("GET", f"/conversations/{cid}")["assignee"]["id"] == alice["id"]

        # Typing reaches the agent.
        visitor.frame(type="typing", conversation_id=cid, state=True)
        expect(page.locator("#typing")).to_contain_text("is typing")

        # Reply with Enter; Shift+Enter makes a new line.
        reply = page.get_by_label("Reply")
        reply.fill("Hello, I am Alice.")
        reply.press("Shift+Enter")
        reply.press_sequentially("Let me look.")
        reply.press("Enter")
        got = visitor.until(lambda f: f["type"] == "message")
        assert got["body"] == "Hello, I am Alice.\nLet me look."
        assert got["author"]["name"] == "Alice Agent"

        page.get_by_label("Internal note").check()
        reply.fill("NOTE: customer sounds upset")
        reply.press("Enter")
        note = page.locator('#messages .msg[data-kind="note"][data-state="acked"]')
        expect(note).to_have_count(1)
        expect(note).to_contain_text("Internal note")
        page.get_by_label("Internal note").uncheck()
        reply.fill("Found it: it ships today.")
        reply.press("Enter")
        visitor.until(lambda f: f["type"] == "message" and f["body"].startswith("Found it"))
        # The note's seq is between the two replies; it never reached the visitor.
        assert not any("customer sounds upset" in json.dumps(f) for f in visitor.seen)
        visitor.frame(type="resume", conversation_id=cid, after_seq=0)
        visitor.until(lambda f: f["type"] == "resumed")
        assert not any("customer sounds upset" in json.dumps(f) for f in visitor.seen)

        # The visitor's answer arrives live.
        visitor.say("Thanks! " + XSS_BODY)
        expect(messages).to_contain_text("Thanks! <script>")
        page.screenshot(path=str(artifacts / "console-conversation.png"))

        # Status and tags.
        page.select_option("#conv-status", "pending")
        expect(page.locator("#thread-meta")).to_contain_text("Pending")
        page.get_by_label("Tags").fill("billing, vip")
        page.get_by_role("button", name="Save tags").click()
        expect(page.locator("#thread-tags")).to_contain_text("billing")
        got_conv = server.api("GET", f"/conversations/{cid}")
        assert (got_conv["status"], sorted(got_conv["tags"])) == ("pending", ["billing", "vip"])
        assert page.evaluate("() => window.__xss") is None
        assert dialogs == []
    finally:
        visitor.close()


def test_inbox_filters_search_and_unread(server: ChatServer, new_context: NewContext) -> None:
    agent = new_agent(server)
    word = "zebra" + uuid.uuid4().hex[:6]
    v1, v2 = Visitor(server), Visitor(server)
    try:
        v1.say(f"my {word} question")
        v2.say("something else entirely")
        v2.say("and one more")
        server.api("PATCH", f"/conversations/{v1.cid}", {"tags": ["refund"]})
        page = new_context().new_page()
        sign_in(page, server, agent["email"], agent["password"])
        expect(item(page, v2.cid).locator(".unread")).to_have_text("2")
        page.get_by_label("Search").fill(word)
        expect(item(page, v2.cid)).to_have_count(0)
        expect(item(page, v1.cid)).to_be_visible()
        page.get_by_label("Search").fill("")
        expect(item(page, v2.cid)).to_be_visible()
        page.get_by_label("Tag", exact=True).fill("refund")
        expect(item(page, v2.cid)).to_have_count(0)
        expect(item(page, v1.cid)).to_be_visible()
        page.get_by_label("Tag", exact=True).fill("")
        # Mine is empty until this agent takes one.
        choose_view(page, "me")
        expect(item(page, v1.cid)).to_have_count(0)
        server.api("PATCH", f"/conversations/{v1.cid}", {"assignee_id": agent["id"]})
        expect(item(page, v1.cid)).to_be_visible()  # live, from the conversation frame
        # Newest activity first in All.
        choose_view(page, "")
        v1.say("bump")
        page.reload()
        expect(page.locator("#conversations")).to_have_attribute("aria-busy", "false")
        first = page.locator("#conversations button").first
        expect(first).to_have_attribute("data-id", v1.cid)
        # Opening it sends `read`: the unread count is gone on the next listing.
        item(page, v2.cid).click()
        expect(page.locator("#messages")).to_contain_text("and one more")
        page.wait_for_function(
            """async (cid) => {
                const r = await fetch('/api/v1/conversations?limit=200');
                const d = await r.json();
                return d.items.find(c => c.id === cid).unread === 0;
            }""",
            arg=v2.cid,
        )
    finally:
        v1.close()
        v2.close()


def test_two_agents_see_each_others_assignment_and_presence_live(
    server: ChatServer, new_context: NewContext
) -> None:
    bob = new_agent(server, name="Bob " + uuid.uuid4().hex[:4])
    carol = new_agent(server, name="Carol " + uuid.uuid4().hex[:4])
    pb = new_context().new_page()
    pc = new_context().new_page()
    sign_in(pb, server, bob["email"], bob["password"])
    sign_in(pc, server, carol["email"], carol["password"])
    # Presence frames tell who is online, those already there included.
    expect(pb.locator("#online")).to_contain_text(carol["name"])
    visitor = Visitor(server)
    try:
        visitor.say("Anyone there?")
        expect(item(pb, visitor.cid)).to_be_visible()
        expect(item(pc, visitor.cid)).to_contain_text("Unassigned")
        item(pb, visitor.cid).click()
        pb.locator("#assign").click()
        expect(item(pc, visitor.cid)).to_contain_text("Assigned to " + bob["name"])
        # Carol opens it and sees Bob's reply and typing live.
        item(pc, visitor.cid).click()
        expect(pc.locator("#thread-meta")).to_contain_text("assigned to " + bob["name"])
        pb.get_by_label("Reply").press_sequentially("Hi")
        expect(pc.locator("#typing")).to_contain_text(bob["name"] + " is typing")
        pb.get_by_label("Reply").press("Enter")
        expect(pc.locator("#messages")).to_contain_text("Hi")
        # Carol unassigns; Bob sees it.
        pc.get_by_role("button", name="Unassign", exact=True).click()
        expect(pb.locator("#thread-meta")).to_contain_text("unassigned")
        # Presence: Bob goes away, Carol sees it.
        pb.get_by_label("My status").select_option("away")
        expect(pc.locator("#online")).to_contain_text(bob["name"] + " (away)")
        pb.get_by_label("My status").select_option("online")
        expect(pc.locator("#online")).not_to_contain_text(bob["name"] + " (away)")
    finally:
        visitor.close()


def test_deactivated_agent_is_cut_off_mid_session(
    server: ChatServer, new_context: NewContext
) -> None:
    dave = new_agent(server)
    page = new_context().new_page()
    sign_in(page, server, dave["email"], dave["password"])
    server.api("PATCH", f"/agents/{dave['id']}", {"active": False})
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("signed out")
    expect(page.locator("body")).to_have_attribute("data-socket", "offline")
    # The session cookie no longer works either.
    status = page.evaluate("async () => (await fetch('/console/me')).status")
    assert status == 401


def test_agent_cannot_open_admin_pages_and_writes_need_csrf(
    server: ChatServer, new_context: NewContext
) -> None:
    eve = new_agent(server)
    page = new_context().new_page()
    sign_in(page, server, eve["email"], eve["password"], "#/admin/agents")
    expect(page.locator("#nav-admin")).to_be_hidden()
    expect(page.locator("#nav-stats")).to_be_hidden()
    # A sentence for a person, with the stable code beside it for scripts.
    expect(page.locator("#page-error")).to_have_text("Your role does not allow this.")
    expect(page.locator("#page-error")).to_have_attribute("data-code", "forbidden")
    for path in ("#/stats", "#/admin/tokens", "#/admin/origins"):
        page.goto(server.url + "/console" + path)
        expect(page.locator("#page-error")).to_have_attribute("data-code", "forbidden")
    answers = page.evaluate(
        """async () => {
            const out = {};
            for (const p of ['/api/v1/tokens', '/api/v1/stats',
                             '/api/v1/policies', '/api/v1/origins']) {
                const r = await fetch(p);
                out[p] = [r.status, (await r.json()).error.code];
            }
            return out;
        }"""
    )
    assert set(map(tuple, answers.values())) == {(403, "forbidden")}, answers

    visitor = Visitor(server)
    try:
        visitor.say("csrf check")
        result = page.evaluate(
            """async (cid) => {
                const body = JSON.stringify({client_msg_id: crypto.randomUUID(), body: 'x'});
                const url = `/api/v1/conversations/${cid}/messages`;
                const headers = {'Content-Type': 'application/json'};
                const bare = await fetch(url, {method: 'POST', headers, body});
                const patch = await fetch(`/api/v1/conversations/${cid}`,
                    {method: 'PATCH', headers, body: JSON.stringify({status: 'resolved'})});
                const token = document.cookie.match(/chatserver_csrf=([^;]*)/)[1];
                const ok = await fetch(url, {method: 'POST', body,
                    headers: {...headers, 'X-CSRF-Token': decodeURIComponent(token)}});
                return [bare.status, (await bare.json()).error.code, patch.status, ok.status];
            }""",
            visitor.cid,
        )
        assert result == [403, "forbidden", 403, 201]
        assert server.api("GET", f"/conversations/{visitor.cid}")["status"] == "open"
    finally:
        visitor.close()


def test_visitor_panel_shows_ip_to_admin_only(server: ChatServer, new_context: NewContext) -> None:
    frank = new_agent(server)
    visitor = Visitor(server, ua=MOBILE_UA, title="Order page")
    try:
        visitor.say("first chat")
        first = visitor.cid
        server.api("PATCH", f"/conversations/{first}", {"status": "resolved"})
        visitor.cid = ""
        visitor.say("second chat")
        second = visitor.cid
        page = new_context().new_page()
        sign_in(page, server, frank["email"], frank["password"])
        item(page, second).click()
        panel = page.locator("#visitor")
        expect(panel.locator("#visitor-session")).to_contain_text("mobile")
        expect(panel).to_contain_text("Order page")
        expect(panel).to_contain_text("https://search.example/?q=shoes")
        expect(page.locator("#visitor-ip")).to_have_count(0)
        raw = page.evaluate(
            "async (cid) => (await fetch(`/api/v1/conversations/${cid}/visitor`)).json()", second
        )
        assert raw["sessions"] and all("ip" not in s for s in raw["sessions"])
        # Earlier conversations are listed and open on click.
        panel.locator(".earlier button").first.click()
        expect(page.locator("#messages")).to_contain_text("first chat")

        admin = new_context().new_page()
        sign_in(admin, server, server.email, server.password)
        admin.select_option("#status-filter", "")
        item(admin, second).click()
        expect(admin.locator("#visitor-ip")).to_have_text("127.0.0.1")
        # An admin can hand it to another agent from the dropdown.
        admin.get_by_label("Assign to agent").select_option(frank["id"])
        expect(admin.locator("#thread-meta")).to_contain_text("assigned to " + frank["name"])
        # So can a plain agent: the team list comes without emails.
        demo = next(a for a in server.api("GET", "/agents")["items"] if a["email"] == server.email)
        page.get_by_label("Assign to agent").select_option(demo["id"])
        expect(page.locator("#thread-meta")).to_contain_text("assigned to " + demo["name"])
        page.wait_for_function(
            """async ([cid, id]) => {
                const c = await (await fetch(`/api/v1/conversations/${cid}`)).json();
                return c.assignee && c.assignee.id === id;
            }""",
            arg=[second, demo["id"]],
        )
        assert "@" not in page.evaluate(
            "async () => JSON.stringify(await (await fetch('/api/v1/agents')).json())"
        )
    finally:
        visitor.close()


def test_canned_responses_shortcuts_and_history_paging(
    server: ChatServer, new_context: NewContext
) -> None:
    shortcut = "greet" + uuid.uuid4().hex[:4]
    server.api(
        "POST", "/canned-responses", {"shortcut": shortcut, "body": "Hello! How can I help?"}
    )
    grace = new_agent(server)
    visitor = Visitor(server)
    other = Visitor(server)
    try:
        visitor.say("message 1")
        for n in range(2, 121):
            server.reply(visitor.cid, f"message {n}")
        other.say("the other one")
        page = new_context().new_page()
        sign_in(page, server, grace["email"], grace["password"])
        item(page, visitor.cid).click()
        messages = page.locator("#messages")
        expect(messages.locator("li").last).to_contain_text("message 120")
        assert messages.locator("li").count() < 120  # the newest page only
        expect(messages).to_have_attribute("data-complete", "false")
        # Scrolling back loads the older pages, in order.
        for _ in range(5):
            if messages.get_attribute("data-complete") == "true":
                break
            before = messages.locator("li").count()
            messages.evaluate("e => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); }")
            page.wait_for_function(
                "(n) => document.querySelectorAll('#messages li').length > n",
                arg=before,
            )
        expect(messages).to_have_attribute("data-complete", "true")
        expect(messages.locator("li")).to_have_count(120)
        expect(messages.locator("li").first).to_contain_text("message 1")
        seqs = messages.locator("li").evaluate_all("ls => ls.map(l => Number(l.dataset.seq))")
        assert seqs == list(range(1, 121))

        # `/` opens the canned responses, filtered by shortcut; Enter inserts the body.
        reply = page.get_by_label("Reply")
        reply.press_sequentially("/" + shortcut[:6])
        option = page.get_by_role("option").filter(has_text="/" + shortcut)
        expect(option).to_be_visible()
        reply.press("Enter")
        expect(reply).to_have_value("Hello! How can I help?")
        reply.press("Enter")
        visitor.until(lambda f: f["type"] == "message" and f["body"] == "Hello! How can I help?")

        # Keyboard shortcuts (focus outside text fields).
        messages.focus()
        ids = page.locator("#conversations button").evaluate_all("bs => bs.map(b => b.dataset.id)")
        current = ids.index(visitor.cid)
        page.keyboard.press("j")
        expect(page.locator("#conversations button[aria-current=true]")).to_have_attribute(
            "data-id", ids[min(current + 1, len(ids) - 1)]
        )
        page.keyboard.press("k")
        expect(page.locator("#conversations button[aria-current=true]")).to_have_attribute(
            "data-id", visitor.cid
        )
        messages.focus()
        page.keyboard.press("a")
        expect(page.locator("#assign")).to_have_text("Assigned to you")
        page.keyboard.press("?")
        expect(page.get_by_role("dialog")).to_contain_text("Keyboard shortcuts")
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()
        messages.focus()
        page.keyboard.press("e")
        expect(page.get_by_role("button", name="Reopen")).to_be_visible()
        assert server.api("GET", f"/conversations/{visitor.cid}")["status"] == "resolved"
    finally:
        visitor.close()
        other.close()


def test_admin_pages(server: ChatServer, new_context: NewContext, artifacts: Path) -> None:
    page = new_context().new_page()
    sign_in(page, server, server.email, server.password)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    form = page.locator("#add-agent")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Name").fill("Heidi <i>New</i>")
    form.get_by_label("Password").fill("Heron marmalade tundra 88")
    form.get_by_role("button", name="Add agent").click()
    expect(page.get_by_label("Name of Heidi <i>New</i>", exact=True)).to_have_value(
        "Heidi <i>New</i>"
    )
    heidi = next(a for a in server.api("GET", "/agents")["items"] if a["email"] == email)
    page.get_by_label("Name of Heidi <i>New</i>", exact=True).fill("Heidi Renamed")
    page.get_by_role("button", name="Save name of Heidi <i>New</i>").click()
    expect(page.get_by_label("Name of Heidi Renamed", exact=True)).to_have_value("Heidi Renamed")
    page.get_by_label("Active: Heidi Renamed").uncheck()
    expect(page.get_by_label("Active: Heidi Renamed")).not_to_be_checked()
    page.wait_for_function(
        """async (id) => (await (await fetch('/api/v1/agents')).json())
            .items.find(a => a.id === id).active === false""",
        arg=heidi["id"],
    )

    page.get_by_role("link", name="API tokens").click()
    page.locator("#add-token").get_by_label("Bot name").fill("Reporting bot")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token")
    expect(token).not_to_be_empty()
    secret = token.inner_text()
    expect(page.locator("#page-body table")).to_contain_text("Reporting bot")
    page.get_by_role("link", name="Allowed origins").click()
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("#page-body table")).to_contain_text("Reporting bot")
    expect(page.locator("#new-token")).to_have_count(0)  # shown once
    assert secret not in page.content()

    page.get_by_role("link", name="Canned responses").click()
    page.locator("#add-canned").get_by_label("Shortcut").fill("bye")
    page.locator("#add-canned").get_by_label("Body").fill("Goodbye!")
    page.get_by_role("button", name="Add canned response").click()
    expect(page.locator("#page-body table")).to_contain_text("/bye")
    page.locator("#add-canned").get_by_label("Shortcut").fill("bye")
    page.locator("#add-canned").get_by_label("Body").fill("again")
    page.get_by_role("button", name="Add canned response").click()
    expect(page.locator("#add-canned .form-error")).to_have_attribute("data-code", "conflict")
    expect(page.locator("#add-canned .form-error")).to_contain_text("already there")

    page.get_by_role("link", name="Allowed origins").click()
    page.locator("#add-origin").get_by_label("Origin").fill("https://shop.example")
    page.get_by_role("button", name="Add origin").click()
    expect(page.locator("#page-body table")).to_contain_text("https://shop.example")
    page.locator("#page-body tr", has_text="https://shop.example").get_by_role(
        "button", name="Remove"
    ).click()
    expect(page.locator("#page-body table")).not_to_contain_text("https://shop.example")

    page.get_by_role("link", name="Privacy policies").click()
    expect(page.locator("#page-body table")).to_contain_text("2019-06-01")
    page.get_by_role("link", name="Agents").click()
    expect(page.get_by_label("Active: Heidi Renamed")).not_to_be_checked()
    # An admin cannot deactivate themself: the 409 shows, the box is checked again.
    page.get_by_label("Active: Demo Agent").uncheck()
    expect(page.locator("#page-error")).to_have_attribute("data-code", "conflict")
    expect(page.get_by_label("Active: Demo Agent")).to_be_checked()
    page.screenshot(path=str(artifacts / "console-admin-agents.png"), full_page=True)


def test_stats_page_shows_counts_for_seeded_data(
    server: ChatServer, new_context: NewContext, artifacts: Path
) -> None:
    visitors = [Visitor(server, ua=MOBILE_UA) for _ in range(6)]
    try:
        for n, v in enumerate(visitors):
            v.say(f"seeded chat {n}")
    finally:
        for v in visitors:
            v.close()
    stats = server.api("GET", "/stats")
    listed = 0
    cursor = ""
    while True:
        page_ = server.api(
            "GET", "/conversations?limit=200" + (f"&cursor={cursor}" if cursor else "")
        )
        listed += len(page_["items"])
        cursor = page_["next_cursor"]
        if not cursor:
            break
    assert stats["conversations"] == listed >= 6
    mobile = next(d for d in stats["device_mix"] if d["device_class"] == "mobile")
    assert mobile["sessions"] is not None and mobile["sessions"] >= 6

    page = new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, server, server.email, server.password, "#/stats")
    summary = page.locator("#stats-summary")
    expect(summary).to_contain_text(f"Conversations{listed}")
    today = next(d for d in stats["conversations_per_day"] if d["conversations"])
    expect(page.get_by_role("row", name=f"{today['day']} {listed}")).to_be_visible()
    expect(page.locator("svg.bars rect.bar")).to_have_count(
        sum(1 for d in stats["conversations_per_day"] if d["conversations"] is not None)
    )
    expect(page.locator("#stats-devices")).to_contain_text(f"mobile{mobile['sessions']}")
    if stats["first_response_seconds"]["median"] is None:
        expect(summary).to_contain_text("First response, median— (under 5 conversations)")
    page.screenshot(path=str(artifacts / "console-stats.png"), full_page=True)
    # Another range, by the form: nothing then, so the count is suppressed.
    page.get_by_label("From").fill("2020-01-01")
    page.get_by_label("To", exact=True).fill("2020-01-31")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#stats-summary")).to_contain_text("Conversations<5")
    expect(page.locator("svg.bars rect")).to_have_count(0)


def test_pagination_contact_email_and_notifications(
    server: ChatServer, new_context: NewContext
) -> None:
    tag = "bulk" + uuid.uuid4().hex[:4]
    made = []
    for n in range(52):
        v = Visitor(server)
        try:
            v.say(f"bulk {n}")
        finally:
            v.close()
        server.api("PATCH", f"/conversations/{v.cid}", {"tags": [tag]})
        made.append(v.cid)
    agent = new_agent(server)
    context = new_context()
    # A hidden tab, and a Notification the page may use (permission granted).
    context.add_init_script(
        """
        window.__hidden = false; window.__notes = [];
        Object.defineProperty(Document.prototype, 'hidden', {get: () => window.__hidden});
        window.Notification = class {
            static permission = 'granted';
            static requestPermission() { return Promise.resolve('granted'); }
            constructor(title, options) { window.__notes.push([title, options.body]); }
            close() {}
        };
        """
    )
    page = context.new_page()
    sign_in(page, server, agent["email"], agent["password"])
    page.get_by_label("Tag", exact=True).fill(tag)
    expect(page.locator("#conversations button")).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#conversations button")).to_have_count(52)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    ids = page.locator("#conversations button").evaluate_all("bs => bs.map(b => b.dataset.id)")
    assert ids == list(reversed(made))  # newest activity first
    page.get_by_label("Tag", exact=True).fill("")
    expect(page.locator("#conversations button")).not_to_have_count(52)

    # The tab is hidden: a new conversation notifies.
    page.evaluate("() => { window.__hidden = true; }")
    visitor = Visitor(server)
    try:
        # The widget's offline form: a contact email with the first message.
        visitor.frame(
            type="send",
            client_msg_id=str(uuid.uuid4()),
            body="Please email me back",
            contact={"email": "someone@example.com"},
        )
        visitor.cid = visitor.until(lambda f: f["type"] == "ack")["conversation_id"]
        page.wait_for_function("() => window.__notes.some(n => n[0] === 'New conversation')")
        page.evaluate("() => { window.__hidden = false; }")
        page.select_option("#status-filter", "pending")
        item(page, visitor.cid).click()
        expect(page.locator("#contact-email")).to_contain_text("someone@example.com")
        # A message in a conversation assigned to me notifies too, when hidden.
        page.locator("#assign").click()
        expect(page.locator("#assign")).to_have_text("Assigned to you")
        page.evaluate("() => { window.__hidden = true; }")
        visitor.say("are you there?")
        page.wait_for_function("() => window.__notes.some(n => n[1] === 'are you there?')")
    finally:
        visitor.close()


def test_agent_changes_password_on_the_account_page(
    server: ChatServer, new_context: NewContext
) -> None:
    ivan = new_agent(server)
    page = new_context().new_page()
    sign_in(page, server, ivan["email"], ivan["password"])
    page.get_by_role("link", name="Account").click()
    form = page.locator("#change-password")
    form.get_by_label("Current password").fill("wrong password")
    form.get_by_label("New password").fill("Fjord lantern quietly 1947")
    form.get_by_role("button", name="Change password").click()
    expect(form.locator(".form-error")).to_have_attribute("data-code", "forbidden")
    expect(form.locator(".form-error")).to_have_text("Your role does not allow this.")
    form.get_by_label("Current password").fill(ivan["password"])
    form.get_by_label("New password").fill("Fjord lantern quietly 1947")
    form.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").filter(has_text="Password changed.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    sign_in(page, server, ivan["email"], "Fjord lantern quietly 1947")


def axe_console(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the whole console page."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed ({AXE} missing): npm ci --prefix tests/browser")
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target)}));
        }"""
    )
    return violations


def test_console_pages_have_no_serious_accessibility_violations(
    server: ChatServer, new_context: NewContext
) -> None:
    visitor = Visitor(server)
    try:
        visitor.say("accessibility check")
        page = new_context().new_page()
        sign_in(page, server, server.email, server.password)
        page.select_option("#status-filter", "")
        assert axe_console(page) == []
        item(page, visitor.cid).click()
        page.get_by_label("Internal note").check()
        page.get_by_label("Reply").fill("a note")
        page.get_by_label("Reply").press("Enter")
        expect(page.locator('#messages .msg[data-kind="note"][data-state="acked"]')).to_have_count(
            1
        )
        expect(page.locator("#visitor-session")).to_be_visible()
        assert axe_console(page) == []
        for hash_ in ("#/stats", "#/admin/agents", "#/admin/tokens", "#/admin/canned"):
            page.goto(server.url + "/console" + hash_)
            expect(page.locator("#page-body table").first).to_be_visible()
            assert axe_console(page) == [], hash_
    finally:
        visitor.close()
