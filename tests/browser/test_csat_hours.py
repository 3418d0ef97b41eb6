"""Satisfaction ratings and business hours end to end, in Chromium against a demo server of
their own: an agent resolves, the widget asks for a rating (an accessible radio group and a
comment), the visitor rates, and the console's stats page shows the aggregates; outside
business hours the widget offers the offline form, the server's automatic reply says when
someone will answer, and reopening the desk reaches an open widget live."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from websockets.sync.client import connect

from chatserver.business_hours import WEEKDAYS
from tests.browser.support import (
    AXE,
    TIMEOUT,
    ChatServer,
    SocketClient,
    agent_online,
    axe_violations,
    conversation_id,
    email_box,
    load,
    open_chat,
    own_acked,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """A demo server of its own: these tests change its business hours."""
    chat = ChatServer(
        data_dir=tmp_path_factory.mktemp("csat-data"),
        logs=tmp_path_factory.mktemp("csat-logs"),
    )
    chat.start()
    try:
        yield chat
    finally:
        chat.stop()


def rate_from_a_socket(server: ChatServer, score: int) -> None:
    """Another visitor, on a raw socket, writes, is resolved by the agent, and rates."""

    def hello(extra: dict[str, Any]) -> tuple[SocketClient, dict[str, Any]]:
        ws = connect(
            server.ws_url + "/ws/visitor",
            origin=server.url,  # type: ignore[arg-type]
            open_timeout=TIMEOUT,
            legacy=True,
        )
        client = SocketClient(ws)
        client.frame(type="hello", **extra)
        return client, client.until(lambda f: f["type"] == "welcome")

    first, welcome = hello({})
    first.ws.close()
    visitor, _ = hello(
        {
            "visitor_token": welcome["visitor_token"],
            "consent": {"version": welcome["policy"]["version"]},
        }
    )
    with visitor.ws:
        cmid = str(uuid.uuid4())
        visitor.frame(type="send", client_msg_id=cmid, body="a question")
        cid = visitor.until(lambda f: f["type"] == "ack")["conversation_id"]
        server.api("PATCH", f"/conversations/{cid}", {"status": "resolved"})
        visitor.until(lambda f: f["type"] == "conversation" and f["status"] == "resolved")
        visitor.frame(type="rate", conversation_id=cid, score=score)
        visitor.until(lambda f: f["type"] == "rated")


def axe_page(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on a whole console page."""
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"axe-core is missing at {AXE}: run `npm ci --prefix tests/browser`")
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


def sign_in(page: Page, server: ChatServer, hash_: str) -> None:
    page.goto(server.url + "/console" + hash_)
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "live")


def test_the_widget_asks_for_a_rating_and_the_stats_show_it(
    server: ChatServer, new_context: NewContext, artifacts: Path
) -> None:
    """Resolved by the agent, the conversation's widget asks "How was your chat?" with five
    labelled radios (mouse and arrow keys both work) and a comment; `rated` brings thanks.
    With five more ratings the console's stats page shows the count, average, distribution
    and agent, small counts withheld."""
    page = new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with agent_online(server) as agent:
        load(page, server.url + "/demo")
        open_chat(page, consent=True)
        expect(page.get_by_role("group", name="How was your chat?")).to_have_count(0)
        visitor_send(page, "My parcel is late")
        expect(own_acked(page)).to_have_count(1)
        cid = conversation_id(page)
        agent.until(lambda f: f["type"] == "conversation" and f["id"] == cid)
        server.api("PATCH", f"/conversations/{cid}", {"status": "resolved"})

        group = page.get_by_role("group", name="How was your chat?")
        expect(group).to_be_visible()
        radios = group.get_by_role("radio")
        expect(radios).to_have_count(5)
        expect(group.get_by_role("radio", name="1 Very poor")).to_be_visible()
        expect(group.get_by_role("radio", name="5 Very good")).to_be_visible()
        # Sending without a score says what is missing, and sends nothing.
        page.get_by_role("button", name="Send rating").click()
        expect(page.get_by_text("Choose a score from 1 to 5.")).to_be_visible()
        group.locator("label").filter(has_text="3").click()
        expect(group.get_by_role("radio", name="3 OK")).to_be_checked()
        page.keyboard.press("ArrowRight")  # a radio group moves with the arrow keys
        expect(group.get_by_role("radio", name="4 Good")).to_be_checked()
        expect(group.get_by_role("radio", name="4 Good")).to_be_focused()
        page.get_by_label("Comment (optional)").fill("Quick answer, thank you")
        page.screenshot(path=str(artifacts / "widget-rating.png"))
        assert axe_violations(page) == []
        page.get_by_role("button", name="Send rating").click()
        expect(
            page.get_by_role("status").filter(has_text="Thanks for your feedback!")
        ).to_be_visible()
        expect(group).to_have_count(0)

    rating = server.api("GET", f"/conversations/{cid}/rating")
    assert (rating["score"], rating["comment"]) == (4, "Quick answer, thank you")

    for _ in range(5):
        rate_from_a_socket(server, 5)
    csat = server.api("GET", "/stats")["csat"]
    assert (csat["ratings"], csat["average"]) == (6, 4.83)

    console = new_context().new_page()
    sign_in(console, server, "#/stats")
    summary = console.locator("#stats-csat-summary")
    expect(summary).to_contain_text("Ratings6")
    expect(summary).to_contain_text("Average4.83 of 5")
    expect(summary).to_contain_text("Satisfied (4 or 5)100 %")
    rows = console.locator("#stats-csat-distribution tbody tr")
    expect(rows).to_have_text(["10", "20", "30", "4<5", "55"])  # one 4 is withheld
    # The first conversation went to the agent online (auto-assignment): one rating, withheld.
    expect(console.locator("#stats-csat-agents tbody tr")).to_have_text(
        ["Demo Agent<5— (under 5 ratings)—"]
    )
    console.locator("#stats-csat").screenshot(path=str(artifacts / "console-stats-csat.png"))
    assert axe_page(console) == []
    assert "Quick answer" not in console.locator("#page-body").inner_text()  # aggregates only
    # The conversation's own agents see the rating in the thread.
    console.goto(server.url + "/console#/c/" + cid)
    expect(console.locator("#thread-rating")).to_have_text("Rated 4 of 5: Quick answer, thank you")
    assert errors == []


def closed_now() -> dict[str, Any]:
    """Open around the clock, except today and tomorrow in Oslo: closed now, for a while."""
    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    return {
        "enabled": True,
        "time_zone": "Europe/Oslo",
        "weekly": {day: [{"start": "00:00", "end": "24:00"}] for day in WEEKDAYS},
        "closed_dates": [today.isoformat(), (today + timedelta(days=1)).isoformat()],
    }


def test_outside_hours_the_widget_offers_the_form_and_gets_the_automatic_reply(
    server: ChatServer, new_context: NewContext, artifacts: Path
) -> None:
    """Closed, even with an agent online: the widget says so and offers the offline form; the
    message and email go, and the server's reply says when someone answers. Saving open hours
    turns another visitor's open widget back into a plain chat at once."""
    saved = server.api("PUT", "/business-hours", closed_now())
    assert saved["open_now"] is False
    try:
        with agent_online(server):
            page = new_context().new_page()
            load(page, server.url + "/demo")
            open_chat(page, consent=True)
            expect(email_box(page)).to_be_visible()
            expect(page.get_by_text("We are closed right now.")).to_be_visible()
            email_box(page).fill("kari@example.com")
            visitor_send(page, "Can you call me back?")
            expect(own_acked(page)).to_have_count(1)
            reply = page.locator("#cs-panel .m.sys").filter(has_text="Someone will answer")
            expect(reply).to_be_visible()
            expect(reply).to_contain_text("at 00:00 (Europe/Oslo time)")
            page.screenshot(path=str(artifacts / "widget-closed.png"))
            cid = conversation_id(page)
            system = [m for m in server.messages(cid) if m["author"]["role"] == "system"]
            assert len(system) == 1, json.dumps(system)

            other = new_context(locale="nb-NO").new_page()
            load(other, server.url + "/demo")
            open_chat(other, consent=True)
            expect(email_box(other)).to_be_visible()
            server.api("PUT", "/business-hours", {**closed_now(), "enabled": False})
            expect(email_box(other)).to_be_hidden()  # presence {open_now: true}, live
    finally:
        server.api("PUT", "/business-hours", {"enabled": False})


def test_admins_edit_business_hours_in_the_console(
    server: ChatServer, new_context: NewContext
) -> None:
    """The admin page shows the schedule; saving hours, a time zone and closed dates stores
    them; a bad time zone is refused with the server's reason and changes nothing."""
    page = new_context().new_page()
    sign_in(page, server, "#/admin/hours")
    expect(page.get_by_role("heading", name="Business hours")).to_be_visible()
    expect(page.locator("#hours-status")).to_have_text("Always open (business hours are off)")
    assert axe_page(page) == []
    page.get_by_label("Apply business hours").check()
    page.get_by_label("Monday").fill("09:00-12:00, 13:00-17:00")
    page.get_by_label("Saturday").fill("22:00-02:00")
    page.get_by_label("Closed dates").fill("2026-12-25\n2026-12-24")
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save business hours").click()
    expect(page.locator("#hours-error")).to_contain_text("The server could not accept that")
    expect(page.locator("#hours-error")).to_contain_text("Mars/Olympus")
    assert server.api("GET", "/business-hours")["enabled"] is False

    page.get_by_label("Time zone").fill("Europe/Oslo")
    page.get_by_role("button", name="Save business hours").click()
    expect(page.locator("#hours-status")).to_have_attribute("data-saved", re.compile(r"\dZ$"))
    expect(page.locator("#hours-error")).to_have_text("")
    expect(page.get_by_label("Closed dates")).to_have_value("2026-12-24\n2026-12-25")
    saved = server.api("GET", "/business-hours")
    assert saved["enabled"] is True
    assert saved["weekly"]["monday"] == [
        {"start": "09:00", "end": "12:00"},
        {"start": "13:00", "end": "17:00"},
    ]
    assert saved["weekly"]["saturday"] == [{"start": "22:00", "end": "02:00"}]
    assert saved["weekly"]["tuesday"] == []
    assert saved["closed_dates"] == ["2026-12-24", "2026-12-25"]
    expect(page.locator("#hours-status")).to_contain_text(
        "Open now" if saved["open_now"] else "Closed now"
    )
    server.api("PUT", "/business-hours", {"enabled": False})
