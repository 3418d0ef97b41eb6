"""Business hours on a real server: the admin API and its bad input, `open_now` in `welcome`,
`presence` to visitors when a schedule is saved and at each opening and closing (the timer),
and the automatic reply to a conversation started outside hours."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chatserver.business_hours import WEEKDAYS
from chatserver.clock import Clock
from chatserver.web.api import MAX_JSON_BYTES
from tests.helpers import Server, make_settings, msg_id, running_server
from tests.web.test_openapi import assert_conforms

OSLO = ZoneInfo("Europe/Oslo")
OFFICE = {
    "enabled": True,
    "time_zone": "Europe/Oslo",
    "weekly": {day: [{"start": "09:00", "end": "17:00"}] for day in WEEKDAYS[:5]},
    "closed_dates": ["2026-12-24"],
}


class SetClock(Clock):
    """Real time, moved by the test to any instant it likes; it keeps running from there."""

    def __init__(self) -> None:
        self.offset_us = 0

    def now_us(self) -> int:
        return super().now_us() + self.offset_us

    def set(self, when: datetime) -> None:
        self.offset_us = int(when.timestamp() * 1_000_000) - super().now_us()


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Server, SetClock]]:
    clock = SetClock()
    async with running_server(make_settings(tmp_path), clock=clock) as server:
        yield server, clock


async def put(server: Server, body: Any) -> dict[str, Any]:
    async with server.http(await server.token("admin")) as admin:
        r = await admin.put("/api/v1/business-hours", json=body)
    assert r.status_code == 200, r.text
    assert_conforms("put", "/business-hours", 200, r.json())
    return r.json()  # type: ignore[no-any-return]


async def get(server: Server) -> dict[str, Any]:
    async with server.http(await server.token("admin")) as admin:
        r = await admin.get("/api/v1/business-hours")
    assert r.status_code == 200, r.text
    assert_conforms("get", "/business-hours", 200, r.json())
    return r.json()  # type: ignore[no-any-return]


async def test_without_a_schedule_the_desk_is_always_open(server: Server) -> None:
    """Nothing configured: not enabled, Oslo time, no hours, open now, no change ahead; the
    visitor's welcome says open_now."""
    assert await get(server) == {
        "enabled": False,
        "time_zone": "Europe/Oslo",
        "weekly": {day: [] for day in WEEKDAYS},
        "closed_dates": [],
        "open_now": True,
        "next_change": None,
        "updated_at": None,
    }
    async with server.visitor() as (_, welcome):
        assert welcome["open_now"] is True


async def test_agents_read_the_hours_and_only_admins_change_them(server: Server) -> None:
    """No token: 401; an agent reads them (the console shows when the chat opens) but
    cannot save; a compliance officer does neither: 403."""
    async with server.http() as nobody:
        for method in ("GET", "PUT"):
            r = await nobody.request(method, "/api/v1/business-hours", json=OFFICE)
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    async with server.http(await server.token("agent")) as http:
        r = await http.get("/api/v1/business-hours")
        assert r.status_code == 200
        assert_conforms("get", "/business-hours", 200, r.json())
        r = await http.put("/api/v1/business-hours", json=OFFICE)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        assert_conforms("put", "/business-hours", 403, r.json())
    async with server.http(await server.token("compliance")) as http:
        for method in ("GET", "PUT"):
            r = await http.request(method, "/api/v1/business-hours", json=OFFICE)
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
            assert_conforms(method.lower(), "/business-hours", 403, r.json())
    assert (await get(server))["enabled"] is False


def _with(**changes: Any) -> str:
    return json.dumps({**OFFICE, **changes})


BAD_BODIES: list[tuple[str, str, int, str]] = [
    ("not json", "application/json", 400, "bad_request"),
    (_with(), "text/plain", 400, "bad_request"),
    ("", "application/json", 400, "bad_request"),
    ("[]", "application/json", 400, "bad_request"),
    (json.dumps({"time_zone": "Europe/Oslo"}), "application/json", 400, "bad_request"),
    (_with(enabled="true"), "application/json", 400, "bad_request"),
    (_with(time_zone="Europe/Nowhere"), "application/json", 400, "bad_request"),
    (_with(time_zone="/etc/passwd"), "application/json", 400, "bad_request"),
    (_with(time_zone=None), "application/json", 400, "bad_request"),
    (_with(closed_dates=["2026-13-01"]), "application/json", 400, "bad_request"),
    (_with(closed_dates="2026-12-24"), "application/json", 400, "bad_request"),
    (_with(closed_dates=["2026-12-24"] * 1001), "application/json", 400, "bad_request"),
    (_with(weekly={"monday": [{"start": "17:00", "end": "17:00"}]}), "application/json", 400,
     "bad_request"),
    (_with(weekly={"monday": [{"start": "9", "end": "17"}]}), "application/json", 400,
     "bad_request"),
    (_with(weekly={"monday": [{"start": "08:00", "end": "12:00"},
                              {"start": "10:00", "end": "14:00"}]}),
     "application/json", 400, "bad_request"),
    (_with(weekly={"someday": []}), "application/json", 400, "bad_request"),
    (_with(weekly=[]), "application/json", 400, "bad_request"),
    (_with(extra=1), "application/json", 400, "bad_request"),
    (_with(closed_dates=["2026-12-24"] * 80_000), "application/json", 413, "too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_BODIES)
async def test_a_bad_schedule_is_refused_and_changes_nothing(
    server: Server, body: str, content_type: str, status: int, code: str
) -> None:
    """Not JSON, not an object, `enabled` missing or not a boolean, an unknown time zone or
    day or field, impossible dates, bad or overlapping intervals, too many dates, a body over
    the size limit: each gets its status and code, and the saved schedule stays."""
    assert len(_with(closed_dates=["2026-12-24"] * 80_000)) > MAX_JSON_BYTES
    await put(server, {**OFFICE, "closed_dates": ["2027-01-01"]})
    async with server.http(await server.token("admin")) as admin:
        r = await admin.put(
            "/api/v1/business-hours", content=body, headers={"Content-Type": content_type}
        )
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert_conforms("put", "/business-hours", status, r.json())
    saved = await get(server)
    assert saved["closed_dates"] == ["2027-01-01"]
    assert saved["weekly"]["monday"] == [{"start": "09:00", "end": "17:00"}]


async def test_saving_hours_tells_visitors_at_once_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """On a Wednesday evening, saving office hours closes the desk: connected visitors get
    `presence {agents_online, open_now: false}` and new ones a welcome saying so; turning
    the schedule off opens it again. The schedule is kept across a restart."""
    clock = SetClock()
    clock.set(datetime(2026, 11, 25, 20, 0, tzinfo=OSLO))
    async with running_server(make_settings(tmp_path), clock=clock) as server:
        token = await server.token("agent")
        async with server.visitor() as (visitor, welcome), server.agent(token):
            assert welcome["open_now"] is True
            await visitor.until("presence", agents_online=True)
            saved = await put(server, OFFICE)
            assert (saved["open_now"], saved["enabled"]) == (False, True)
            assert saved["next_change"] == "2026-11-26T08:00:00.000000Z"
            assert saved["updated_at"] is not None
            presence = await visitor.until("presence")
            assert presence == {"type": "presence", "agents_online": True, "open_now": False}
            async with server.visitor() as (_, later):
                assert later["open_now"] is False
            await put(server, {**OFFICE, "enabled": False})
            assert (await visitor.until("presence"))["open_now"] is True
            # Saving the same state again tells nobody anything: the next frame is the pong.
            await put(server, {**OFFICE, "enabled": False})
            await visitor.send(type="ping")
            assert (await visitor.recv())["type"] == "pong"
            await put(server, OFFICE)
    async with running_server(make_settings(tmp_path), clock=clock) as again:
        saved = await get(again)
        assert saved["weekly"] == {
            day: [{"start": "09:00", "end": "17:00"}] if day in WEEKDAYS[:5] else []
            for day in WEEKDAYS
        }
        assert saved["closed_dates"] == ["2026-12-24"]
        async with again.visitor() as (_, welcome):
            assert welcome["open_now"] is False


async def test_visitors_hear_each_opening_and_closing_when_it_happens(
    clocked: tuple[Server, SetClock],
) -> None:
    """A second and a half before 09:00 the desk is closed; at 09:00 the hub's timer opens
    it and visitors get `presence {open_now: true}` with no request from anyone. Moved (by
    the test's clock) to just before 17:00 and re-evaluated, the timer closes it again."""
    server, clock = clocked
    clock.set(datetime(2026, 11, 25, 8, 59, 58, 500_000, tzinfo=OSLO))
    async with server.visitor() as (visitor, _):
        await put(server, OFFICE)
        assert (await visitor.until("presence"))["open_now"] is False
        opened = await visitor.until("presence", timeout=10)
        assert opened == {"type": "presence", "agents_online": False, "open_now": True}
        assert server.state.hub.open_now
        assert (await get(server))["next_change"] == "2026-11-25T16:00:00.000000Z"

        hours = server.state.hub.hours
        assert hours is not None
        clock.set(datetime(2026, 11, 25, 16, 59, 59, tzinfo=OSLO))
        hours.reevaluate()  # the test moved time; nothing changed yet, the timer is reset
        closed = await visitor.until("presence", timeout=10)
        assert closed["open_now"] is False
        assert (await get(server))["next_change"] == "2026-11-26T08:00:00.000000Z"


async def conversation_messages(server: Server, conversation_id: str) -> list[dict[str, Any]]:
    await server.state.hub.background_done()
    async with server.http(await server.token()) as http:
        r = await http.get(f"/api/v1/conversations/{conversation_id}/messages")
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("nb-NO", "Vi har stengt nå. Noen svarer deg i morgen kl. 09:00 (tidssone Europe/Oslo)."),
        (
            "en-GB",
            "We are closed right now. Someone will answer tomorrow at 09:00 (Europe/Oslo time).",
        ),
    ],
)
async def test_a_conversation_started_outside_hours_gets_an_automatic_reply(
    clocked: tuple[Server, SetClock], locale: str, text: str
) -> None:
    """On a Wednesday at 20:00 Oslo time the first message gets a `system` message saying
    when someone will answer, in the visitor's language; the next message gets none."""
    server, clock = clocked
    clock.set(datetime(2026, 11, 25, 20, 0, tzinfo=OSLO))
    await put(server, OFFICE)
    async with server.visitor(hello={"locale": locale}) as (visitor, welcome):
        assert welcome["open_now"] is False
        await visitor.send(
            type="send", client_msg_id="first", body="Hello?", contact={"email": "a@b.example"}
        )
        ack = await visitor.until("ack")
        conv = ack["conversation_id"]
        reply = await visitor.until("message")
        assert reply["author"] == {"role": "system", "id": None, "name": None}
        assert (reply["kind"], reply["body"], reply["seq"]) == ("text", text, 2)
        await visitor.send(type="send", client_msg_id=msg_id(), conversation_id=conv, body="ok")
        await visitor.until("ack")
    messages = await conversation_messages(server, conv)
    assert [m["author"]["role"] for m in messages] == ["visitor", "system", "visitor"]


async def test_no_automatic_reply_within_hours_or_without_a_schedule(
    clocked: tuple[Server, SetClock],
) -> None:
    """Within hours, and with no schedule at all, a new conversation gets no system message."""
    server, clock = clocked
    clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=OSLO))
    async with server.visitor() as (visitor, _):
        await visitor.send(type="send", client_msg_id="a", body="no schedule")
        first = (await visitor.until("ack"))["conversation_id"]
        await put(server, OFFICE)
        await visitor.send(type="send", client_msg_id="b", body="within hours")
        second = (await visitor.until("ack"))["conversation_id"]
    for conv in (first, second):
        roles = [m["author"]["role"] for m in await conversation_messages(server, conv)]
        assert roles == ["visitor"]
