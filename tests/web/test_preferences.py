"""Each agent's console preferences: read and replaced by the agent themself (session or
bearer token), given with /console/me and the sign-in answer, checked field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from chatserver.auth import hash_password
from chatserver.clock import uuid7
from tests.helpers import Server, db_rows

DEFAULTS = {
    "language": None,
    "sound": True,
    "desktop": True,
    "notify": {"new_conversation": True, "new_message_mine": True, "assigned_to_me": True},
}
PASSWORD = "violet kayak mountain 42"


async def human(server: Server, email: str) -> None:
    await server.state.store.add_agent(
        agent_id=uuid7(),
        email=email,
        name="Human Being",
        role="agent",
        password_hash=await hash_password(PASSWORD),
        now=1,
    )


async def sign_in(browser: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Sign ``browser`` in as the console does; answers the sign-in's body."""
    r = await browser.post("/console/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    browser.headers["X-CSRF-Token"] = browser.cookies["chatserver_csrf"]
    return r.json()  # type: ignore[no-any-return]


async def test_preferences_start_as_defaults_and_are_kept_per_agent(server: Server) -> None:
    """A new agent has the defaults (in the sign-in answer and /console/me too); a PUT
    replaces them (fields left out take their defaults) and is what every later answer
    says, for this agent only."""
    await human(server, "kari@example.no")
    await human(server, "ola@example.no")
    async with server.http() as kari, server.http() as ola:
        login = await sign_in(kari, "kari@example.no")
        await sign_in(ola, "ola@example.no")
        assert login["preferences"] == DEFAULTS
        assert (await kari.get("/console/preferences")).json() == DEFAULTS
        mine = {
            "language": "nn",
            "sound": False,
            "desktop": False,
            "notify": {"new_conversation": False, "new_message_mine": True, "assigned_to_me": True},
        }
        r = await kari.put("/console/preferences", json=mine)
        assert r.status_code == 200 and r.json() == mine
        assert (await kari.get("/console/preferences")).json() == mine
        assert (await kari.get("/console/me")).json()["preferences"] == mine
        assert (await ola.get("/console/preferences")).json() == DEFAULTS

        # A PUT is the whole object: what is left out goes back to its default.
        r = await kari.put("/console/preferences", json={"language": "nb"})
        assert r.json() == {**DEFAULTS, "language": "nb"}
        r = await kari.put("/console/preferences", json={"notify": {"assigned_to_me": False}})
        assert r.json() == {**DEFAULTS, "notify": {**DEFAULTS["notify"], "assigned_to_me": False}}

    # The next sign-in brings them along.
    async with server.http() as again:
        login = await sign_in(again, "kari@example.no")
        assert login["preferences"]["notify"]["assigned_to_me"] is False


async def test_a_bearer_token_has_preferences_of_its_own(server: Server) -> None:
    """The same routes work with a bearer token, for the token's own agent."""
    token = await server.token("agent")
    async with server.http(token) as http:
        assert (await http.get("/console/preferences")).json() == DEFAULTS
        r = await http.put("/console/preferences", json={"sound": False})
        assert r.status_code == 200 and r.json()["sound"] is False
        assert (await http.get("/console/me")).json()["preferences"]["sound"] is False
    async with server.http() as anonymous:
        r = await anonymous.get("/console/preferences")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await anonymous.put("/console/preferences", json={})
        assert r.status_code == 401


async def test_a_cookie_write_needs_the_csrf_token(server: Server) -> None:
    await human(server, "kari@example.no")
    async with server.http() as browser:
        await sign_in(browser, "kari@example.no")
        del browser.headers["X-CSRF-Token"]
        r = await browser.put("/console/preferences", json={"sound": False})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await browser.get("/console/preferences")).json() == DEFAULTS


async def test_bad_preferences_name_their_field_and_change_nothing(server: Server) -> None:
    """Unknown fields (also inside ``notify``), wrong types and values that are not
    allowed are ``bad_request`` with the field's path and the reason; nothing is stored."""
    token = await server.token("agent")
    async with server.http(token) as http:
        for body, field, reason in (
            ({"language": "de"}, "language", "invalid"),
            ({"language": 5}, "language", "type"),
            ({"sound": "yes"}, "sound", "type"),
            ({"desktop": None}, "desktop", "type"),
            ({"notify": {"new_message": True}}, "notify.new_message", "unknown_field"),
            ({"notify": {"assigned_to_me": 1}}, "notify.assigned_to_me", "type"),
            ({"notify": []}, "notify", "type"),
            ({"theme": "dark"}, "theme", "unknown_field"),
        ):
            r = await http.put("/console/preferences", json=body)
            assert r.status_code == 400, (body, r.text)
            error = r.json()["error"]
            assert (error["code"], error["field"], error["reason"]) == (
                "bad_request",
                field,
                reason,
            ), body
            assert "$." not in error["message"] and "`" not in error["message"]
        r = await http.put("/console/preferences", json={"language": "de"})
        assert "en, nb, nn or null" in r.json()["error"]["message"]
        r = await http.put("/console/preferences", content=b"[", headers=JSON)
        assert r.status_code == 400 and "field" not in r.json()["error"]
        assert (await http.get("/console/preferences")).json() == DEFAULTS
    assert db_rows(
        Path(server.state.settings.data_dir),
        "SELECT count(*) FROM agents WHERE preferences IS NOT NULL",
    ) == [(0,)]


JSON = {"content-type": "application/json"}
