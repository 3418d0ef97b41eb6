"""End to end in a real browser: the demo page, the widget and the agent console.

One real server (``python -m chatserver serve --demo``) and one headless Debian
Chromium for the whole module; each test gets fresh browser contexts (empty
storage, no cookies). Every wait is on a condition, bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# CI installs Chromium itself; there a missing browser is a failure, not a skip.
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        f"browser tests need Debian's Chromium at {CHROMIUM} "
        "(apt-get update && apt-get install -y chromium)",
        allow_module_level=True,
    )
pytest.importorskip("playwright", reason="browser tests need the playwright package")

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    WebSocket,
    expect,
    sync_playwright,
)
from websockets.sync.client import ClientConnection, connect  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT = 15.0  # seconds, for every single wait
LAUNCHER = "Chat with us"
ACCEPT = "OK, start chat"


# ------------------------------------------------------------------ the server


@dataclass
class DemoServer:
    url: str
    email: str
    password: str
    token: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The HTTP API with the demo agent's bearer token."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + "/api/v1" + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    data_dir = tmp_path_factory.mktemp("chatserver-data")
    logs = tmp_path_factory.mktemp("chatserver-logs")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CHATSERVER_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    with (logs / "stdout.txt").open("w") as out, (logs / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatserver", "serve", "--demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(
                    f"the server exited with {proc.returncode}:\n"
                    + (logs / "stderr.txt").read_text()[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /healthz within 30 s")
            time.sleep(0.05)  # polling /healthz, bounded by the deadline above
        printed = (logs / "stdout.txt").read_text()
        login = re.search(r"demo agent login:\s+(\S+) / (\S+)", printed)
        token = re.search(r"demo agent API token:\s+(\S+)", printed)
        assert login and token, f"no demo login in the server's output:\n{printed}"
        yield DemoServer(url, login[1], login[2], token[1])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Fresh browser contexts (a new visitor or agent each), closed after the test."""
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(locale="en-US")
        context.set_default_timeout(TIMEOUT * 1000)
        made.append(context)
        return context

    expect.set_options(timeout=TIMEOUT * 1000)
    yield make
    for context in made:
        context.close()


# ------------------------------------------------------------------ helpers


def load_demo(page: Page, server: DemoServer) -> None:
    page.goto(server.url + "/demo")
    page.wait_for_function("() => !!window.ChatWidget")
    # Record what the widget reports through its public API (its `message` event).
    page.evaluate(
        "() => { window.__chat = []; window.ChatWidget.on('message', m => window.__chat.push(m)); }"
    )


def panel(page: Page) -> Any:
    return page.locator("#cs-panel")


def open_chat(page: Page, *, consent: bool) -> None:
    """Click the launcher; accept the privacy notice if it must be shown."""
    page.get_by_role("button", name=LAUNCHER).click()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    accept = page.get_by_role("button", name=ACCEPT)
    if consent:
        expect(accept).to_be_visible()
        accept.click()
        expect(panel(page)).to_have_attribute("data-conn", "ready")
    expect(accept).to_be_hidden()


def visitor_send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def conversation_id(page: Page) -> str:
    page.wait_for_function("() => window.__chat.some(m => m.author.role === 'visitor')")
    return str(
        page.evaluate("() => window.__chat.find(m => m.author.role === 'visitor').conversation_id")
    )


def bubbles(page: Page) -> Any:
    return page.locator("#cs-panel .m")


def bubble_texts(page: Page) -> list[str]:
    return page.locator("#cs-panel .m > span:not(.t)").all_inner_texts()


def own_acked(page: Page) -> Any:
    return page.locator('#cs-panel .m.me[data-state="acked"]')


def frame_until(ws: ClientConnection, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read agent-socket frames until one matches, within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no matching frame within the timeout")
        frame = json.loads(ws.recv(timeout=remaining))
        if frame.get("type") == "error":
            raise AssertionError(f"the server answered an error: {frame}")
        if match(frame):
            return frame  # type: ignore[no-any-return]


def agent_socket(server: DemoServer) -> ClientConnection:
    return connect(
        server.ws_url + "/ws/agent",
        additional_headers={"Authorization": f"Bearer {server.token}"},
        open_timeout=TIMEOUT,
    )


def agent_send(ws: ClientConnection, cid: str, body: str, kind: str = "text") -> dict[str, Any]:
    cmid = str(uuid.uuid4())
    frame: dict[str, Any] = {
        "type": "send",
        "client_msg_id": cmid,
        "conversation_id": cid,
        "body": body,
    }
    if kind != "text":
        frame["kind"] = kind
    ws.send(json.dumps(frame))
    return frame_until(ws, lambda f: f["type"] == "ack" and f["client_msg_id"] == cmid)


# ------------------------------------------------------------------ tests


def test_page_load_opens_nothing_until_the_launcher_is_clicked(
    server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    context = new_context()
    page = context.new_page()
    sockets: list[WebSocket] = []
    requests: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.on("request", lambda r: requests.append(r.url))

    load_demo(page, server)
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("button", name=LAUNCHER)).to_be_visible()

    # P11: loading the page made no socket, no storage, no cookie, no other request.
    assert sockets == []
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
    assert context.cookies() == []
    paths = {r.removeprefix(server.url).split("?")[0] for r in requests}
    assert paths <= {"/demo", "/widget.js", "/favicon.ico"}, paths

    with page.expect_websocket() as opened:
        page.get_by_role("button", name=LAUNCHER).click()
    assert opened.value.url == server.ws_url + "/ws/visitor"
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    # The privacy notice comes before the first message (P9); the socket is one.
    notice = page.get_by_role("link", name="privacy notice")
    expect(notice).to_be_visible()
    assert len(sockets) == 1
    # Only now, after the visitor opened the chat, is the visitor token kept.
    stored = page.evaluate("() => Object.keys(localStorage)")
    assert stored == ["chatserver.visitor"]
    assert page.evaluate("() => sessionStorage.length") == 0
    # The notice links to the policy the welcome named, on the chat server's origin.
    href = notice.get_attribute("href") or ""
    assert href.startswith(server.url + "/"), href
    assert context.request.get(href).ok


def test_visitor_and_agent_talk_and_notes_stay_internal(
    server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    load_demo(page, server)
    with agent_socket(server) as agent:
        agent.send(json.dumps({"type": "subscribe", "inbox": "all"}))
        frame_until(agent, lambda f: f["type"] == "subscribed")

        open_chat(page, consent=True)
        visitor_send(page, "Hello, where is my order? https://shop.example/orders/7")
        expect(own_acked(page)).to_have_count(1)
        link = page.locator("#cs-panel .m.me a")
        expect(link).to_have_attribute("href", "https://shop.example/orders/7")
        cid = conversation_id(page)

        # The new conversation reached the agent's inbox live.
        frame_until(agent, lambda f: f["type"] == "conversation" and f["id"] == cid)
        agent.send(json.dumps({"type": "watch", "conversation_id": cid}))
        frame_until(agent, lambda f: f["type"] == "watching" and f["conversation_id"] == cid)

        agent.send(json.dumps({"type": "typing", "conversation_id": cid, "state": True}))
        expect(page.get_by_text("Demo Agent is typing")).to_be_visible()

        agent_send(agent, cid, "Hi! <b>Let me check.</b>")
        agent_send(agent, cid, "INTERNAL: customer asked twice", kind="note")
        agent_send(agent, cid, "It ships tomorrow.")
        # Message text is text, never markup.
        expect(page.get_by_text("Hi! <b>Let me check.</b>")).to_be_visible()
        expect(page.get_by_text("It ships tomorrow.")).to_be_visible()
        # The note's seq lies between the two replies: had it reached the widget,
        # it would be there by now.
        expect(page.get_by_text("INTERNAL")).to_have_count(0)
        expect(bubbles(page)).to_have_count(3)

        # And the visitor's next message reaches the agent.
        visitor_send(page, "Thanks!")
        got = frame_until(agent, lambda f: f["type"] == "message" and f["body"] == "Thanks!")
        assert got["author"]["role"] == "visitor"
        assert got["conversation_id"] == cid

    stored = server.api("GET", f"/conversations/{cid}/messages?after_seq=0&limit=500")["items"]
    assert [m["kind"] for m in stored] == ["text", "text", "note", "text", "text"]


def test_reload_restores_history_without_duplicates(
    server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = new_context().new_page()
    load_demo(page, server)
    open_chat(page, consent=True)
    visitor_send(page, "first question")
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)
    server.api(
        "POST",
        f"/conversations/{cid}/messages",
        {"client_msg_id": str(uuid.uuid4()), "body": "first answer"},
    )
    server.api(
        "POST",
        f"/conversations/{cid}/messages",
        {"client_msg_id": str(uuid.uuid4()), "body": "private remark", "kind": "note"},
    )
    expect(page.get_by_text("first answer")).to_be_visible()
    visitor_send(page, "second question")
    expect(own_acked(page)).to_have_count(2)
    page.get_by_label("Message").fill("a draft in progress")
    expected = ["first question", "first answer", "second question"]

    for _ in range(2):  # a reload, then another: nothing doubles up
        page.reload()
        page.wait_for_function("() => !!window.ChatWidget")
        open_chat(page, consent=False)
        expect(bubbles(page)).to_have_count(len(expected))
        assert bubble_texts(page) == expected
        # P12: the unsent draft survived the navigation (sessionStorage).
        expect(page.get_by_label("Message")).to_have_value("a draft in progress")


def test_console_agent_sees_new_conversation_live_and_replies(
    server: DemoServer, new_context: Callable[[], BrowserContext]
) -> None:
    console = new_context().new_page()
    console.goto(server.url + "/console")
    console.get_by_label("Email").fill(server.email)
    console.get_by_label("Password").fill("not the password")
    console.get_by_role("button", name="Sign in").click()
    expect(console.get_by_role("alert")).to_have_text("Wrong email or password.")
    console.get_by_label("Password").fill(server.password)
    console.get_by_role("button", name="Sign in").click()
    expect(console.get_by_role("heading", name="Conversations")).to_be_visible()
    # The list is loaded and the socket subscribed: what comes next arrives live.
    expect(console.locator("#conversations")).to_have_attribute("aria-busy", "false")
    expect(console.locator("body")).to_have_attribute("data-socket", "live")
    cookies = {c["name"]: c for c in console.context.cookies()}
    assert cookies["chatserver_session"]["httpOnly"]

    visitor = new_context().new_page()
    load_demo(visitor, server)
    open_chat(visitor, consent=True)
    visitor_send(visitor, "Can a human help me?")
    expect(own_acked(visitor)).to_have_count(1)
    cid = conversation_id(visitor)

    # Appears in the console's list without a reload.
    item = console.locator(f'#conversations button[data-id="{cid}"]')
    expect(item).to_be_visible()
    item.click()
    expect(console.locator("#messages")).to_contain_text("Can a human help me?")

    console.get_by_role("button", name="Assign to me").click()
    expect(console.get_by_role("button", name="Assigned to you")).to_be_visible()

    console.get_by_label("Reply").fill("Yes, I am here.")
    console.get_by_label("Reply").press("Enter")
    expect(visitor.get_by_text("Yes, I am here.")).to_be_visible()

    console.get_by_label("Internal note").check()
    console.get_by_label("Reply").fill("NOTE: verify identity first")
    console.get_by_role("button", name="Add note").click()
    note = console.locator('#messages .msg.note[data-state="acked"]')
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
    assert server.api("GET", f"/conversations/{cid}")["status"] == "resolved"

    console.get_by_role("button", name="Sign out").click()
    expect(console.get_by_role("button", name="Sign in")).to_be_visible()
