"""Admins manage agents; a deactivated agent is cut off at once."""

from __future__ import annotations

import pytest

from chatserver.auth import token_hash
from tests.helpers import Server
from tests.web.test_openapi import assert_conforms


async def agent_id(server: Server, token: str) -> str:
    found = await server.state.store.token(token_hash(token))
    assert found is not None
    return found.agent.id


async def test_admin_adds_lists_and_renames_agents(server: Server) -> None:
    """An admin adds an agent (who can then sign in), lists everyone, and renames them."""
    admin = await server.token("admin", name="Ada Admin")
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/agents",
            json={"email": "Kari@Example.no", "name": "Kari", "password": "long enough pw"},
        )
        assert r.status_code == 201, r.text
        assert_conforms("post", "/agents", 201, r.json())
        kari = r.json()
        assert kari["email"] == "kari@example.no" and kari["role"] == "agent" and kari["active"]
        r = await http.get("/api/v1/agents")
        assert_conforms("get", "/agents", 200, r.json())
        assert {"Ada Admin", "Kari"} <= {a["name"] for a in r.json()["items"]}
        r = await http.patch(f"/api/v1/agents/{kari['id']}", json={"name": "Kari N."})
        assert r.status_code == 200 and r.json()["name"] == "Kari N."
        again = await http.post(
            "/api/v1/agents",
            json={"email": "kari@example.no", "name": "Other", "password": "long enough pw"},
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    async with server.http() as anonymous:
        r = await anonymous.post(
            "/console/login", json={"email": "kari@example.no", "password": "long enough pw"}
        )
        assert r.status_code == 200 and r.json()["agent"]["name"] == "Kari N."


async def test_deactivating_an_agent_cuts_them_off_mid_session(server: Server) -> None:
    """A deactivated agent's open socket gets unauthorized and 1008; their token stops working."""
    admin = await server.token("admin")
    token = await server.token("agent", name="Leaving")
    async with server.agent(token) as agent:
        await agent.send(type="ping")
        await agent.until("pong")
        async with server.http(admin) as http:
            r = await http.patch(
                f"/api/v1/agents/{await agent_id(server, token)}", json={"active": False}
            )
            assert r.status_code == 200 and r.json()["active"] is False
        assert await agent.closed() == 1008
        assert any(f.get("code") == "unauthorized" for f in agent.seen)
    async with server.http(token) as http:
        r = await http.get("/api/v1/conversations")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_an_admin_cannot_lock_themselves_out(server: Server) -> None:
    """Deactivating or demoting oneself is a conflict."""
    admin = await server.token("admin")
    me = await agent_id(server, admin)
    async with server.http(admin) as http:
        for change in ({"active": False}, {"role": "agent"}):
            r = await http.patch(f"/api/v1/agents/{me}", json=change)
            assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        (
            "POST",
            "/api/v1/agents",
            {"email": "x@y.z", "name": "X", "password": "short"},
            400,
            "weak_password",
        ),
        (
            "POST",
            "/api/v1/agents",
            {"email": "x@y.z", "name": "X", "password": "password123456"},
            400,
            "weak_password",
        ),
        (
            "POST",
            "/api/v1/agents",
            {"email": "nope", "name": "X", "password": "long enough"},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/agents",
            {"email": "x@y.z", "name": "", "password": "long enough"},
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/agents",
            {"email": "x@y.z", "name": "X", "password": "long enough", "role": "root"},
            400,
            "bad_request",
        ),
        ("POST", "/api/v1/agents", {"name": "X", "password": "long enough"}, 400, "bad_request"),
        ("PATCH", "/api/v1/agents/nobody", {"name": "X"}, 404, "not_found"),
        ("PATCH", "/api/v1/agents/nobody", {"active": "no"}, 400, "bad_request"),
    ],
)
async def test_bad_agent_requests(
    server: Server, method: str, path: str, body: dict[str, object], status: int, code: str
) -> None:
    """Malformed agent changes get a stable code and change nothing."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        before = (await http.get("/api/v1/agents")).json()["items"]
        r = await http.request(method, path, json=body)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert (await http.get("/api/v1/agents")).json()["items"] == before


async def test_agents_see_each_other_without_emails(server: Server) -> None:
    """An agent may list the team (to transfer a conversation), but sees no emails."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        r = await http.post(
            "/api/v1/agents",
            json={"email": "kari@example.no", "name": "Kari", "password": "long enough pw"},
        )
        assert r.status_code == 201
    async with server.http(await server.token("agent")) as http:
        r = await http.get("/api/v1/agents")
    assert r.status_code == 200
    assert_conforms("get", "/agents", 200, r.json())
    assert "Kari" in {a["name"] for a in r.json()["items"]}
    assert all(a["email"] is None for a in r.json()["items"])
    async with server.http(await server.token("compliance")) as http:
        r = await http.get("/api/v1/agents")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("role", ["agent", "compliance"])
async def test_only_admins_manage_agents(server: Server, role: str) -> None:
    """Agents and compliance officers get 403 forbidden on adding and changing agents."""
    token = await server.token(role)
    target = await agent_id(server, token)
    async with server.http(token) as http:
        for method, path, body in (
            ("POST", "/api/v1/agents", {"email": "a@b.c", "name": "A", "password": "long enough"}),
            ("PATCH", f"/api/v1/agents/{target}", {"name": "Me"}),
        ):
            r = await http.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_admin_creates_lists_and_revokes_tokens(server: Server) -> None:
    """A token made through the API works for its bot; revoked, its open socket is cut off."""
    admin = await server.token("admin")
    async with server.http(admin) as http:
        r = await http.post("/api/v1/tokens", json={"name": "Triage bot"})
        assert r.status_code == 201, r.text
        assert_conforms("post", "/tokens", 201, r.json())
        made = r.json()
        assert made["agent"]["kind"] == "bot" and made["agent"]["role"] == "agent"
        listing = (await http.get("/api/v1/tokens")).json()
        assert_conforms("get", "/tokens", 200, listing)
        assert made["id"] in [t["id"] for t in listing["items"]]
        assert made["token"] not in str(listing)  # the secret is shown once only
    async with server.agent(made["token"]) as bot:
        await bot.send(type="ping")
        await bot.until("pong")
        async with server.http(admin) as http:
            assert (await http.delete(f"/api/v1/tokens/{made['id']}")).status_code == 204
        assert await bot.closed() == 1008
    async with server.http(made["token"]) as http:
        assert (await http.get("/api/v1/conversations")).status_code == 401
    async with server.http(admin) as http:
        r = await http.delete("/api/v1/tokens/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await http.post("/api/v1/tokens", json={"name": ""})
        assert r.status_code == 400
