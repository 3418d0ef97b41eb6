"""The privacy half of the SQLite store: linking identities, retention batches and legal
holds, and erasure, against a real database file (read back with a plain connection)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.clock import uuid7
from chatserver.config import Settings
from chatserver.errors import Conflict, NotFound
from chatserver.privacy import retention
from chatserver.store.models import AuditRecord, IdentityClaims, NewMessage, SessionInfo
from chatserver.store.sqlite import SQLiteStore
from chatserver.store.sqlite_privacy import RETENTION_CATEGORIES

DAY = 86_400 * 1_000_000  # µs
NOW = 1_800_000_000_000_000
OLD = NOW - 200 * DAY
RECENT = NOW - DAY
CUTOFF = NOW - 90 * DAY


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "chat.db")
    await s.open()
    yield s
    await s.close()


# ---------------------------------------------------------------- helpers


def rows(store: SQLiteStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file as anyone with access to it would, beside the running store."""
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        return conn.execute(sql, params).fetchall()


def count(store: SQLiteStore, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> int:
    return int(rows(store, f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0])


def audit(action: str = "test.act") -> AuditRecord:
    return AuditRecord(
        id=uuid7(), at=NOW, action=action, actor_role="compliance", actor_id="officer"
    )


def claims(sub: str, *, name: str | None = None, email: str | None = None) -> IdentityClaims:
    return IdentityClaims(sub=sub, name=name, email=email, phone=None, idp="bankid", pid_hash=None)


async def visitor(store: SQLiteStore, visitor_id: str, at: int = OLD) -> str:
    await store.create_visitor(visitor_id, "token-hash-" + visitor_id, at)
    return visitor_id


async def start(store: SQLiteStore, visitor_id: str, at: int = OLD, body: str = "hi") -> str:
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


async def say(
    store: SQLiteStore, conversation_id: str, visitor_id: str, n: int, at: int = OLD
) -> int:
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
    store: SQLiteStore, visitor_id: str, at: int = OLD, ip: str | None = "192.0.2.77"
) -> str:
    session_id = uuid7()
    await store.start_session(
        SessionInfo(id=session_id, visitor_id=visitor_id, started_at=at, ip=ip, user_agent="UA")
    )
    return session_id


async def run_out(
    store: SQLiteStore, category: str, cutoff: int = CUTOFF, limit: int = 500
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
    store: SQLiteStore,
    *,
    subject: str | None = None,
    conversation: str | None = None,
    on: bool = True,
) -> None:
    await store.set_legal_hold(
        subject_id=subject, conversation_id=conversation, hold=on, audit=audit("legal_hold")
    )


async def conversation_ids(store: SQLiteStore) -> set[str]:
    return {r[0] for r in rows(store, "SELECT id FROM conversations")}


# ---------------------------------------------------------------- linking identities


async def test_linking_merges_the_visitors_anonymous_conversations(store: SQLiteStore) -> None:
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
    for cid in (first, second):
        c = await store.conversation(cid)
        assert c is not None and c.account_id == "acc-1"
    c = await store.conversation(stranger)
    assert c is not None and c.account_id is None
    subject = await store.subject("acc-1")
    assert subject is not None and subject.kind == "account" and subject.visitor_ids == ("v1",)
    assert await store.subject("v1") is None  # no longer a person of their own
    assert count(store, "consents", "account_id = ?", ("acc-1",)) == 1

    again, merged_again = await store.link_identity(
        "v1", claims("sub-1", name="Kari"), new_account_id="acc-unused", now=NOW + 1
    )
    assert (again.id, merged_again) == ("acc-1", 0)
    assert count(store, "accounts") == 1


async def test_a_second_visitor_of_the_same_person_sees_both(store: SQLiteStore) -> None:
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
    assert reply.seq == 2
    subject = await store.subject("acc-1")
    assert subject is not None and set(subject.visitor_ids) == {"laptop", "phone"}


async def test_linking_a_visitor_of_another_account_is_a_conflict(store: SQLiteStore) -> None:
    """A visitor that belongs to one account cannot be linked to another: Conflict, and the
    whole link is undone (no half-made account); an unknown visitor is NotFound."""
    await visitor(store, "v1")
    conversation = await start(store, "v1")
    await store.link_identity("v1", claims("sub-a"), new_account_id="acc-a", now=NOW)
    with pytest.raises(Conflict):
        await store.link_identity("v1", claims("sub-b"), new_account_id="acc-b", now=NOW)
    assert await store.account_by_sub("sub-b") is None
    assert count(store, "accounts") == 1
    c = await store.conversation(conversation)
    assert c is not None and c.account_id == "acc-a"
    with pytest.raises(NotFound):
        await store.link_identity("ghost", claims("sub-c"), new_account_id="acc-c", now=NOW)
    assert await store.account_by_sub("sub-c") is None


# ---------------------------------------------------------------- retention


async def test_a_long_anonymous_conversation_goes_in_batches_beside_live_writes(
    store: SQLiteStore,
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
    assert count(store, "messages", "conversation_id = ?", (long,)) == 0
    assert live_seq == len(batches) + 1
    kept = await store.messages_after(live, 0, 2000)
    assert [m.seq for m in kept] == list(range(1, len(batches) + 2))


async def test_a_batch_and_a_live_write_at_the_same_time(store: SQLiteStore) -> None:
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
    assert batch[0] == {"conversations": 0, "messages": 500}
    assert last_seq == 51
    assert [m.seq for m in await store.messages_after(live, 0, 100)] == list(range(1, 52))
    assert total(await run_out(store, "anonymous")) == {"conversations": 1, "messages": 100}


async def test_a_conversation_on_hold_is_kept_by_every_category(store: SQLiteStore) -> None:
    """An old anonymous conversation on legal hold stays through ``anonymous`` and
    ``resolved``; its neighbour without a hold goes; once released, it goes too."""
    await visitor(store, "v1")
    held = await start(store, "v1")
    free = await start(store, "v1")
    for cid in (held, free):
        await store.update_conversation(cid, now=OLD, status="resolved")
    await hold(store, conversation=held)
    assert await store.retention_count("anonymous", CUTOFF) == {"conversations": 1, "messages": 1}
    assert await store.retention_count("resolved", CUTOFF) == {"conversations": 1, "messages": 1}
    assert total(await run_out(store, "resolved")) == {"conversations": 1, "messages": 1}
    assert total(await run_out(store, "anonymous")) == {}
    assert await conversation_ids(store) == {held}

    await hold(store, conversation=held, on=False)
    assert total(await run_out(store, "anonymous")) == {"conversations": 1, "messages": 1}
    assert await conversation_ids(store) == set()


async def test_a_person_on_hold_keeps_all_their_data(store: SQLiteStore) -> None:
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
    assert rows(store, "SELECT id, ip, ip_truncated_at FROM visitor_sessions") == [
        (held_session, "198.51.100.23", None)
    ]
    assert free_session not in {r[0] for r in rows(store, "SELECT id FROM visitor_sessions")}
    assert {r[0] for r in rows(store, "SELECT id FROM visitors")} == {"held-visitor", "held-person"}


async def test_ip_retention_truncates_and_marks_each_address_once(store: SQLiteStore) -> None:
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
        for r in rows(store, "SELECT id, ip, ip_truncated_at FROM visitor_sessions")
    }
    assert got[sessions["v4"]] == ("192.0.2.0", NOW)
    assert got[sessions["v6"]] == ("2001:db8:abcd::", NOW)
    assert got[sessions["mapped"]] == ("203.0.113.0", NOW)
    assert got[sessions["garbage"]] == (None, NOW)
    assert got[sessions["none"]] == (None, None)
    assert got[sessions["recent"]] == ("192.0.2.200", None)
    assert await store.retention_count("ip", cutoff) == {"ip_addresses": 0}
    assert await run_out(store, "ip", cutoff) == []


async def mixed_data(store: SQLiteStore, tmp_path: Path) -> None:
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

    def webhook_log(conn: sqlite3.Connection, tx: object) -> None:
        conn.execute(
            "INSERT INTO webhooks (id, url, secret, events, created_at, updated_at) "
            "VALUES ('w1', 'https://hooks.example/', 'whsec_x', '[]', ?, ?)",
            (OLD, OLD),
        )
        for delivery, conversation, status, at in (
            ("d-old", None, "delivered", OLD),
            ("d-pending", anonymous, "pending", OLD),
            ("d-recent", None, "delivered", RECENT),
        ):
            conn.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_type, conversation_id, "
                "payload, status, created_at) VALUES (?, 'w1', 'message.created', ?, ?, ?, ?)",
                (delivery, conversation, "{}" if conversation else None, status, at),
            )

    await store.writer.run(webhook_log)


async def test_each_categorys_count_is_what_its_run_removes(
    store: SQLiteStore, tmp_path: Path
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


async def test_a_dry_run_reports_what_the_real_run_then_removes(
    store: SQLiteStore, tmp_path: Path
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


async def person_with_everything(store: SQLiteStore, tmp_path: Path) -> dict[str, Any]:
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


async def erase(store: SQLiteStore, subject_id: str, ref: str, tombstone_id: str = "t1") -> Any:
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


async def test_erasure_removes_everything_of_the_person(store: SQLiteStore, tmp_path: Path) -> None:
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
    assert count(store, "accounts") == 0
    assert count(store, "visitors", "id IN (?, ?)", person) == 0
    assert count(store, "visitor_sessions", "visitor_id IN (?, ?)", person) == 0
    assert count(store, "consents", "visitor_id IN (?, ?) OR account_id = 'acc-k'", person) == 0
    assert (
        count(store, "conversations", "visitor_id IN (?, ?) OR account_id = 'acc-k'", person) == 0
    )
    assert count(store, "messages", "conversation_id IN (?, ?)", tuple(made["conversations"])) == 0
    assert count(store, "messages", "author_id IN (?, ?)", person) == 0
    assert count(store, "rectifications") == 0
    assert count(store, "export_files") == 0
    assert rows(store, "SELECT id, subject_ref, erased_at FROM tombstones") == [
        ("t1", "ref-k", NOW)
    ]
    [entry] = await store.audit_page(action="subject.erasure")
    assert entry.subject_id == "acc-k" and '"tombstone":"t1"' in entry.details
    # The stranger is as before.
    assert await store.conversation(made["stranger"]) is not None
    assert count(store, "visitor_sessions", "visitor_id = 'stranger'") == 1
    assert count(store, "consents", "visitor_id = 'stranger'") == 1


async def test_erasure_is_idempotent_by_subject_ref(store: SQLiteStore, tmp_path: Path) -> None:
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
    assert count(store, "tombstones") == 1
    assert len(await store.audit_page(limit=1000)) == audited
    with pytest.raises(NotFound):
        await erase(store, "acc-k", "another-ref", tombstone_id="t3")
    with pytest.raises(NotFound):
        await erase(store, "nobody", "ref-nobody", tombstone_id="t4")
    assert count(store, "tombstones") == 1


async def test_erasure_of_a_never_verified_visitor(store: SQLiteStore, tmp_path: Path) -> None:
    """An anonymous visitor is a subject too: their threads, sessions, consents and the
    visitor go; no account is counted."""
    made = await person_with_everything(store, tmp_path)
    tombstone, erased, subject, conversations, _ = await erase(store, "stranger", "ref-s")
    assert erased and subject is not None and subject.kind == "visitor"
    assert conversations == [made["stranger"]]
    assert "accounts" not in tombstone.counts
    assert tombstone.counts["visitors"] == 1 and tombstone.counts["consents"] == 1
    assert count(store, "visitors", "id = 'stranger'") == 0
    assert count(store, "accounts") == 1  # the other person is still there


@pytest.mark.parametrize("on", ["person", "conversation"])
async def test_erasure_is_refused_while_on_legal_hold(
    store: SQLiteStore, tmp_path: Path, on: str
) -> None:
    """A hold on the person or on one of their conversations refuses erasure (Conflict) and
    removes nothing; released, the erasure goes through."""
    made = await person_with_everything(store, tmp_path)
    target = {"subject": "acc-k"} if on == "person" else {"conversation": made["conversations"][1]}
    await hold(store, **target)
    with pytest.raises(Conflict):
        await erase(store, "acc-k", "ref-k")
    assert count(store, "accounts") == 1
    assert count(store, "messages", "conversation_id = ?", (made["conversations"][0],)) == 5
    assert count(store, "tombstones") == 0
    await hold(store, **target, on=False)
    _, erased, *_ = await erase(store, "acc-k", "ref-k")
    assert erased is True and count(store, "accounts") == 0
