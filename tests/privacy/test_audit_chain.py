"""The audit log's hash chain (P14), built and broken through a real SQLite store.

Entries are appended the way the privacy operations append them; the tampering
is done as an intruder with file access would do it, with a plain sqlite3
connection beside the running store.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatserver.clock import uuid7
from chatserver.privacy.audit import GENESIS, ChainReport, canonical, chain_hash, verify_chain
from chatserver.store.models import AuditEntry, AuditRecord
from chatserver.store.sqlite import SQLiteStore

BASE = 1_700_000_000_000_000  # µs
SECOND = 1_000_000

CHANGED = "this entry was changed"
BEFORE_CHANGED = "an entry before this one was changed or removed"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "chat.db")
    await s.open()
    yield s
    await s.close()


@contextlib.contextmanager
def raw(store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    """A plain connection to the store's file, committing on success."""
    conn = sqlite3.connect(store.path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


async def append(store: SQLiteStore, n: int, *, start: int = 0) -> list[AuditEntry]:
    """``n`` entries one second apart, from ``BASE + start`` seconds."""
    entries = []
    for i in range(start, start + n):
        at = BASE + i * SECOND
        entries.append(
            await store.append_audit(
                AuditRecord(
                    id=uuid7(at),
                    at=at,
                    action="subject.export" if i % 2 else "subject.search",
                    actor_role="compliance",
                    actor_id=f"agent-{i % 3}",
                    subject_id=f"subject-{i}",
                    details={"n": i, "by": ["email"], "note": "ærlig"},
                )
            )
        )
    return entries


async def verify(store: SQLiteStore) -> ChainReport:
    entries = await store.audit_page(limit=1000)
    return verify_chain(entries, await store.audit_anchor())


async def test_an_intact_chain_verifies(store: SQLiteStore) -> None:
    """Ten appended entries link each to the one before, from the genesis hash, and verify."""
    written = await append(store, 10)
    stored = await store.audit_page(limit=1000)
    assert [e.seq for e in stored] == [e.seq for e in written]
    assert stored == written  # what the store answered on append is what it kept
    assert stored[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
        assert after.seq > before.seq
    assert await store.audit_anchor() is None
    assert await verify(store) == ChainReport(ok=True, entries=10)


async def test_an_empty_log_verifies(store: SQLiteStore) -> None:
    """No entries and no anchor is an intact (empty) chain."""
    assert await verify(store) == ChainReport(ok=True, entries=0)


async def test_details_are_stored_in_canonical_form(store: SQLiteStore) -> None:
    """Details are kept as the one canonical JSON text that the hash covers."""
    [entry] = await append(store, 1)
    assert entry.details == canonical({"n": 0, "by": ["email"], "note": "ærlig"})
    assert entry.hash == chain_hash(
        GENESIS,
        entry_id=entry.id,
        at=entry.at,
        actor_role=entry.actor_role,
        actor_id=entry.actor_id,
        action=entry.action,
        subject_id=entry.subject_id,
        details=entry.details,
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"by":["pid"],"n":4,"note":"ærlig"}'),
        ("actor_id", "someone-else"),
        ("actor_role", "system"),
        ("at", BASE + 4 * SECOND + 1),
        ("action", "subject.erasure"),
        ("subject_id", None),
        ("id", "not-the-id"),
    ],
)
async def test_changing_one_field_breaks_the_chain_at_that_entry(
    store: SQLiteStore, column: str, value: Any
) -> None:
    """Changing any hashed column of entry 5 is reported at entry 5 as changed."""
    entries = await append(store, 10)
    target = entries[4]
    with raw(store) as conn:
        changed = conn.execute(
            f"UPDATE audit_log SET {column} = ? WHERE seq = ?", (value, target.seq)
        ).rowcount
    assert changed == 1
    report = await verify(store)
    assert report.ok is False
    assert report.broken_at == target.seq
    assert report.problem == CHANGED
    assert "changed" in report.problem


async def test_a_rehashed_change_breaks_the_chain_at_the_next_entry(store: SQLiteStore) -> None:
    """Changing an entry and recomputing its own hash moves the break to the entry after it."""
    entries = await append(store, 6)
    target = entries[2]
    details = canonical({"n": 2, "by": [], "note": "nothing to see"})
    forged = chain_hash(
        target.prev_hash,
        entry_id=target.id,
        at=target.at,
        actor_role=target.actor_role,
        actor_id=target.actor_id,
        action=target.action,
        subject_id=target.subject_id,
        details=details,
    )
    with raw(store) as conn:
        conn.execute(
            "UPDATE audit_log SET details = ?, hash = ? WHERE seq = ?",
            (details, forged, target.seq),
        )
    report = await verify(store)
    assert (report.ok, report.broken_at, report.problem) == (
        False,
        entries[3].seq,
        BEFORE_CHANGED,
    )


async def test_deleting_a_middle_entry_breaks_the_chain_at_the_next_one(
    store: SQLiteStore,
) -> None:
    """Removing entry 5 of 10 is found at entry 6: its prev_hash names a missing entry."""
    entries = await append(store, 10)
    with raw(store) as conn:
        assert conn.execute("DELETE FROM audit_log WHERE seq = ?", (entries[4].seq,)).rowcount == 1
    report = await verify(store)
    assert report.ok is False
    assert report.broken_at == entries[5].seq
    assert report.problem == BEFORE_CHANGED


async def test_deleting_the_first_entry_without_an_anchor_breaks_the_chain(
    store: SQLiteStore,
) -> None:
    """With no anchor the chain starts at the genesis hash: removing entry 1 is found at entry 2."""
    entries = await append(store, 4)
    with raw(store) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (entries[0].seq,))
    report = await verify(store)
    assert (report.ok, report.broken_at, report.problem) == (False, entries[1].seq, BEFORE_CHANGED)


async def test_retention_removes_the_oldest_entries_and_anchors_the_chain(
    store: SQLiteStore,
) -> None:
    """Audit retention removes what is older than the cutoff in batches, sets the anchor to the
    last removed entry, and the chain that is left (and what is appended later) still verifies."""
    entries = await append(store, 10)
    cutoff = BASE + 4 * SECOND + SECOND // 2  # entries 0..4 are older
    assert await store.retention_count("audit", cutoff) == {"audit_entries": 5}
    batches = []
    while True:
        removed, files = await store.retention_batch(
            "audit", cutoff, now=BASE + 100 * SECOND, limit=3
        )
        assert files == []
        if not removed["audit_entries"]:
            break
        batches.append(removed["audit_entries"])
    assert batches == [3, 2]
    left = await store.audit_page(limit=1000)
    assert [e.seq for e in left] == [e.seq for e in entries[5:]]
    assert await store.audit_anchor() == (entries[4].seq, entries[4].hash)
    assert await verify(store) == ChainReport(ok=True, entries=5)
    assert await store.retention_count("audit", cutoff) == {"audit_entries": 0}

    # New entries chain on as before.
    more = await append(store, 2, start=10)
    assert more[0].prev_hash == entries[-1].hash
    assert await verify(store) == ChainReport(ok=True, entries=7)

    # Removing one more from the start, without moving the anchor, is caught.
    with raw(store) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (entries[5].seq,))
    report = await verify(store)
    assert report.ok is False
    assert report.broken_at == entries[6].seq
    assert report.problem == BEFORE_CHANGED


async def test_retention_of_every_entry_leaves_an_anchor_to_chain_from(
    store: SQLiteStore,
) -> None:
    """When retention removes the whole log, the next entry chains from the anchor's hash."""
    entries = await append(store, 3)
    removed, _ = await store.retention_batch(
        "audit", BASE + 100 * SECOND, now=BASE + 100 * SECOND, limit=500
    )
    assert removed == {"audit_entries": 3}
    assert await store.audit_page(limit=1000) == []
    assert await store.audit_anchor() == (entries[-1].seq, entries[-1].hash)
    assert await verify(store) == ChainReport(ok=True, entries=0)
    [after] = await append(store, 1, start=200)
    assert after.prev_hash == entries[-1].hash
    assert after.seq > entries[-1].seq  # AUTOINCREMENT: a removed seq is never reused
    assert await verify(store) == ChainReport(ok=True, entries=1)


async def test_an_entry_out_of_order_is_reported(store: SQLiteStore) -> None:
    """Entries handed over in the wrong seq order do not verify (checked on the pure function)."""
    entries = await append(store, 3)
    report = verify_chain([entries[1], entries[0], entries[2]], None)
    assert report.ok is False
    assert report.broken_at == entries[1].seq
