"""Satisfaction ratings (CSAT): the `rate` frame on a real visitor socket, its bad input, the
stats' aggregates, and the rating as the visitor's personal data (export, erasure, retention)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.auth import new_token, token_hash
from chatserver.clock import uuid7
from chatserver.ratings import MAX_COMMENT
from tests.helpers import Client, Server, db_rows, make_settings, msg_id, running_server
from tests.web.test_openapi import assert_conforms
from tests.web.test_privacy_lifecycle import ShiftedClock


async def start_conversation(visitor: Client, body: str = "hello") -> str:
    """A new conversation by this visitor; answers its id."""
    ref = msg_id()
    await visitor.send(type="send", client_msg_id=ref, body=body)
    return str((await visitor.until("ack", client_msg_id=ref))["conversation_id"])


async def resolve(http: Any, conversation_id: str, assignee_id: str | None = None) -> None:
    change: dict[str, Any] = {"status": "resolved"}
    if assignee_id is not None:
        change["assignee_id"] = assignee_id
    r = await http.patch(f"/api/v1/conversations/{conversation_id}", json=change)
    assert r.status_code == 200, r.text


async def named_agent(server: Server, name: str) -> tuple[str, str]:
    """A new agent called ``name``: (its id, a bearer token)."""
    store = server.state.store
    agent = await store.add_agent(
        agent_id=uuid7(), email=None, name=name, role="agent", password_hash=None, now=1
    )
    token = new_token("cs")
    await store.create_api_token(uuid7(), token_hash(token), agent.id, 1)
    return agent.id, token


async def test_a_visitor_rates_a_resolved_conversation_and_may_change_it(server: Server) -> None:
    """After the agent resolves it, the visitor's `rate` is answered by `rated`; agents read it;
    a second `rate` replaces the first; the hub tells its observers each time."""
    events: list[tuple[str, dict[str, Any]]] = []
    server.state.hub.observers.append(lambda kind, data: events.append((kind, data)))
    me, token = await named_agent(server, "Ann Agent")
    async with server.http(token) as http, server.visitor() as (visitor, welcome):
        conv = await start_conversation(visitor)
        await resolve(http, conv, assignee_id=me)
        await visitor.until("conversation", id=conv, status="resolved")

        await visitor.send(
            type="rate", conversation_id=conv, score=4, comment="  Quick and kind.  "
        )
        rated = await visitor.until("rated")
        assert rated == {"type": "rated", "conversation_id": conv, "score": 4}
        r = await http.get(f"/api/v1/conversations/{conv}/rating")
        assert r.status_code == 200, r.text
        assert_conforms("get", "/conversations/{id}/rating", 200, r.json())
        assert r.json()["score"] == 4
        assert r.json()["comment"] == "Quick and kind."  # trimmed
        assert r.json()["agent_id"] == me  # the assignee when it was rated

        await visitor.send(type="rate", conversation_id=conv, score=2, comment="   ")
        assert (await visitor.until("rated"))["score"] == 2
        r = await http.get(f"/api/v1/conversations/{conv}/rating")
        assert (r.json()["score"], r.json()["comment"]) == (2, None)  # blank: no comment

    ratings = [data for kind, data in events if kind == "rating.created"]
    assert [(d["rating"].score, d["replaced"]) for d in ratings] == [(4, False), (2, True)]
    assert ratings[0]["rating"].visitor_id == welcome["visitor_id"]


async def test_rating_an_open_conversation_is_a_conflict(server: Server) -> None:
    """`rate` before the conversation is resolved, or after the visitor wrote again (which
    reopens it), is `conflict` with the frame's ref; nothing is stored."""
    async with server.http(await server.token()) as http, server.visitor() as (visitor, _):
        conv = await start_conversation(visitor)
        await visitor.send(type="rate", conversation_id=conv, score=5, client_msg_id="r1")
        error = await visitor.until("error")
        assert (error["code"], error["ref"]) == ("conflict", "r1")

        await resolve(http, conv)
        await visitor.until("conversation", id=conv, status="resolved")
        await visitor.send(type="send", client_msg_id=msg_id(), conversation_id=conv, body="oh")
        await visitor.until("ack")
        await visitor.send(type="rate", conversation_id=conv, score=5, client_msg_id="r2")
        error = await visitor.until("error")
        assert (error["code"], error["ref"]) == ("conflict", "r2")
        r = await http.get(f"/api/v1/conversations/{conv}/rating")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


BAD_RATES: list[tuple[dict[str, Any], str]] = [
    ({"score": 0}, "bad_frame"),
    ({"score": 6}, "bad_frame"),
    ({"score": -1}, "bad_frame"),
    ({"score": "5"}, "bad_frame"),
    ({"score": 4.5}, "bad_frame"),
    ({"score": True}, "bad_frame"),
    ({"score": None}, "bad_frame"),
    ({}, "bad_frame"),
    ({"score": 3, "comment": 7}, "bad_frame"),
    ({"score": 3, "comment": ["a"]}, "bad_frame"),
    ({"score": 3, "comment": "x" * (MAX_COMMENT + 1)}, "too_large"),
    ({"score": 3, "comment": "x" * 60_000}, "too_large"),
    ({"score": 3, "conversation_id": ""}, "bad_frame"),
    ({"score": 3, "conversation_id": "x" * 65}, "bad_frame"),
    ({"score": 3, "conversation_id": 12}, "bad_frame"),
    ({"score": 3, "conversation_id": "not-a-conversation"}, "not_found"),
]


@pytest.mark.parametrize(("fields", "code"), BAD_RATES)
async def test_bad_rate_frames_are_refused_and_the_socket_stays(
    tmp_path: Path, fields: dict[str, Any], code: str
) -> None:
    """Scores outside 1..5 or of another type, a missing score, a comment that is not text
    or longer than 1000 characters, a bad conversation id: each gets its error code, nothing
    is stored, and the socket still works."""
    async with running_server(make_settings(tmp_path, max_bad_frames=100)) as server:
        token = await server.token()
        async with server.http(token) as http, server.visitor() as (visitor, _):
            conv = await start_conversation(visitor)
            await resolve(http, conv)
            await visitor.until("conversation", id=conv, status="resolved")
            frame = {"type": "rate", "conversation_id": conv, "client_msg_id": "bad", **fields}
            await visitor.send(**frame)
            error = await visitor.until("error")
            assert error["code"] == code, error
            assert error["ref"] == "bad"
            r = await http.get(f"/api/v1/conversations/{conv}/rating")
            assert r.status_code == 404
            await visitor.send(type="ping")
            await visitor.until("pong")


async def test_a_comment_of_exactly_1000_characters_is_kept(server: Server) -> None:
    """The limit is inclusive: 1000 characters are stored whole."""
    async with server.http(await server.token()) as http, server.visitor() as (visitor, _):
        conv = await start_conversation(visitor)
        await resolve(http, conv)
        await visitor.until("conversation", id=conv, status="resolved")
        comment = "å" * MAX_COMMENT
        await visitor.send(type="rate", conversation_id=conv, score=1, comment=comment)
        await visitor.until("rated")
        r = await http.get(f"/api/v1/conversations/{conv}/rating")
        assert r.json()["comment"] == comment


async def test_only_the_conversations_own_visitor_may_rate(server: Server) -> None:
    """Another visitor's `rate` on it is `not_found` (as for any id they do not own); an
    agent's socket has no `rate` frame; before `hello` it is refused."""
    token = await server.token()
    async with server.http(token) as http, server.visitor() as (owner, _):
        conv = await start_conversation(owner)
        await resolve(http, conv)
        await owner.until("conversation", id=conv, status="resolved")
        async with server.visitor() as (stranger, _):
            await stranger.send(type="rate", conversation_id=conv, score=1, client_msg_id="s")
            error = await stranger.until("error")
            assert (error["code"], error["ref"]) == ("not_found", "s")
        async with server.agent(token) as agent:
            await agent.send(type="rate", conversation_id=conv, score=1)
            assert (await agent.until("error"))["code"] == "bad_frame"
        async with server.raw_visitor() as early:
            await early.send(type="rate", conversation_id=conv, score=1)
            error = await early.until("error")
            assert error["code"] == "bad_request"
            assert "hello" in error["message"]
        r = await http.get(f"/api/v1/conversations/{conv}/rating")
        assert r.status_code == 404


async def test_a_rating_waits_for_the_current_privacy_notice(server: Server) -> None:
    """P9: while a published notice is not accepted, `rate` is forbidden and stores nothing."""
    async with server.http(await server.token()) as http, server.visitor() as (visitor, w):
        conv = await start_conversation(visitor)
        await resolve(http, conv)
        await visitor.until("conversation", id=conv, status="resolved")
        async with server.http(await server.token("admin")) as admin:
            r = await admin.post(
                "/api/v1/policies", json={"version": "2026-02", "url": "https://x.example/p"}
            )
            assert r.status_code == 201, r.text
        async with server.visitor(hello={"visitor_token": w["visitor_token"]}) as (again, w2):
            assert w2["policy"]["accepted"] is False
            await again.send(type="rate", conversation_id=conv, score=5, client_msg_id="p")
            error = await again.until("error")
            assert (error["code"], error["ref"]) == ("forbidden", "p")
        assert (await http.get(f"/api/v1/conversations/{conv}/rating")).status_code == 404


async def test_reading_a_rating_needs_an_agent(server: Server) -> None:
    """`GET /conversations/{id}/rating`: 401 without a token, 403 for compliance."""
    async with server.http() as anonymous:
        r = await anonymous.get("/api/v1/conversations/x/rating")
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    async with server.http(await server.token("compliance")) as http:
        r = await http.get("/api/v1/conversations/x/rating")
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        assert_conforms("get", "/conversations/{id}/rating", 403, r.json())


# ---------------------------------------------------------------- stats


async def rated_conversations(
    server: Server, http: Any, visitor: Client, scores: list[int], assignee: str | None
) -> list[str]:
    """One conversation per score, resolved (assigned to ``assignee``) and rated."""
    ids = []
    for score in scores:
        conv = await start_conversation(visitor)
        await resolve(http, conv, assignee_id=assignee)
        await visitor.until("conversation", id=conv, status="resolved")
        await visitor.send(type="rate", conversation_id=conv, score=score)
        await visitor.until("rated", conversation_id=conv)
        ids.append(conv)
    return ids


async def test_stats_show_the_csat_distribution_average_and_agents(server: Server) -> None:
    """`GET /stats` has a `csat` section: the 1–5 distribution (counts under 5 null, zeros
    shown), average and satisfied share, per agent (one under 5 ratings withheld) and per
    day; no comment or visitor appears in it."""
    ann_id, ann_token = await named_agent(server, "Ann Agent")
    bob_id, bob_token = await named_agent(server, "Bob Agent")
    async with (
        server.http(ann_token) as ann,
        server.http(bob_token) as bob,
        server.visitor() as (visitor, welcome),
    ):
        await rated_conversations(server, ann, visitor, [5, 5, 5, 5, 5, 4, 3], ann_id)
        await rated_conversations(server, bob, visitor, [1, 2], bob_id)
    async with server.http(await server.token("admin")) as admin:
        r = await admin.get("/api/v1/stats")
    assert r.status_code == 200, r.text
    assert_conforms("get", "/stats", 200, r.json())
    csat = r.json()["csat"]
    assert csat["ratings"] == 9
    assert csat["average"] == round((5 * 5 + 4 + 3 + 1 + 2) / 9, 2)
    assert csat["satisfied_share"] == round(6 / 9, 3)
    assert csat["distribution"] == [
        {"score": 1, "ratings": None},
        {"score": 2, "ratings": None},
        {"score": 3, "ratings": None},
        {"score": 4, "ratings": None},
        {"score": 5, "ratings": 5},
    ]
    agents = {a["agent"]["name"]: a for a in csat["per_agent"]}
    assert agents["Ann Agent"] == {
        "agent": {"id": ann_id, "name": "Ann Agent"},
        "ratings": 7,
        "average": round(32 / 7, 2),
        "satisfied_share": round(6 / 7, 3),
    }
    assert agents["Bob Agent"] == {
        "agent": {"id": bob_id, "name": "Bob Agent"},
        "ratings": None,
        "average": None,
        "satisfied_share": None,
    }
    assert len(csat["per_day"]) == 1
    assert csat["per_day"][0]["ratings"] == 9
    assert welcome["visitor_id"] not in r.text


async def test_stats_with_few_ratings_show_no_average(server: Server) -> None:
    """Under five ratings in the period: no average, no share, no counts (P10); scores nobody
    gave are 0. A period without ratings has an empty csat."""
    async with server.http(await server.token()) as http, server.visitor() as (visitor, _):
        await rated_conversations(server, http, visitor, [1, 1], None)
    async with server.http(await server.token("admin")) as admin:
        csat = (await admin.get("/api/v1/stats")).json()["csat"]
        before = (
            await admin.get("/api/v1/stats", params={"from": "2020-01-01", "to": "2020-01-31"})
        ).json()["csat"]
    assert (csat["ratings"], csat["average"], csat["satisfied_share"]) == (None, None, None)
    assert [d["ratings"] for d in csat["distribution"]] == [None, 0, 0, 0, 0]
    assert csat["per_agent"] == []  # unassigned conversations count for no agent
    assert before == {
        "ratings": 0,
        "average": None,
        "satisfied_share": None,
        "distribution": [{"score": s, "ratings": 0} for s in range(1, 6)],
        "per_agent": [],
        "per_day": [],
    }


# ---------------------------------------------------------------- personal data


async def test_the_rating_is_in_the_export_and_goes_with_erasure(
    server: Server, tmp_path: Path
) -> None:
    """The rating and comment are the visitor's data: listed under their conversation in the
    export; erasure counts them and removes them with the conversation."""
    me, token = await named_agent(server, "Ann Agent")
    async with server.http(token) as http, server.visitor() as (visitor, welcome):
        conv = await start_conversation(visitor)
        await resolve(http, conv, assignee_id=me)
        await visitor.until("conversation", id=conv, status="resolved")
        await visitor.send(
            type="rate", conversation_id=conv, score=3, comment="comment-SENTINEL <b>bold</b>"
        )
        await visitor.until("rated")
    subject = welcome["visitor_id"]
    async with server.http(await server.token("compliance")) as compliance:
        r = await compliance.get(f"/api/v1/subjects/{subject}/export")
        assert r.status_code == 200, r.text
        assert_conforms("get", "/subjects/{id}/export", 200, r.json())
        [exported] = r.json()["conversations"]
        rating = exported["rating"]
        assert (rating["score"], rating["comment"]) == (3, "comment-SENTINEL <b>bold</b>")
        assert rating["agent"] == {"id": me, "name": "Ann Agent"}
        assert rating["created_at"].endswith("Z")
        # The readable transcript in the ZIP shows it too, as text.
        r = await compliance.get(f"/api/v1/subjects/{subject}/export?format=zip&locale=nb")
        assert r.status_code == 200, r.text
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            page = archive.read("transcript.html").decode()
        assert "Din vurdering" in page
        assert "3 av 5: comment-SENTINEL &lt;b&gt;bold&lt;/b&gt;" in page

        r = await compliance.post(f"/api/v1/subjects/{subject}/erasure")
        assert r.status_code == 200, r.text
        assert_conforms("post", "/subjects/{id}/erasure", 200, r.json())
        assert r.json()["erased"]["ratings"] == 1
    assert await server.state.store.rating(conv) is None
    assert db_rows(tmp_path, "SELECT count(*) FROM ratings") == [(0,)]


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Server, ShiftedClock]]:
    clock = ShiftedClock()
    settings = make_settings(tmp_path, retention_resolved="30d", retention_anonymous="off")
    async with running_server(settings, clock=clock) as server:
        yield server, clock


async def test_retention_takes_the_rating_with_its_conversation(
    clocked: tuple[Server, ShiftedClock],
) -> None:
    """A resolved conversation past `retention_resolved` goes with its rating (cascade)."""
    server, clock = clocked
    async with server.http(await server.token()) as http, server.visitor() as (visitor, _):
        [conv] = await rated_conversations(server, http, visitor, [4], None)
    assert await server.state.store.rating(conv) is not None
    clock.offset_us += 31 * 86400 * 10**6
    async with server.http(await server.token("compliance")) as compliance:
        r = await compliance.post("/api/v1/retention/runs", json={"dry_run": False})
        assert r.status_code == 201, r.text
        counts = {c["category"]: c["counts"] for c in r.json()["categories"]}
        assert counts["resolved"]["conversations"] == 1
    assert await server.state.store.rating(conv) is None
    exported = json.dumps(await server.state.store.csat_rows(0, 2**62))
    assert '"by_score": []' in exported
