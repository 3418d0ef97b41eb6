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


async def add_human(server: Server, email: str, password: str) -> None:
    from chatserver.auth import hash_password

    await server.state.store.add_agent(
        agent_id="human-" + email,
        email=email,
        name="Human",
        role="agent",
        password_hash=await hash_password(password),
        now=1,
    )


async def test_repeated_failed_sign_ins_lock_the_email(server: Server) -> None:
    """After five wrong passwords even the right one waits: 429 with Retry-After."""
    await add_human(server, "kari@example.no", "the right password")
    async with server.http() as http:
        for _ in range(6):
            r = await http.post(
                "/console/login", json={"email": "kari@example.no", "password": "wrong"}
            )
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await http.post(
            "/console/login", json={"email": "Kari@Example.no", "password": "the right password"}
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # Another person's sign-in is not affected.
        await add_human(server, "ola@example.no", "another good one")
        r = await http.post(
            "/console/login", json={"email": "ola@example.no", "password": "another good one"}
        )
        assert r.status_code == 200


async def test_an_agent_changes_their_password(server: Server) -> None:
    """With the current password and the CSRF token the password changes; without, it does not."""
    await add_human(server, "kari@example.no", "the old password")
    async with server.http() as http:
        r = await http.post(
            "/console/login", json={"email": "kari@example.no", "password": "the old password"}
        )
        assert r.status_code == 200
        csrf = http.cookies["chatserver_csrf"]
        change = {"current": "the old password", "new": "a brand new passphrase"}
        r = await http.post("/console/password", json=change)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"  # no CSRF token
        r = await http.post(
            "/console/password",
            json={**change, "current": "not it"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403
        for weak in ("short", "kari.example", "password1234"):
            r = await http.post(
                "/console/password", json={**change, "new": weak}, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert (error["code"], error["field"]) == ("weak_password", "new")
            assert error["message"].startswith("The password is too")
        r = await http.post("/console/password", json=change, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
    async with server.http() as http:
        old = await http.post(
            "/console/login", json={"email": "kari@example.no", "password": "the old password"}
        )
        assert old.status_code == 401
        new = await http.post(
            "/console/login",
            json={"email": "kari@example.no", "password": "a brand new passphrase"},
        )
        assert new.status_code == 200


async def test_admins_allow_and_remove_origins_live(server: Server) -> None:
    """An origin an admin adds may open the visitor socket at once; removed, it may not."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    new = "https://partner.example"
    admin = await server.token("admin")
    with pytest.raises(InvalidStatus):
        async with connect(server.ws_url + "/ws/visitor", origin=new):  # type: ignore[arg-type]
            pass
    async with server.http(admin) as http:
        r = await http.post("/api/v1/origins", json={"origin": "HTTPS://Partner.Example:443/"})
        assert r.status_code == 201 and r.json() == {"origin": new, "source": "admin"}
        assert_conforms("post", "/origins", 201, r.json())
        listing = (await http.get("/api/v1/origins")).json()
        assert_conforms("get", "/origins", 200, listing)
        assert {"origin": new, "source": "admin"} in listing["items"]
        assert {"origin": "http://shop.example", "source": "settings"} in listing["items"]
    async with server.visitor(origin=new) as (_, welcome):
        assert welcome["visitor_id"]
    async with server.http(admin) as http:
        assert (await http.delete("/api/v1/origins", params={"origin": new})).status_code == 204
        r = await http.delete("/api/v1/origins", params={"origin": new})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url + "/ws/visitor", origin=new):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin",
    [
        "ftp://x.example",
        "https://x.example/path",
        "x.example",
        "https://",
        "https://a:b@x.example",
        "https://x.example:99999",
    ],
)
async def test_bad_origins_are_refused(server: Server, origin: str) -> None:
    """Only scheme://host[:port] is an origin; anything else is bad_request and nothing is added."""
    async with server.http(await server.token("admin")) as http:
        r = await http.post("/api/v1/origins", json={"origin": origin})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        items = (await http.get("/api/v1/origins")).json()["items"]
        assert all(i["source"] == "settings" for i in items)
