"""The visitor panel: agents see device and pages; only admin and compliance see the IP (P4)."""

from __future__ import annotations

import pytest

from tests.helpers import Server
from tests.web.test_openapi import assert_conforms

PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


async def two_conversations(server: Server) -> tuple[str, str]:
    from websockets.asyncio.client import connect

    from tests.helpers import ORIGIN, Client

    ids = []
    token = None
    for page in ("https://shop.example/cart", "https://shop.example/help"):
        hello = {
            "type": "hello",
            "page": {"url": page, "title": "<b>Help</b>", "referrer": "https://search.example/"},
        }
        if token:
            hello["visitor_token"] = token
        async with connect(
            server.ws_url + "/ws/visitor", origin=ORIGIN, user_agent_header=PHONE_UA
        ) as ws:
            client = Client(ws)
            await client.send(**hello)
            token = (await client.expect("welcome"))["visitor_token"]
            await client.send(type="send", client_msg_id=page, body="hi")
            ids.append((await client.until("ack"))["conversation_id"])
    return ids[0], ids[1]


@pytest.mark.parametrize(
    ("role", "sees_ip"), [("agent", False), ("admin", True), ("compliance", True)]
)
async def test_panel_shows_device_and_pages_and_ip_by_role(
    server: Server, role: str, sees_ip: bool
) -> None:
    """Device class, browser, OS, page and referrer for all; the IP only for admin and compliance."""
    first, second = await two_conversations(server)
    async with server.http(await server.token(role)) as http:
        r = await http.get(f"/api/v1/conversations/{second}/visitor")
    assert r.status_code == 200, r.text
    assert_conforms("get", "/conversations/{id}/visitor", 200, r.json())
    panel = r.json()
    latest = panel["sessions"][0]
    assert (latest["device_class"], latest["os"], latest["browser"]) == (
        "mobile",
        "iOS",
        "Mobile Safari",
    )
    assert latest["page_url"] == "https://shop.example/help"
    assert latest["page_title"] == "<b>Help</b>"  # data, not markup: escaping is the page's job
    assert latest["referrer"] == "https://search.example/"
    assert [c["id"] for c in panel["conversations"]] == [first]
    for session in panel["sessions"]:
        assert ("ip" in session) is sees_ip
        if sees_ip:
            assert session["ip"] == "127.0.0.1"
    assert ("127.0.0.1" in r.text) is sees_ip


async def test_panel_errors(server: Server) -> None:
    """Unknown conversation is 404; no token is 401."""
    async with server.http(await server.token("agent")) as http:
        r = await http.get("/api/v1/conversations/nope/visitor")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    async with server.http() as http:
        r = await http.get("/api/v1/conversations/nope/visitor")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
