"""The console's webhooks page in a browser: an admin registers an endpoint (a real receiver
on localhost), sees its secret once, sends a test, and reads the retries in the delivery log.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from chatserver.webhooks.signing import InvalidSignature, verify_signature
from tests.browser.support import AXE, TIMEOUT, ChatServer

NewContext = Callable[..., BrowserContext]


class Receiver(http.server.ThreadingHTTPServer):
    """Answers 500 to a delivery's first attempt and 204 to the next; 400 if unsigned."""

    secret = ""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.attempts: dict[str, int] = {}
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait_accepted(self, count: int) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.accepted) >= count, TIMEOUT)
            return list(self.accepted)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        receiver = self.server
        try:
            header = self.headers.get("Chatserver-Signature", "")
            verify_signature(receiver.secret, header, body, time.time())
            delivery = json.loads(body)
        except (InvalidSignature, ValueError) as exc:
            with receiver.changed:
                receiver.refused.append(str(exc))
                receiver.changed.notify_all()
            self.send_response(400)
            self.end_headers()
            return
        with receiver.changed:
            seen = receiver.attempts.get(delivery["id"], 0)
            receiver.attempts[delivery["id"]] = seen + 1
            if seen:
                receiver.accepted.append(delivery)
            receiver.changed.notify_all()
        self.send_response(500 if not seen else 204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """A demo server of its own that may reach the receiver on 127.0.0.1, retrying fast."""
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("webhooks-data"),
        logs=tmp_path_factory.mktemp("webhooks-logs"),
    )
    settings = {"CHATSERVER_WEBHOOK_ALLOW_PRIVATE": "true", "CHATSERVER_WEBHOOK_RETRY_BASE": "0.2"}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        chat.start()
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
    try:
        yield chat
    finally:
        chat.stop()


def sign_in(page: Page, server: ChatServer) -> None:
    page.goto(server.url + "/console")
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "live")


def test_an_admin_registers_a_webhook_and_reads_its_delivery_log(
    server: ChatServer, receiver: Receiver, new_context: NewContext, artifacts: Path
) -> None:
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, server)
    page.get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    expect(page.locator("#page-body")).to_contain_text("No webhooks yet.")

    form = page.locator("#add-webhook")
    form.get_by_label("Endpoint URL").fill(receiver.url)
    form.get_by_label("Description").fill("CRM <b>sync</b>")
    form.get_by_role("button", name="Add webhook").click()
    # No event ticked: the server's refusal shows in the form.
    expect(form.locator(".form-error")).to_have_text("Choose at least one event.")
    form.get_by_label("A message is written (message.created)").check()
    form.get_by_role("button", name="Add webhook").click()

    secret = page.locator("#new-webhook-secret")
    expect(secret).to_have_text(re.compile(r"^whsec_\S{40,}$"))
    receiver.secret = secret.inner_text()
    row = page.locator("#page-body tr", has_text=receiver.url)
    expect(row).to_contain_text("message.created")
    expect(row).to_contain_text("ids and times only")
    expect(row).to_contain_text("CRM <b>sync</b>")  # as text, never as markup
    expect(page.get_by_role("region", name=f"Delivery log: {receiver.url}")).to_contain_text(
        "No deliveries yet."
    )

    page.get_by_role("button", name=f"Send test to {receiver.url}").click()
    [delivery] = receiver.wait_accepted(1)
    assert delivery["type"] == "webhook.test" and receiver.attempts[delivery["id"]] == 2
    page.wait_for_function(
        """async () => {
            const hooks = (await (await fetch('/api/v1/webhooks')).json()).items;
            const log = await (await fetch('/api/v1/webhooks/' + hooks[0].id + '/deliveries'))
                .json();
            return log.items.length === 1 && log.items[0].status === 'delivered';
        }"""
    )
    page.get_by_role("button", name="Refresh the delivery log").click()
    log = page.get_by_role("region", name=f"Delivery log: {receiver.url}")
    entry = log.locator("tbody tr")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("webhook.test")
    expect(entry).to_contain_text("delivered")
    expect(entry.locator(".attempts li")).to_have_count(2)
    expect(entry.locator(".attempts li").nth(0)).to_contain_text("HTTP 500")
    expect(entry.locator(".attempts li").nth(1)).to_contain_text("HTTP 204")
    page.screenshot(path=str(artifacts / "console-webhooks.png"), full_page=True)

    if AXE.exists():
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .filter(v => ['serious', 'critical'].includes(v.impact))
                .map(v => ({id: v.id, nodes: v.nodes.map(n => n.target)}))"""
        )
        assert violations == []

    # The secret was shown once: gone after leaving the page, and nowhere in it.
    page.get_by_role("link", name="Allowed origins").click()
    page.get_by_role("link", name="Webhooks").click()
    expect(row).to_be_visible()
    expect(page.locator("#new-webhook-secret")).to_have_count(0)
    assert receiver.secret not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete the webhook to {receiver.url}").click()
    expect(page.locator("#page-body")).to_contain_text("No webhooks yet.")
    assert server.api("GET", "/webhooks")["items"] == []
    assert receiver.refused == [] and errors == []
