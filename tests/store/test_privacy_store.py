"""The privacy half of the store, on SQLite and on PostgreSQL: linking identities,
retention batches and legal holds, erasure, the audit chain and job leases, against a
real database (read back beside the running store)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.clock import Clock, uuid7
from chatserver.config import Settings
from chatserver.errors import Conflict, NotFound
from chatserver.privacy import retention
from chatserver.privacy.audit import verify_chain
from chatserver.privacy.service import Privacy
from chatserver.store.models import AuditRecord, IdentityClaims, NewMessage, SessionInfo
from chatserver.store.pg_privacy import numbered
from chatserver.store.postgres import PostgresStore
from chatserver.store.sqlite import SQLiteStore
from chatserver.store.sqlite_privacy import RETENTION_CATEGORIES

DAY = 86_400 * 1_000_000  # µs
NOW = 1_800_000_000_000_000
OLD = NOW - 200 * DAY
RECENT = NOW - DAY
CUTOFF = NOW - 90 * DAY

AnyStore = SQLiteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    s: AnyStore
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "chat.db")
    else:
        s = PostgresStore.from_url(request.getfixturevalue("pg_url"))
    await s.open()
    yield s
    await s.close()


# ---------------------------------------------------------------- helpers


async def rows(store: AnyStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database as anyone with access to it would, beside the running store
    (SQL with ``?`` placeholders, on either store)."""
    if isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            return conn.execute(sql, params).fetchall()
    return [tuple(r) for r in await store._rows(numbered(sql), params)]


async def count(
    store: AnyStore, table: str, where: str = "TRUE", params: tuple[Any, ...] = ()
) -> int:
    return int((await rows(store, f"SELECT count(*) FROM {table} WHERE {where}", params))[0][0])


async def execute(store: AnyStore, sql: str, params: tuple[Any, ...] = ()) -> None:
    """One write through the store's writer (SQL with ``?`` placeholders)."""
    if isinstance(store, SQLiteStore):
        await store.writer.run(lambda conn, tx: conn.execute(sql, params))
        return

    async def op(conn: Any, tx: object) -> None:
        await conn.execute(numbered(sql), *params)

    await store.writer.run(op)


def audit(action: str = "test.act") -> AuditRecord:
    return AuditRecord(
        id=uuid7(), at=NOW, action=action, actor_role="compliance", actor_id="officer"
    )


def claims(sub: str, *, name: str | None = None, email: str | None = None) -> IdentityClaims:
    return IdentityClaims(sub=sub, name=name, email=email, phone=None, idp="bankid", pid_hash=None)


async def visitor(store: AnyStore, visitor_id: str, at: int = OLD) -> str:
    await store.create_visitor(visitor_id, "token-hash-" + visitor_id, at)
    return visitor_id


async def start(store: AnyStore, visitor_id: str, at: int = OLD, body: str = "hi") -> str:
    """A new conversation with one visitor message, as the relay stores it."""
    stored = await store.append_message(
        NewMessage(
            message_id=uuid7(),
            author_role="visitor",
            author_id=visitor_id,
            kind="text",
            body=body,
            created_at=at,
            client_msg_id=uuid7(),
            new_conversation_id=uuid7(),
            visitor_id=visitor_id,
        )
    )
    assert stored.created_conversation
    return stored.conversation_id


async def say(store: AnyStore, conversation_id: str, visitor_id: str, n: int, at: int = OLD) -> int:
    """``n`` more visitor messages into a conversation, sent at once; the last seq."""
    stored = await asyncio.gather(
        *(
            store.append_message(
                NewMessage(
                    message_id=uuid7(),
                    author_role="visitor",
                    author_id=visitor_id,
                    kind="text",
                    body=f"message {i}",
                    created_at=at,
                    client_msg_id=uuid7(),
                    conversation_id=conversation_id,
                    visitor_id=visitor_id,
                )
            )
            for i in range(n)
        )
    )
    return max(m.seq for m in stored)


async def session(
    store: AnyStore, visitor_id: str, at: int = OLD, ip: str | None = "192.0.2.77"
) -> str:
    session_id = uuid7()
    await store.start_session(
        SessionInfo(id=session_id, visitor_id=visitor_id, started_at=at, ip=ip, user_agent="UA")
    )
    return session_id


async def run_out(
    store: AnyStore, category: str, cutoff: int = CUTOFF, limit: int = 500
) -> list[dict[str, int]]:
    """Retention batches of one category until one removes nothing; the non-empty ones."""
    done: list[dict[str, int]] = []
    for _ in range(1000):
        removed, _ = await store.retention_batch(category, cutoff, now=NOW, limit=limit)
        if not any(removed.values()):
            return done
        done.append(removed)
    raise AssertionError("retention never finished")


def total(batches: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for batch in batches:
        for key, value in batch.items():
            out[key] = out.get(key, 0) + value
    return out


async def hold(
    store: AnyStore,
    *,
    subject: str | None = None,
    conversation: str | None = None,
    on: bool = True,
) -> None:
    await store.set_legal_hold(
        subject_id=subject, conversation_id=conversation, hold=on, audit=audit("legal_hold")
    )


async def conversation_ids(store: AnyStore) -> set[str]:
    return {r[0] for r in await rows(store, "SELECT id FROM conversations")}


# ---------------------------------------------------------------- linking identities


async def test_linking_merges_the_visitors_anonymous_conversations(store: AnyStore) -> None:
    """Linking a visitor makes the account (with what the token vouched for) and moves that
    visitor's anonymous conversations and consents to it; nobody else's; again merges none."""
    await visitor(store, "v1")
    first, second = await start(store, "v1"), await start(store, "v1")
    await visitor(store, "v9")
    stranger = await start(store, "v9")
    await store.publish_policy("2026-11", None, OLD)
    await store.record_consent(uuid7(), "2026-11", "v1", None, OLD)

    account, merged = await store.link_identity(
        "v1", claims("sub-1", name="Kari", email="kari@example.no"), new_account_id="acc-1", now=NOW
    )
    assert merged == 2
    assert (account.id, account.sub, account.name, account.email) == (
        "acc-1",
        "sub-1",
        "Kari",
        "kari@example.no",
    )
    assert account.verified_fields == ("email", "name")
    assert account.verified_by == "bankid" and account.verified_at == NOW
    # Each merged conversation records it in a `verified` event line after its message.
    assert sorted((m.conversation_id, m.seq) for m in account.events) == sorted(
        [(first, 2), (second, 2)]
    )
    for line in account.events:
        assert (line.kind, line.author_role, line.body) == ("event", "system", "Verified by BankID")
        assert line.event == {"type": "verified", "idp": "bankid", "name": "Kari"}
        assert [m.event for m in await store.messages_after(line.conversation_id, 1, 9)] == [
            line.event
        ]
    for cid in (first, second):
        c = await store.conversation(cid)
        assert c is not None and c.account_id == "acc-1"
    c = await store.conversation(stranger)
    assert c is not None and c.account_id is None
    subject = await store.subject("acc-1")
    assert subject is not None and subject.kind == "account" and subject.visitor_ids == ("v1",)
    assert await store.subject("v1") is None  # no longer a person of their own
    assert await count(store, "consents", "account_id = ?", ("acc-1",)) == 1

    again, merged_again = await store.link_identity(
        "v1", claims("sub-1", name="Kari"), new_account_id="acc-unused", now=NOW + 1
    )
    assert (again.id, merged_again, again.events) == ("acc-1", 0, ())
    assert await count(store, "accounts") == 1


async def test_a_second_visitor_of_the_same_person_sees_both(store: AnyStore) -> None:
    """Two browsers linked to one ``sub`` share one account: each sees both threads and may
    write into either; a third, unlinked visitor sees neither."""
    await visitor(store, "laptop")
    await visitor(store, "phone")
    await visitor(store, "other")
    on_laptop = await start(store, "laptop")
    on_phone = await start(store, "phone")
    await start(store, "other")
    account, merged = await store.link_identity(
        "laptop", claims("sub-1", name="Kari"), new_account_id="acc-1", now=NOW
    )
    assert merged == 1
    same, merged = await store.link_identity(
        "phone", claims("sub-1", name="Kari N."), new_account_id="acc-2", now=NOW + 1
    )
    assert same.id == account.id == "acc-1" and merged == 1
    assert same.name == "Kari N."  # what the provider says now wins
    for device in ("laptop", "phone"):
        seen = {c.id for c in await store.visitor_conversations(device)}
        assert seen == {on_laptop, on_phone}, device
    assert on_laptop not in {c.id for c in await store.visitor_conversations("other")}
    # The phone writes into the thread the laptop started.
    reply = await store.append_message(
        NewMessage(
            message_id=uuid7(),
            author_role="visitor",
            author_id="phone",
            kind="text",
            body="from my phone",
            created_at=NOW,
            client_msg_id=uuid7(),
            conversation_id=on_laptop,
            visitor_id="phone",
            account_id="acc-1",
        )
    )
    assert reply.seq == 3  # after the message and the `verified` line of the merge
    subject = await store.subject("acc-1")
    assert subject is not None and set(subject.visitor_ids) == {"laptop", "phone"}


async def test_linking_a_visitor_of_another_account_is_a_conflict(store: AnyStore) -> None:
    """A visitor that belongs to one account cannot be linked to another: Conflict, and the
    whole link is undone (no half-made account); an unknown visitor is NotFound."""
    await visitor(store, "v1")
    conversation = await start(store, "v1")
    await store.link_identity("v1", claims("sub-a"), new_account_id="acc-a", now=NOW)
    with pytest.raises(Conflict):
        await store.link_identity("v1", claims("sub-b"), new_account_id="acc-b", now=NOW)
    assert await store.account_by_sub("sub-b") is None
    assert await count(store, "accounts") == 1
    c = await store.conversation(conversation)
    assert c is not None and c.account_id == "acc-a"
    with pytest.raises(NotFound):
        await store.link_identity("ghost", claims("sub-c"), new_account_id="acc-c", now=NOW)
    assert await store.account_by_sub("sub-c") is None


# ---------------------------------------------------------------- retention


async def test_a_long_anonymous_conversation_goes_in_batches_beside_live_writes(
    store: AnyStore,
) -> None:
    """1,200 old messages with batches of 500: three batches that each remove at most 500
    rows, oldest messages first, the conversation with the last; the relay writes to another
    conversation between and during the batches, and nothing of that is lost."""
    await visitor(store, "old")
    await visitor(store, "live", at=RECENT)
    long = await start(store, "old")
    assert await say(store, long, "old", 1199) == 1200
    live = await start(store, "live", at=RECENT)
    assert await store.retention_count("anonymous", CUTOFF) == {
        "conversations": 1,
        "messages": 1200,
    }

    batches = []
    live_seq = 1
    gone = 0
    while True:
        removed, files = await store.retention_batch("anonymous", CUTOFF, now=NOW, limit=500)
        assert files == []
        if not any(removed.values()):
            break
        batches.append(removed)
        # At most ``limit`` rows, fewer when the batch's time is up (a short transaction).
        assert 0 < removed["messages"] + removed["conversations"] <= 500
        gone += removed["messages"]
        if removed["conversations"] == 0:
            left = await store.messages_after(long, 0, 1)
            assert left[0].seq == 1 + gone  # the oldest went first
        # The relay between batches: a live message, stored and numbered as always.
        live_seq = await say(store, live, "live", 1, at=NOW)
    assert len(batches) >= 3
    assert sum(b["messages"] for b in batches) == 1200
    assert [b["conversations"] for b in batches] == [0] * (len(batches) - 1) + [1]
    assert await store.conversation(long) is None
    assert await count(store, "messages", "conversation_id = ?", (long,)) == 0
    assert live_seq == len(batches) + 1
    kept = await store.messages_after(live, 0, 2000)
    assert [m.seq for m in kept] == list(range(1, len(batches) + 2))


async def test_a_batch_and_a_live_write_at_the_same_time(store: AnyStore) -> None:
    """A retention batch and live messages sent at the same moment all commit; the live
    conversation keeps every message with gapless seqs."""
    await visitor(store, "old")
    await visitor(store, "live", at=RECENT)
    long = await start(store, "old")
    await say(store, long, "old", 599)
    live = await start(store, "live", at=RECENT)
    batch, last_seq = await asyncio.gather(
        store.retention_batch("anonymous", CUTOFF, now=NOW, limit=500),
        say(store, live, "live", 50, at=NOW),
    )
    # At most ``limit`` rows; fewer when the batch's time budget ran out first (a busy box).
    removed = batch[0]
    assert removed["conversations"] == 0 and 0 < removed["messages"] <= 500
    assert last_seq == 51
    assert [m.seq for m in await store.messages_after(live, 0, 100)] == list(range(1, 52))
    rest = 600 - removed["messages"]
    assert total(await run_out(store, "anonymous")) == {"conversations": 1, "messages": rest}


async def test_a_conversation_on_hold_is_kept_by_every_category(store: AnyStore) -> None:
    """An old anonymous conversation on legal hold stays through ``anonymous`` and
    ``resolved``; its neighbour without a hold goes; once released, it goes too."""
    await visitor(store, "v1")
    held = await start(store, "v1")
    free = await start(store, "v1")
    for cid in (held, free):
        await store.update_conversation(cid, now=OLD, status="resolved")
    await hold(store, conversation=held)
    # Each has its message and the `resolved` event line.
    both = {"conversations": 1, "messages": 2}
    assert await store.retention_count("anonymous", CUTOFF) == both
    assert await store.retention_count("resolved", CUTOFF) == both
    assert total(await run_out(store, "resolved")) == both
    assert total(await run_out(store, "anonymous")) == {}
    assert await conversation_ids(store) == {held}

    await hold(store, conversation=held, on=False)
    assert total(await run_out(store, "anonymous")) == both
    assert await conversation_ids(store) == set()


async def test_a_person_on_hold_keeps_all_their_data(store: AnyStore) -> None:
    """A hold on a never-verified visitor keeps their conversations, sessions, full IP and
    the visitor itself; a hold on an account keeps its resolved conversations. Everyone
    else's old data goes."""
    await visitor(store, "held-visitor")
    await visitor(store, "free-visitor")
    await visitor(store, "held-person")
    held_anon = await start(store, "held-visitor")
    free_anon = await start(store, "free-visitor")
    held_session = await session(store, "held-visitor", ip="198.51.100.23")
    free_session = await session(store, "free-visitor", ip="198.51.100.24")
    account, _ = await store.link_identity(
        "held-person", claims("sub-h"), new_account_id="acc-h", now=OLD
    )
    resolved = await start(store, "held-person")
    await store.update_conversation(resolved, now=OLD, status="resolved")
    await hold(store, subject="held-visitor")
    await hold(store, subject=account.id)
    subject = await store.subject(account.id)
    assert subject is not None and subject.legal_hold

    cutoff = NOW - 30 * DAY
    expected = {
        "anonymous": {"conversations": 1, "messages": 1},
        "resolved": {"conversations": 0, "messages": 0},
        "ip": {"ip_addresses": 1},
        "sessions": {"sessions": 1, "visitors": 1},
    }
    for category, counts in expected.items():
        assert await store.retention_count(category, cutoff) == counts, category
        removed = total(await run_out(store, category, cutoff))
        assert removed == {k: v for k, v in counts.items() if v}, category

    assert await conversation_ids(store) == {held_anon, resolved}
    assert free_anon not in await conversation_ids(store)
    assert await rows(store, "SELECT id, ip, ip_truncated_at FROM visitor_sessions") == [
        (held_session, "198.51.100.23", None)
    ]
    assert free_session not in {r[0] for r in await rows(store, "SELECT id FROM visitor_sessions")}
    assert {r[0] for r in await rows(store, "SELECT id FROM visitors")} == {
        "held-visitor",
        "held-person",
    }


async def test_ip_retention_truncates_and_marks_each_address_once(store: AnyStore) -> None:
    """Old sessions' IPs are cut (IPv4 /24, IPv6 /48, mapped IPv4 /24, garbage dropped) and
    marked with ``ip_truncated_at``; recent sessions and sessions without an IP are left
    alone, and a second run finds nothing more to do."""
    await visitor(store, "v1")
    sessions = {
        "v4": await session(store, "v1", ip="192.0.2.77"),
        "v6": await session(store, "v1", ip="2001:db8:abcd:1234::99"),
        "mapped": await session(store, "v1", ip="::ffff:203.0.113.9"),
        "garbage": await session(store, "v1", ip="unknown"),
        "none": await session(store, "v1", ip=None),
        "recent": await session(store, "v1", at=RECENT, ip="192.0.2.200"),
    }
    cutoff = NOW - 30 * DAY
    assert await store.retention_count("ip", cutoff) == {"ip_addresses": 4}
    batches = await run_out(store, "ip", cutoff, limit=3)
    assert batches == [{"ip_addresses": 3}, {"ip_addresses": 1}]
    got = {
        r[0]: (r[1], r[2])
        for r in await rows(store, "SELECT id, ip, ip_truncated_at FROM visitor_sessions")
    }
    assert got[sessions["v4"]] == ("192.0.2.0", NOW)
    assert got[sessions["v6"]] == ("2001:db8:abcd::", NOW)
    assert got[sessions["mapped"]] == ("203.0.113.0", NOW)
    assert got[sessions["garbage"]] == (None, NOW)
    assert got[sessions["none"]] == (None, None)
    assert got[sessions["recent"]] == ("192.0.2.200", None)
    assert await store.retention_count("ip", cutoff) == {"ip_addresses": 0}
    assert await run_out(store, "ip", cutoff) == []


async def mixed_data(store: AnyStore, tmp_path: Path) -> None:
    """Something old (and something new) in every retention category."""
    for i in range(3):
        vid = await visitor(store, f"anon-{i}")
        cid = await start(store, vid)
        await say(store, cid, vid, 2 + i)
        await session(store, vid, ip=f"192.0.2.{i}")
    await visitor(store, "recent", at=RECENT)
    await start(store, "recent", at=RECENT)
    await session(store, "recent", at=RECENT)
    await visitor(store, "lonely")  # an old visitor with nothing at all
    await visitor(store, "verified")
    await store.link_identity("verified", claims("sub-v"), new_account_id="acc-v", now=OLD)
    closed = await start(store, "verified")
    await store.update_conversation(closed, now=OLD, status="resolved")
    await start(store, "verified")  # open: stays
    # Kept by the sessions rule (30 days), old enough for the IP rule (7 days).
    await session(store, "verified", at=NOW - 10 * DAY, ip="2001:db8:1:2::3")
    exports = tmp_path / "exports"
    exports.mkdir(exist_ok=True)
    for i, at in enumerate((OLD, OLD, RECENT)):
        path = exports / f"e{i}.zip"
        path.write_bytes(b"PK")
        await store.add_export_file(f"e{i}", "acc-v", str(path), at)
    for i in range(4):
        await store.append_audit(
            AuditRecord(id=uuid7(), at=OLD + i, action="subject.search", actor_role="system")
        )
    # Webhook deliveries: an old logged one, an old pending one about an anonymous
    # conversation (it goes with the conversation, not counted again), a recent one.
    anonymous = (await store.visitor_conversations("anon-0"))[0].id

    await execute(
        store,
        "INSERT INTO webhooks (id, url, secret, events, created_at, updated_at) "
        "VALUES ('w1', 'https://hooks.example/', 'whsec_x', '[]', ?, ?)",
        (OLD, OLD),
    )
    for delivery, conversation, status, at in (
        ("d-old", None, "delivered", OLD),
        ("d-pending", anonymous, "pending", OLD),
        ("d-recent", None, "delivered", RECENT),
    ):
        await execute(
            store,
            "INSERT INTO webhook_deliveries (id, webhook_id, event_type, conversation_id, "
            "payload, status, created_at) VALUES (?, 'w1', 'message.created', ?, ?, ?, ?)",
            (delivery, conversation, "{}" if conversation else None, status, at),
        )
    # Staff invitations: accepted, revoked and expired long ago go; a pending one (its
    # link still works) and one accepted yesterday stay.
    for n, (expires, used, revoked) in enumerate(
        (
            (OLD + 3 * DAY, OLD + DAY, None),
            (OLD + 3 * DAY, None, OLD + DAY),
            (OLD + 3 * DAY, None, None),
            (NOW + 3 * DAY, None, None),
            (NOW + 2 * DAY, RECENT, None),
        )
    ):
        await execute(
            store,
            "INSERT INTO agent_invitations (id, email, name, role, token_hash, created_at, "
            "expires_at, used_at, revoked_at) VALUES (?, ?, 'Invitee', 'agent', ?, ?, ?, ?, ?)",
            (f"inv-{n}", f"i{n}@staff.example", f"hash-{n}", OLD, expires, used, revoked),
        )


async def test_each_categorys_count_is_what_its_run_removes(
    store: AnyStore, tmp_path: Path
) -> None:
    """Category by category, in a run's order, the dry run's count equals what the real
    batches then remove, and nothing is left to count afterwards."""
    await mixed_data(store, tmp_path)
    cutoffs = {category: NOW - 30 * DAY for category in RETENTION_CATEGORIES}
    cutoffs["ip"] = NOW - 7 * DAY
    removed_anything = set()
    for category in RETENTION_CATEGORIES:
        counted = await store.retention_count(category, cutoffs[category])
        real = total(await run_out(store, category, cutoffs[category], limit=2))
        assert {k: v for k, v in counted.items() if v} == real, category
        assert not any((await store.retention_count(category, cutoffs[category])).values())
        if real:
            removed_anything.add(category)
    assert removed_anything == set(RETENTION_CATEGORIES)


async def test_invitations_go_once_ended_that_long_ago(store: AnyStore, tmp_path: Path) -> None:
    """The ``invitations`` rule deletes invitations accepted, revoked or expired before the
    cutoff; a pending one and one accepted after the cutoff stay."""
    await mixed_data(store, tmp_path)
    removed = total(await run_out(store, "invitations", NOW - 30 * DAY, limit=2))
    assert removed == {"invitations": 3}
    left = await rows(store, "SELECT id FROM agent_invitations ORDER BY id")
    assert left == [("inv-3",), ("inv-4",)]


async def test_a_dry_run_reports_what_the_real_run_then_removes(
    store: AnyStore, tmp_path: Path
) -> None:
    """A whole dry run (the numbers ``retention run --dry-run`` prints) equals the real run
    made right after it, category by category."""
    await mixed_data(store, tmp_path)
    await store.update_conversation(
        (await store.visitor_conversations("anon-0"))[0].id, now=OLD, status="resolved"
    )
    settings = Settings.from_mapping(
        {
            "data_dir": str(tmp_path),
            "retention_anonymous": "30d",
            "retention_resolved": "30d",
            "retention_sessions": "30d",
            "retention_ip": "7d",
            "retention_exports": "30d",
            "retention_audit": "30d",
            "retention_batch": 2,
        }
    )
    removed: list[str] = []
    dry = await retention.sweep(
        store, settings, now_us=NOW, dry_run=True, remove_file=removed.append
    )
    assert removed == []
    real = await retention.sweep(
        store, settings, now_us=NOW, dry_run=False, remove_file=removed.append
    )
    assert len(removed) == 2
    differ = {}
    for category in RETENTION_CATEGORIES:
        dry_counts = {k: v for k, v in dry[category][2].items() if v}
        real_counts = {k: v for k, v in real[category][2].items() if v}
        if dry_counts != real_counts:
            differ[category] = {"dry run": dry_counts, "real run": real_counts}
    assert differ == {}


# ---------------------------------------------------------------- erasure


async def person_with_everything(store: AnyStore, tmp_path: Path) -> dict[str, Any]:
    """A verified person on two devices with threads, sessions, consents, a rectification
    and an export file; and a stranger whose data must survive the person's erasure."""
    await visitor(store, "laptop")
    await visitor(store, "phone")
    await store.link_identity(
        "laptop", claims("sub-k", name="Kari"), new_account_id="acc-k", now=OLD
    )
    await store.link_identity("phone", claims("sub-k", name="Kari"), new_account_id="x", now=OLD)
    first = await start(store, "laptop")
    await say(store, first, "laptop", 4)
    second = await start(store, "phone")
    await session(store, "laptop")
    await session(store, "phone")
    await store.publish_policy("2026-11", None, OLD)
    await store.record_consent(uuid7(), "2026-11", "laptop", "acc-k", OLD)
    await store.record_consent(uuid7(), "2026-11", "phone", "acc-k", OLD + 1)
    await store.request_rectification(
        rectification_id="r1",
        account_id="acc-k",
        field="name",
        value="Kari N.",
        requested_by="compliance:o",
        now=OLD,
        audit=audit("rectification.request"),
    )
    export = tmp_path / "exports" / "kari.zip"
    await store.add_export_file("e1", "acc-k", str(export), OLD)

    await visitor(store, "stranger")
    stranger = await start(store, "stranger")
    await session(store, "stranger")
    await store.record_consent(uuid7(), "2026-11", "stranger", None, OLD)
    return {
        "conversations": [first, second],
        "stranger": stranger,
        "export": str(export),
    }


async def erase(store: AnyStore, subject_id: str, ref: str, tombstone_id: str = "t1") -> Any:
    return await store.erase_subject(
        subject_id,
        tombstone_id=tombstone_id,
        subject_ref=ref,
        ordered_by="compliance:officer",
        now=NOW,
        audit=AuditRecord(
            id=uuid7(),
            at=NOW,
            action="subject.erasure",
            actor_role="compliance",
            actor_id="officer",
            subject_id=subject_id,
        ),
    )


async def test_erasure_removes_everything_of_the_person(store: AnyStore, tmp_path: Path) -> None:
    """Erasing an account removes its conversations, messages, sessions, consents, visitors,
    rectifications, export rows and the account, in one go, and leaves a tombstone with the
    counts; the stranger's data is untouched."""
    made = await person_with_everything(store, tmp_path)
    tombstone, erased, subject, removed_conversations, files = await erase(store, "acc-k", "ref-k")
    assert erased is True
    assert subject is not None and set(subject.visitor_ids) == {"laptop", "phone"}
    assert set(removed_conversations) == set(made["conversations"])
    assert files == [made["export"]]
    assert tombstone.id == "t1" and tombstone.erased_at == NOW
    assert tombstone.counts == {
        "conversations": 2,
        "messages": 6,
        "sessions": 2,
        "visitors": 2,
        "consents": 2,
        "rectifications": 1,
        "export_files": 1,
        "accounts": 1,
        "ratings": 0,
    }
    person = ("laptop", "phone")
    assert await count(store, "accounts") == 0
    assert await count(store, "visitors", "id IN (?, ?)", person) == 0
    assert await count(store, "visitor_sessions", "visitor_id IN (?, ?)", person) == 0
    assert (
        await count(store, "consents", "visitor_id IN (?, ?) OR account_id = 'acc-k'", person) == 0
    )
    assert (
        await count(store, "conversations", "visitor_id IN (?, ?) OR account_id = 'acc-k'", person)
        == 0
    )
    assert (
        await count(store, "messages", "conversation_id IN (?, ?)", tuple(made["conversations"]))
        == 0
    )
    assert await count(store, "messages", "author_id IN (?, ?)", person) == 0
    assert await count(store, "rectifications") == 0
    assert await count(store, "export_files") == 0
    assert await rows(store, "SELECT id, subject_ref, erased_at FROM tombstones") == [
        ("t1", "ref-k", NOW)
    ]
    [entry] = await store.audit_page(action="subject.erasure")
    assert entry.subject_id == "acc-k" and '"tombstone":"t1"' in entry.details
    # The stranger is as before.
    assert await store.conversation(made["stranger"]) is not None
    assert await count(store, "visitor_sessions", "visitor_id = 'stranger'") == 1
    assert await count(store, "consents", "visitor_id = 'stranger'") == 1


async def test_erasure_is_idempotent_by_subject_ref(store: AnyStore, tmp_path: Path) -> None:
    """Erasing again (same reference) answers the first tombstone, erases nothing and
    audits nothing; an unknown id without a tombstone is NotFound."""
    await person_with_everything(store, tmp_path)
    first, erased, *_ = await erase(store, "acc-k", "ref-k")
    audited = len(await store.audit_page(limit=1000))
    again, erased_again, subject, conversations, files = await erase(
        store, "acc-k", "ref-k", tombstone_id="t2"
    )
    assert erased is True and erased_again is False
    assert again == first
    assert (subject, conversations, files) == (None, [], [])
    assert await count(store, "tombstones") == 1
    assert len(await store.audit_page(limit=1000)) == audited
    with pytest.raises(NotFound):
        await erase(store, "acc-k", "another-ref", tombstone_id="t3")
    with pytest.raises(NotFound):
        await erase(store, "nobody", "ref-nobody", tombstone_id="t4")
    assert await count(store, "tombstones") == 1


async def test_erasure_of_a_never_verified_visitor(store: AnyStore, tmp_path: Path) -> None:
    """An anonymous visitor is a subject too: their threads, sessions, consents and the
    visitor go; no account is counted."""
    made = await person_with_everything(store, tmp_path)
    tombstone, erased, subject, conversations, _ = await erase(store, "stranger", "ref-s")
    assert erased and subject is not None and subject.kind == "visitor"
    assert conversations == [made["stranger"]]
    assert "accounts" not in tombstone.counts
    assert tombstone.counts["visitors"] == 1 and tombstone.counts["consents"] == 1
    assert await count(store, "visitors", "id = 'stranger'") == 0
    assert await count(store, "accounts") == 1  # the other person is still there


@pytest.mark.parametrize("on", ["person", "conversation"])
async def test_erasure_is_refused_while_on_legal_hold(
    store: AnyStore, tmp_path: Path, on: str
) -> None:
    """A hold on the person or on one of their conversations refuses erasure (Conflict) and
    removes nothing; released, the erasure goes through."""
    made = await person_with_everything(store, tmp_path)
    target = {"subject": "acc-k"} if on == "person" else {"conversation": made["conversations"][1]}
    await hold(store, **target)
    with pytest.raises(Conflict):
        await erase(store, "acc-k", "ref-k")
    assert await count(store, "accounts") == 1
    assert await count(store, "messages", "conversation_id = ?", (made["conversations"][0],)) == 5
    assert await count(store, "tombstones") == 0
    await hold(store, **target, on=False)
    _, erased, *_ = await erase(store, "acc-k", "ref-k")
    assert erased is True and await count(store, "accounts") == 0


# ---------------------------------------------------------------- export, search, rectification


async def test_export_rows_are_everything_of_the_person(store: AnyStore, tmp_path: Path) -> None:
    """The export's rows: the account (with whether a national id is on record), both
    devices' threads and messages in order, sessions, consents, the rectification; nothing
    of the stranger. An unknown subject has none."""
    made = await person_with_everything(store, tmp_path)
    got = await store.export_rows("acc-k")
    assert got is not None
    assert got["subject"].kind == "account" and set(got["subject"].visitor_ids) == {
        "laptop",
        "phone",
    }
    assert got["account"]["sub"] == "sub-k" and got["account"]["has_pid"] == 0
    assert got["account"]["name"] == "Kari"  # a verified name: the correction waits
    assert {c["id"] for c in got["conversations"]} == set(made["conversations"])
    first = made["conversations"][0]
    assert [m["seq"] for m in got["messages"] if m["conversation_id"] == first] == [1, 2, 3, 4, 5]
    assert {s["visitor_id"] for s in got["sessions"]} == {"laptop", "phone"}
    assert [c["policy_version"] for c in got["consents"]] == ["2026-11", "2026-11"]
    assert [r["id"] for r in got["rectifications"]] == ["r1"]
    assert got["attachments"] == [] and got["ratings"] == []
    assert made["stranger"] not in {c["id"] for c in got["conversations"]}
    assert await store.export_rows("nobody") is None


async def test_find_subjects_and_audit_the_search(store: AnyStore, tmp_path: Path) -> None:
    """Subjects by sub and by email (any case, also an anonymous visitor who left it);
    the search is audited with what it found."""
    await person_with_everything(store, tmp_path)
    await store.link_identity(
        "stranger", claims("sub-s", email="S@Example.no"), new_account_id="acc-s", now=NOW
    )
    await visitor(store, "anon")
    await store.writer.idle()
    found = await store.find_subjects(sub="sub-k", audit=audit("subject.search"))
    assert [s.id for s in found] == ["acc-k"]
    assert [s.id for s in await store.find_subjects(email="s@example.NO")] == ["acc-s"]
    assert await store.find_subjects(sub="nobody") == []
    [entry] = await store.audit_page(action="subject.search")
    assert '"found":["acc-k"]' in entry.details
    assert set(await store.subject_ids()) >= {"acc-k", "acc-s", "anon"}


async def test_a_rectification_of_a_verified_field_waits_for_a_decision(
    store: AnyStore,
) -> None:
    """A verified field's correction is pending until approved (then it applies and is no
    longer verified); deciding twice is a Conflict; an unverified field applies at once."""
    await visitor(store, "v1")
    await store.link_identity(
        "v1", claims("sub-1", name="Kari", email="k@example.no"), new_account_id="a1", now=OLD
    )
    pending = await store.request_rectification(
        rectification_id="r1",
        account_id="a1",
        field="name",
        value="Kari N.",
        requested_by="subject:a1",
        now=NOW,
        audit=audit("rectification.request"),
    )
    assert (pending.status, pending.old_value, pending.decided_at) == ("pending", "Kari", None)
    decided = await store.decide_rectification(
        "r1", approve=True, by="compliance:o", now=NOW + 1, audit=audit("rectification.approve")
    )
    assert (decided.status, decided.decided_by) == ("applied", "compliance:o")
    account = await store.account("a1")
    assert account is not None and account.name == "Kari N."
    assert account.verified_fields == ("email",)
    with pytest.raises(Conflict):
        await store.decide_rectification(
            "r1", approve=False, by="x", now=NOW + 2, audit=audit("rectification.reject")
        )
    applied = await store.request_rectification(
        rectification_id="r2",
        account_id="a1",
        field="phone",
        value="+47 1",
        requested_by=None,
        now=NOW + 3,
        audit=audit("rectification.request"),
    )
    assert applied.status == "applied" and applied.decided_at == NOW + 3
    assert [r.id for r in await store.rectifications("a1")] == ["r1", "r2"]
    assert await store.rectification("r2") == applied
    with pytest.raises(NotFound):
        await store.decide_rectification(
            "r9", approve=True, by="x", now=NOW, audit=audit("rectification.approve")
        )


# ---------------------------------------------------------------- audit chain


async def test_the_audit_chain_verifies_across_retention(store: AnyStore) -> None:
    """Entries appended at once chain in seq order; audit retention removes the oldest
    and anchors the chain where it now starts, and it still verifies."""
    entries = await asyncio.gather(
        *(
            store.append_audit(
                AuditRecord(id=uuid7(), at=OLD + i, action="subject.search", actor_role="system")
            )
            for i in range(20)
        )
    )
    assert len({e.seq for e in entries}) == 20
    page = await store.audit_page(limit=100)
    assert verify_chain(page, await store.audit_anchor()).ok
    assert total(await run_out(store, "audit", OLD + 5, limit=2)) == {"audit_entries": 5}
    anchor = await store.audit_anchor()
    page = await store.audit_page(limit=100)
    assert anchor is not None and anchor[0] < page[0].seq and len(page) == 15
    report = verify_chain(page, anchor)
    assert report.ok and report.entries == 15
    await store.append_audit(audit())
    assert verify_chain(await store.audit_page(limit=100), anchor).ok


async def test_two_nodes_append_to_one_audit_chain(pg_url: str) -> None:
    """Two PostgreSQL stores (two nodes) on one schema appending at the same time keep one
    linear chain: every entry's previous hash is the entry before it."""
    nodes = [PostgresStore.from_url(pg_url), PostgresStore.from_url(pg_url)]
    for node in nodes:
        await node.open()
    try:

        async def burst(node: PostgresStore, n: int) -> None:
            await asyncio.gather(
                *(
                    node.append_audit(
                        AuditRecord(
                            id=uuid7(), at=NOW + i, action="subject.search", actor_role="system"
                        )
                    )
                    for i in range(n)
                )
            )

        for _ in range(5):
            await asyncio.gather(*(burst(node, 40) for node in nodes))
        page = await nodes[0].audit_page(limit=1000)
        assert len(page) == 400
        report = verify_chain(page, await nodes[1].audit_anchor())
        assert report.ok, report
    finally:
        for node in nodes:
            await node.close()


# ---------------------------------------------------------------- job leases


async def test_a_job_lease_is_held_by_one_holder_until_it_expires(store: AnyStore) -> None:
    """Free: taken. Held: refused to others, renewed for its holder. Expired: anyone takes
    it, and the old holder is then refused."""
    lease = 60 * 1_000_000
    assert await store.claim_job("retention", "node-a", NOW, lease)
    assert not await store.claim_job("retention", "node-b", NOW + 1, lease)
    assert await store.claim_job("retention", "node-a", NOW + lease - 1, lease)  # renewed
    assert not await store.claim_job("retention", "node-b", NOW + lease, lease)
    assert await store.claim_job("other-job", "node-b", NOW, lease)  # leases are per job
    expired = NOW + 2 * lease - 1
    assert await store.claim_job("retention", "node-b", expired, lease)
    assert not await store.claim_job("retention", "node-a", expired + 1, lease)
    assert await rows(store, "SELECT name, holder, until FROM job_leases ORDER BY name") == [
        ("other-job", "node-b", NOW + lease),
        ("retention", "node-b", expired + lease),
    ]


async def test_nodes_claiming_at_once_get_one_lease(store: AnyStore) -> None:
    """Ten claims at the same moment: exactly one wins."""
    won = await asyncio.gather(
        *(store.claim_job("retention", f"node-{i}", NOW, 1_000_000) for i in range(10))
    )
    assert sum(won) == 1


class FixedClock(Clock):
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now


async def test_of_three_nodes_one_sweeps(store: AnyStore, tmp_path: Path) -> None:
    """Three nodes' sweepers on one store: one runs retention, the others skip; it keeps
    the lease at its next run, and another node takes over once it stops renewing."""
    settings = Settings.from_mapping(
        {"data_dir": str(tmp_path), "retention_interval": "1h", "retention_batch": 50}
    )
    clock = FixedClock(NOW)
    nodes = [
        Privacy(store, settings, clock, secret_key=b"k" * 32, node_id=f"node-{i}") for i in range(3)
    ]
    reports = await asyncio.gather(*(node.sweep_once() for node in nodes))
    assert sum(r is not None for r in reports) == 1
    runner = next(i for i, r in enumerate(reports) if r is not None)
    assert len(await store.retention_runs()) == 1
    clock.now += 3600 * 1_000_000  # an interval later: the same node again
    reports = await asyncio.gather(*(node.sweep_once() for node in nodes))
    assert [r is not None for r in reports] == [i == runner for i in range(3)]
    clock.now += 3 * 3600 * 1_000_000  # it stopped: after two intervals another takes over
    others = [node for i, node in enumerate(nodes) if i != runner]
    reports = await asyncio.gather(*(node.sweep_once() for node in others))
    assert sum(r is not None for r in reports) == 1
    assert len(await store.retention_runs()) == 3


async def test_after_an_erasure_postgresql_vacuums_the_tables(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL, purge_search_index and wipe_free_space return at once and VACUUM the
    erased tables in the background, on a connection of their own."""
    store = PostgresStore.from_url(pg_url)
    await store.open()
    try:
        await person_with_everything(store, tmp_path)
        await erase(store, "acc-k", "ref-k")
        await store.purge_search_index()
        await store.wipe_free_space()
        await store.vacuumed()
        assert not [r for r in caplog.records if "VACUUM" in r.getMessage()]
        for _ in range(50):
            vacuumed = await rows(
                store,
                "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                "AND relname IN ('messages', 'visitors', 'accounts') AND last_vacuum IS NOT NULL",
            )
            if vacuumed[0][0] == 3:
                break
            await asyncio.sleep(0.1)
        assert vacuumed[0][0] == 3
    finally:
        await store.close()


async def test_two_nodes_erasing_or_linking_the_same_person(pg_url: str, tmp_path: Path) -> None:
    """Two PostgreSQL nodes: the same ``sub`` linked on both at once makes one account;
    the same person erased on both at once is erased once, the other answers the same
    tombstone, as one after the other would on SQLite."""
    nodes = [PostgresStore.from_url(pg_url), PostgresStore.from_url(pg_url)]
    for node in nodes:
        await node.open()
    try:
        await visitor(nodes[0], "laptop")
        await visitor(nodes[0], "phone")
        await start(nodes[0], "laptop")
        linked = await asyncio.gather(
            nodes[0].link_identity("laptop", claims("sub-k"), new_account_id="a1", now=NOW),
            nodes[1].link_identity("phone", claims("sub-k"), new_account_id="a2", now=NOW),
        )
        assert {account.id for account, _ in linked} == {linked[0][0].id}
        assert await count(nodes[0], "accounts") == 1
        account_id = linked[0][0].id
        first, second = await asyncio.gather(
            erase(nodes[0], account_id, "ref-k", tombstone_id="t1"),
            erase(nodes[1], account_id, "ref-k", tombstone_id="t2"),
        )
        assert sorted([first[1], second[1]]) == [False, True]
        assert first[0] == second[0]
        assert await count(nodes[0], "tombstones") == 1
        assert await count(nodes[0], "visitors") == 0
        assert verify_chain(await nodes[0].audit_page(limit=100), None).ok
    finally:
        for node in nodes:
            await node.close()
