"""Stats (P10): aggregates only, small counts suppressed, figures right for seeded data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatserver.store.models import NewMessage, SessionInfo
from tests.helpers import Server
from tests.web.test_openapi import assert_conforms

DAY1 = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp()) * 10**6
DAY2 = int(datetime(2026, 11, 21, 9, 0, tzinfo=UTC).timestamp()) * 10**6
S = 10**6


async def seed(server: Server) -> None:
    store = server.state.store
    await store.add_agent(
        agent_id="a1", email=None, name="Ann", role="agent", password_hash=None, now=1
    )
    n = 0
    for day, conversations in ((DAY1, 6), (DAY2, 2)):
        for i in range(conversations):
            n += 1
            visitor = f"v{n}"
            await store.create_visitor(visitor, f"hash-{n}", day)
            first = await store.append_message(
                NewMessage(
                    message_id=f"m{n}",
                    author_role="visitor",
                    author_id=visitor,
                    kind="text",
                    body="Private question from Kari",
                    created_at=day + i,
                    client_msg_id=f"c{n}",
                    new_conversation_id=f"conv{n}",
                    visitor_id=visitor,
                )
            )
            if day == DAY1:
                # Agent answers after 10, 20, ... 60 s; a note before it does not count.
                for kind, after in (("note", 1), ("text", 10 * (i + 1))):
                    await store.append_message(
                        NewMessage(
                            message_id=f"r{n}{kind}",
                            author_role="agent",
                            author_id="a1",
                            kind=kind,
                            body="reply",
                            created_at=first.created_at + after * S,
                            client_msg_id=f"r{n}{kind}",
                            conversation_id=first.conversation_id,
                        )
                    )
                if i < 5:
                    await store.update_conversation(
                        first.conversation_id,
                        now=first.created_at + 100 * (i + 1) * S,
                        status="resolved",
                    )
            device = "mobile" if n <= 7 else "desktop"
            await store.start_session(
                SessionInfo(
                    id=f"s{n}",
                    visitor_id=visitor,
                    started_at=day,
                    device_class=device,
                    ip="198.51.100.7",
                )
            )


async def test_stats_for_seeded_data(server: Server) -> None:
    """Counts per day, median and p90 first response, median resolution, device mix; <5 is null."""
    await seed(server)
    async with server.http(await server.token("admin")) as http:
        r = await http.get("/api/v1/stats", params={"from": "2026-11-20", "to": "2026-11-21"})
    assert r.status_code == 200, r.text
    assert_conforms("get", "/stats", 200, r.json())
    stats = r.json()
    assert stats["conversations_per_day"] == [
        {"day": "2026-11-20", "conversations": 6},
        {"day": "2026-11-21", "conversations": None},  # 2: under 5, suppressed
    ]
    assert stats["conversations"] == 8
    assert stats["first_response_seconds"] == {"count": 6, "median": 35.0, "p90": 55.0}
    assert stats["resolution_seconds"]["count"] == 5
    assert stats["resolution_seconds"]["median"] == pytest.approx(300.0, abs=0.001)
    assert stats["device_mix"] == [
        {"device_class": "mobile", "sessions": 7},
        {"device_class": "desktop", "sessions": None},
    ]
    # Nothing that could point at a person: no ids, names, text or addresses.
    for secret in ("Kari", "v1", "conv1", "198.51.100", "a1", "Ann"):
        assert secret not in r.text


async def test_small_periods_show_nothing_traceable(server: Server) -> None:
    """A day with fewer than 5 conversations shows no count and no durations."""
    await seed(server)
    async with server.http(await server.token("admin")) as http:
        stats = (
            await http.get("/api/v1/stats", params={"from": "2026-11-21", "to": "2026-11-21"})
        ).json()
    assert stats["conversations"] is None
    assert stats["first_response_seconds"] == {"count": None, "median": None, "p90": None}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "yesterday"}, "bad_request"),
        ({"from": "2026-11-22", "to": "2026-11-20"}, "bad_request"),
        ({"from": "2020-01-01", "to": "2026-11-20"}, "bad_request"),
    ],
)
async def test_bad_periods(server: Server, params: dict[str, str], code: str) -> None:
    """A period that is not a date, backwards, or over a year is bad_request."""
    async with server.http(await server.token("admin")) as http:
        r = await http.get("/api/v1/stats", params=params)
    assert r.status_code == 400 and r.json()["error"]["code"] == code


@pytest.mark.parametrize("role", ["agent", "compliance"])
async def test_stats_are_for_admins(server: Server, role: str) -> None:
    """Agents and compliance officers get 403."""
    async with server.http(await server.token(role)) as http:
        r = await http.get("/api/v1/stats")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
