"""Admins manage canned responses and publish privacy policy versions (P9)."""

from __future__ import annotations

import pytest

from tests.helpers import Server
from tests.web.test_openapi import assert_conforms


async def test_canned_responses_crud(server: Server) -> None:
    """Admins add, change and delete canned responses; agents read them; shortcuts are unique."""
    admin = await server.token("admin")
    agent = await server.token("agent")
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/canned-responses", json={"shortcut": "hours", "body": "We are open 8-16."}
        )
        assert r.status_code == 201
        assert_conforms("post", "/canned-responses", 201, r.json())
        hours = r.json()
        r = await http.post("/api/v1/canned-responses", json={"shortcut": "hours", "body": "dup"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        r = await http.put(
            f"/api/v1/canned-responses/{hours['id']}",
            json={"shortcut": "open", "body": "8-17 now."},
        )
        assert r.status_code == 200 and r.json()["shortcut"] == "open"
    async with server.http(agent) as http:
        r = await http.get("/api/v1/canned-responses")
        assert_conforms("get", "/canned-responses", 200, r.json())
        assert [(c["shortcut"], c["body"]) for c in r.json()["items"]] == [("open", "8-17 now.")]
        r = await http.post("/api/v1/canned-responses", json={"shortcut": "x", "body": "y"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    async with server.http(admin) as http:
        assert (await http.delete(f"/api/v1/canned-responses/{hours['id']}")).status_code == 204
        r = await http.delete(f"/api/v1/canned-responses/{hours['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await http.get("/api/v1/canned-responses")).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"shortcut": "Has Space", "body": "x"},
        {"shortcut": "", "body": "x"},
        {"shortcut": "ok", "body": ""},
        {"shortcut": "ok", "body": "x" * 5001},
        {"shortcut": "ok"},
        {"shortcut": "ok", "body": "x", "extra": 1},
    ],
)
async def test_bad_canned_responses(server: Server, body: dict[str, object]) -> None:
    """Malformed canned responses are bad_request and nothing is stored."""
    async with server.http(await server.token("admin")) as http:
        r = await http.post("/api/v1/canned-responses", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        assert (await http.get("/api/v1/canned-responses")).json()["items"] == []


async def test_publishing_a_policy_asks_visitors_again(server: Server) -> None:
    """A new version becomes current; a visitor who accepted the old one is asked again once."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/policies", json={"version": "2019-06-01", "url": "https://x/p1"}
        )
        assert r.status_code == 201
        assert_conforms("post", "/policies", 201, r.json())
    async with server.visitor(hello={"consent": {"version": "2019-06-01"}}) as (_, welcome):
        assert welcome["policy"] == {
            "version": "2019-06-01",
            "url": "https://x/p1",
            "accepted": True,
        }
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/policies", json={"version": "2026-12-01", "url": "https://x/p2"}
        )
        assert r.status_code == 201
        again = await http.post(
            "/api/v1/policies", json={"version": "2026-12-01", "url": "https://x/p2"}
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        listing = (await http.get("/api/v1/policies")).json()
        assert_conforms("get", "/policies", 200, listing)
        assert [(p["version"], p["current"]) for p in listing["items"]] == [
            ("2026-12-01", True),
            ("2019-06-01", False),
        ]
    hello = {"visitor_token": welcome["visitor_token"]}
    async with server.visitor(hello=hello) as (_, asked):
        assert asked["policy"] == {
            "version": "2026-12-01",
            "url": "https://x/p2",
            "accepted": False,
        }
    async with server.http(await server.token("agent")) as http:
        r = await http.post("/api/v1/policies", json={"version": "x", "url": "y"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
