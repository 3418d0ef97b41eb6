"""What the browser tests share: the chat server process, a static host site, agents, and
helpers that drive the widget the way a visitor does.

Every wait is on a condition and bounded by ``TIMEOUT``; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email
import email.policy
import functools
import http.server
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Locator, Page, expect
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WIDGET = ROOT / "chatserver" / "web" / "static" / "widget" / "widget.js"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def artifacts_dir(folder: str = "") -> Path:
    """Where screenshots go (made if missing), or a folder of its own in there."""
    path = Path(os.environ.get("CHATSERVER_ARTIFACTS") or HERE / "artifacts") / folder
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ the chat server


@dataclass
class ChatServer:
    """``python -m chatserver serve --demo`` as a child process, restartable on its port."""

    data_dir: Path
    logs: Path
    allowed_origins: str = ""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    email: str = ""
    password: str = ""
    token: str = ""
    compliance: str = ""
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.starts += 1
        env = {
            **os.environ,
            "CHATSERVER_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
        }
        if self.allowed_origins:
            env["CHATSERVER_ALLOWED_ORIGINS"] = self.allowed_origins
        out_file = self.logs / f"stdout-{self.starts}.txt"
        err_file = self.logs / f"stderr-{self.starts}.txt"
        with out_file.open("w") as out, err_file.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatserver", "serve", "--demo", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while not self._healthy():
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                pytest.fail(f"the server exited with {code}:\n{err_file.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the server did not answer /healthz within 30 s")
            time.sleep(0.05)  # polling /healthz, bounded by the deadline above
        printed = out_file.read_text()
        login = re.search(r"demo agent login:\s+(\S+) / (\S+)", printed)
        token = re.search(r"demo agent API token:\s+(\S+)", printed)
        compliance = re.search(r"demo compliance API token:\s+(\S+)", printed)
        assert login and token and compliance, f"no demo login in the server's output:\n{printed}"
        self.email, self.password, self.token = login[1], login[2], token[1]
        self.compliance = compliance[1]

    def stop(self, sig: int = signal.SIGINT) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """The HTTP API with the demo agent's bearer token (or ``token``)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + "/api/v1" + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())

    def reply(self, cid: str, body: str, kind: str = "text") -> Any:
        """An agent's reply through the HTTP API."""
        return self.api(
            "POST",
            f"/conversations/{cid}/messages",
            {"client_msg_id": str(uuid.uuid4()), "body": body, "kind": kind},
        )

    def messages(self, cid: str, *, events: bool = False) -> list[dict[str, Any]]:
        """The thread as agents read it; without the event lines (assigned, resolved …)
        unless asked for."""
        items: list[dict[str, Any]] = self.api(
            "GET", f"/conversations/{cid}/messages?after_seq=0&limit=500"
        )["items"]
        return [m for m in items if events or m["kind"] != "event"]

    def publish_policy(self, version: str) -> None:
        """A new privacy notice version, written to the store the server reads on each hello."""
        from chatserver.clock import Clock
        from chatserver.store import store_from_url

        async def publish() -> None:
            store = store_from_url("sqlite:///" + str(self.data_dir / "chat.db"))
            await store.open()
            try:
                await store.publish_policy(version, "/demo/privacy", Clock().now_us())
            finally:
                await store.close()

        # Playwright's sync API keeps an event loop in this thread: run the store in another.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(publish())).result(timeout=TIMEOUT)


# ------------------------------------------------------------------ a host site on another origin


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class StaticSite:
    """A plain web server on its own port (another origin than the chat server's)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=TIMEOUT)

    def page(
        self,
        name: str,
        chat: ChatServer,
        *,
        attrs: str = "",
        lang: str | None = "en",
        head: str = "",
        body: str = "",
    ) -> str:
        """Write a host page that embeds the chat server's widget; answers its URL."""
        lang_attr = f' lang="{lang}"' if lang else ""
        html = f"""<!doctype html>
<html{lang_attr}>
<head><meta charset="utf-8"><meta name="color-scheme" content="light dark"><title>Host page {name}</title>{head}</head>
<body>
<main><h1>Another company's page</h1><p>{name}</p>{body}</main>
<script src="{chat.url}/widget.js" data-site="demo" {attrs} async></script>
</body>
</html>
"""
        (self.root / name).write_text(html)
        return f"{self.origin}/{name}"


# ------------------------------------------------------------------ an agent on the agent socket


class SocketClient:
    """A raw socket that sends JSON frames and reads until one matches (every frame kept)."""

    ws: ClientConnection

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    def frame(self, **fields: Any) -> None:
        self.ws.send(json.dumps(fields))

    def until(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read frames until one matches, within TIMEOUT; an error frame fails the test."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching frame within the timeout")
            frame = json.loads(self.ws.recv(timeout=remaining))
            self.seen.append(frame)
            if frame.get("type") == "error":
                raise AssertionError(f"the server answered an error: {frame}")
            if match(frame):
                return frame  # type: ignore[no-any-return]


class Agent(SocketClient):
    """The demo agent (a human agent, so visitors see someone online) on a raw agent socket."""

    def watch(self, cid: str) -> None:
        self.frame(type="watch", conversation_id=cid)
        self.until(lambda f: f["type"] == "watching" and f["conversation_id"] == cid)

    def send(self, cid: str, body: str, kind: str = "text") -> dict[str, Any]:
        cmid = str(uuid.uuid4())
        frame: dict[str, Any] = {
            "type": "send",
            "client_msg_id": cmid,
            "conversation_id": cid,
            "body": body,
        }
        if kind != "text":
            frame["kind"] = kind
        self.ws.send(json.dumps(frame))
        return self.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == cmid)


@contextlib.contextmanager
def agent_online(server: ChatServer) -> Iterator[Agent]:
    """An agent socket for the length of the block; subscribed to every conversation."""
    with connect(
        server.ws_url + "/ws/agent",
        additional_headers={"Authorization": f"Bearer {server.token}"},
        open_timeout=TIMEOUT,
    ) as ws:
        agent = Agent(ws)
        # The answer to hello comes after the socket counted as an agent online.
        agent.frame(type="hello")
        agent.until(lambda f: f["type"] == "welcome")
        agent.frame(type="subscribe", inbox="all")
        agent.until(lambda f: f["type"] == "subscribed")
        yield agent


# ------------------------------------------------------------------ the widget, as a visitor


def load(page: Page, url: str) -> None:
    """Open a host page and record what the widget reports through its public API."""
    page.goto(url)
    page.wait_for_function("() => !!window.ChatWidget")
    record(page)


def record(page: Page) -> None:
    page.evaluate(
        """() => {
            window.__chat = []; window.__analytics = [];
            ChatWidget.on('message', m => window.__chat.push(m));
            ChatWidget.on('analytics', e => window.__analytics.push(e));
        }"""
    )


def panel(page: Page) -> Locator:
    return page.locator("#cs-panel")


def launcher(page: Page) -> Locator:
    return page.get_by_role("button", name=LAUNCHER)


def message_box(page: Page) -> Locator:
    return page.locator("#cs-input")


def email_box(page: Page) -> Locator:
    return page.locator("#cs-email")


def open_chat(page: Page, *, consent: bool, accept: str = ACCEPT, name: str = LAUNCHER) -> None:
    """Click the launcher; accept the privacy notice if it must be shown."""
    page.get_by_role("button", name=name).click()
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    accept_notice(page, consent=consent, accept=accept)


def accept_notice(page: Page, *, consent: bool, accept: str = ACCEPT) -> None:
    button = page.get_by_role("button", name=accept)
    if consent:
        expect(button).to_be_visible()
        button.click()
        expect(panel(page)).to_have_attribute("data-conn", "ready")
    expect(button).to_be_hidden()


def visitor_send(page: Page, text: str) -> None:
    message_box(page).fill(text)
    message_box(page).press("Enter")


def conversation_id(page: Page) -> str:
    page.wait_for_function("() => window.__chat.some(m => m.author.role === 'visitor')")
    return str(
        page.evaluate("() => window.__chat.find(m => m.author.role === 'visitor').conversation_id")
    )


def bubbles(page: Page) -> Locator:
    """The conversation's messages (not the widget's own notes)."""
    return page.locator("#cs-panel .m:not(.sys)")


def bubble_texts(page: Page) -> list[str]:
    return bubbles(page).locator(".tx").all_inner_texts()


def own_acked(page: Page) -> Locator:
    return page.locator('#cs-panel .m.me[data-state="acked"]')


def focused(page: Page) -> str:
    """What has the keyboard focus, looking into the widget's shadow root."""
    return str(
        page.evaluate(
            """() => {
                let e = document.activeElement;
                while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
                if (!e) return '';
                return e.id || e.getAttribute('aria-label') || e.textContent || e.tagName;
            }"""
        )
    )


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations inside the widget (its open shadow root)."""
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"axe-core is missing at {AXE}: run `npm ci --prefix tests/browser`")
        pytest.skip(
            f"axe-core is not installed ({AXE} missing): run `npm ci --prefix tests/browser`"
        )
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run({include: [['#chatserver-widget']]},
                                    {resultTypes: ['violations', 'passes']});
            return {
                violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary}))})),
                checked: r.passes.map(p => p.id),
            };
        }"""
    )
    # Make sure axe looked inside the shadow root: contrast and labels were checked there.
    assert "color-contrast" in result["checked"], result["checked"]
    assert "label" in result["checked"] or "aria-input-field-name" in result["checked"]
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


# ------------------------------------------------------------------ settings and mail


def start_with(server: ChatServer, settings: dict[str, str]) -> None:
    """Start the server with these ``CHATSERVER_<NAME>`` settings, for this start only."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in settings.items():
            env.setenv("CHATSERVER_" + name, value)
        server.start()


def mail_settings(server: ChatServer, smtp_port: int) -> dict[str, str]:
    """Email on, through the test's SMTP server; links point at the server itself."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Support <support@shop.example>",
        "PUBLIC_URL": server.url,
    }


class Inbox:
    """What the SMTP server received (its own thread), read with a bounded wait."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[list[str], EmailMessage]] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.put((list(envelope.rcpt_tos), message))
        return "250 OK"

    def next(self) -> tuple[list[str], EmailMessage]:
        return self.received.get(timeout=TIMEOUT)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port, and what it received."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
