"""The store's core contract on SQLite and PostgreSQL (the ``store`` fixture runs each test
on both): migrations, group commit, seq and idempotency rules, search. The tests that
look at SQLite's file and pragmas are SQLite's own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatserver.clock import uuid7
from chatserver.errors import NotFound
from chatserver.store.migrations import MIGRATIONS
from chatserver.store.models import NewMessage
from chatserver.store.pg_schema import MIGRATIONS as PG_MIGRATIONS
from chatserver.store.postgres import PostgresStore
from chatserver.store.sqlite import SQLiteStore

Store = SQLiteStore | PostgresStore


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "chat.db")
    await s.open()
    yield s
    await s.close()


def visitor_message(
    conversation: str | None, body: str, cid: str, visitor: str = "v1"
) -> NewMessage:
    return NewMessage(
        message_id=uuid7(),
        author_role="visitor",
        author_id=visitor,
        kind="text",
        body=body,
        created_at=1_700_000_000_000_000,
        client_msg_id=cid,
        conversation_id=conversation,
        new_conversation_id=None if conversation else uuid7(),
        visitor_id=visitor,
    )


async def new_conversation(store: Store, visitor: str = "v1") -> str:
    await store.create_visitor(visitor, "hash-" + visitor, 1)
    first = await store.append_message(visitor_message(None, "hi", "first-" + visitor, visitor))
    assert first.created_conversation and first.seq == 1
    return first.conversation_id


async def test_pragmas_protect_data(sqlite_store: SQLiteStore) -> None:
    """WAL, secure_delete, foreign keys and the configured synchronous mode are on."""

    def read(conn: sqlite3.Connection) -> tuple[object, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "secure_delete", "foreign_keys", "synchronous")
        )

    assert await sqlite_store.writer.run_in_thread(read) == ("wal", 1, 1, 2)  # 2 is FULL


async def test_migrations_are_recorded_and_applied_once(tmp_path: Path) -> None:
    """Opening twice applies each migration once and records its version."""
    for _ in range(2):
        s = SQLiteStore(tmp_path / "m.db")
        await s.open()
        assert await s.schema_version() == MIGRATIONS[-1][0]
        await s.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_postgresql_migrations_match_sqlite_ones() -> None:
    """Each SQLite migration has its PostgreSQL translation under the same number, so
    ``schema_version`` means the same on both."""
    assert [v for v, _, _ in PG_MIGRATIONS] == [v for v, _, _ in MIGRATIONS]


async def test_postgresql_nodes_starting_together_migrate_once(pg_url: str) -> None:
    """Three stores opening one fresh schema at once: each migration applied once, by one."""
    stores = [PostgresStore.from_url(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            assert await s.schema_version() == MIGRATIONS[-1][0]
        rows = await stores[0]._rows("SELECT count(*) FROM schema_migrations")
        assert rows[0][0] == len(MIGRATIONS)
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_writes_share_transactions_and_seqs_are_gapless(
    store: Store,
) -> None:
    """1,000 concurrent appends share commits, and get seqs 2..1001 exactly once each."""
    conv = await new_conversation(store)
    store.batches.clear()  # type: ignore[attr-defined]
    results = await asyncio.gather(
        *(store.append_message(visitor_message(conv, f"m{i}", f"c{i}")) for i in range(1000))
    )
    assert sorted(m.seq for m in results) == list(range(2, 1002))
    batches = store.batches  # type: ignore[attr-defined]
    # The search indexer's writes may ride along: at most one per batch.
    assert 1000 <= sum(batches) <= 1000 + len(batches)
    assert max(batches) > 1, "no two writes ever shared a transaction"
    # Submission order is seq order: one writer, batches in order.
    assert [m.seq for m in results] == list(range(2, 1002))


async def test_duplicate_client_msg_id_returns_the_first(store: Store) -> None:
    """A client_msg_id seen before answers the stored message, marked duplicate, storing nothing."""
    conv = await new_conversation(store)
    first = await store.append_message(visitor_message(conv, "once", "same"))
    again, also = await asyncio.gather(
        store.append_message(visitor_message(conv, "changed", "same")),
        store.append_message(visitor_message(conv, "changed", "same")),
    )
    for dup in (again, also):
        assert dup.duplicate and dup.id == first.id and dup.seq == first.seq
        assert dup.body == "once"
    conversation = await store.conversation(conv)
    assert conversation is not None and conversation.last_seq == 2


async def test_a_failing_write_does_not_fail_its_batch(store: Store) -> None:
    """One bad write in a batch is refused alone; the others commit."""
    conv = await new_conversation(store)
    good = [visitor_message(conv, f"ok{i}", f"ok{i}") for i in range(5)]
    bad = visitor_message("no-such-conversation", "bad", "bad")
    results = await asyncio.gather(
        *(store.append_message(m) for m in good[:2]),
        store.append_message(bad),
        *(store.append_message(m) for m in good[2:]),
        return_exceptions=True,
    )
    assert isinstance(results[2], NotFound)
    assert [r.seq for r in results if not isinstance(r, BaseException)] == [2, 3, 4, 5, 6]


async def test_a_visitor_cannot_write_into_another_visitors_conversation(
    store: Store,
) -> None:
    """The storing transaction checks the conversation belongs to the visiting author."""
    conv = await new_conversation(store, "v1")
    await store.create_visitor("v2", "hash-v2", 1)
    with pytest.raises(NotFound):
        await store.append_message(visitor_message(conv, "intrude", "x", visitor="v2"))


async def test_messages_after_pages_in_seq_order(store: Store) -> None:
    """messages_after returns seq > after in order, limited, optionally without notes."""
    conv = await new_conversation(store)
    for i in range(5):
        await store.append_message(
            NewMessage(
                message_id=uuid7(),
                author_role="agent",
                author_id="a",
                kind="note" if i % 2 else "text",
                body=f"b{i}",
                created_at=2,
                client_msg_id=f"a{i}",
                conversation_id=conv,
            )
        )
    assert [m.seq for m in await store.messages_after(conv, 2, 2)] == [3, 4]
    visible = await store.messages_after(conv, 0, 100, include_notes=False)
    assert [m.seq for m in visible] == [1, 2, 4, 6]


async def test_deleted_text_is_not_left_in_the_file(tmp_path: Path) -> None:
    """With secure_delete on, a deleted message's text does not stay readable in the file."""
    s = SQLiteStore(tmp_path / "erase.db")
    await s.open()
    conv = await new_conversation(s)
    marker = "UNIQUE-MARKER-7f3a9c"
    await s.append_message(visitor_message(conv, marker * 20, "secret"))
    await s.writer.run(
        lambda conn, tx: conn.execute("DELETE FROM messages WHERE client_msg_id='secret'")
    )
    await s.writer.run_in_thread(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    await s.close()
    data = (tmp_path / "erase.db").read_bytes()
    wal = tmp_path / "erase.db-wal"
    data += wal.read_bytes() if wal.exists() else b""
    assert marker.encode() not in data


async def test_search_uses_the_index_and_the_unindexed_tail(store: Store) -> None:
    """Search finds words in indexed messages and in ones the indexer has not reached yet
    (SQLite indexes behind the writer; PostgreSQL's index is written with the row)."""
    conv = await new_conversation(store)
    await store.append_message(visitor_message(conv, "Min skrivar er øydelagd", "a"))
    await store.index_now()
    other = await new_conversation(store, "v2")
    await store.append_message(visitor_message(other, "Faktura mangler", "b", visitor="v2"))
    indexed = (await store.list_conversations(q="skrivar")).items
    assert [c.id for c in indexed] == [conv]
    tail = (await store.list_conversations(q="faktura")).items
    assert [c.id for c in tail] == [other]
    prefix = (await store.list_conversations(q="skriv")).items
    assert [c.id for c in prefix] == [conv]
    both = (await store.list_conversations(q="skrivar ØYDEL")).items
    assert [c.id for c in both] == [conv]
    assert (await store.list_conversations(q="skrivar faktura")).items == []
    assert (await store.list_conversations(q='" OR body:*')).items == []
    assert (await store.list_conversations(q="%%")).items == []
    assert (await store.list_conversations(q="skriv' | faktura:*")).items == []


async def test_search_ignores_accents(store: Store) -> None:
    """Accents are folded away on both sides: café finds cafe, and cafe finds Café."""
    plain = await new_conversation(store)
    await store.append_message(visitor_message(plain, "Betalte i kafeen, cafe latte", "a"))
    accented = await new_conversation(store, "v2")
    await store.append_message(visitor_message(accented, "Møte på Café Ångström", "b", "v2"))
    await store.index_now()
    for q in ("cafe", "CAFÉ", "café"):
        found = {c.id for c in (await store.list_conversations(q=q)).items}
        assert found == {plain, accented}, q
    assert [c.id for c in (await store.list_conversations(q="angstr")).items] == [accented]
    assert [c.id for c in (await store.list_conversations(q="møte")).items] == [accented]


async def test_a_deleted_message_leaves_the_index(store: Store) -> None:
    """Deleting a message (erasure, retention) removes its words from the search index."""
    conv = await new_conversation(store)
    await store.append_message(visitor_message(conv, "secretword here", "s"))
    await store.index_now()
    assert [c.id for c in (await store.list_conversations(q="secretword")).items] == [conv]
    if isinstance(store, SQLiteStore):
        count = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'secretword'"
        assert await store.writer.run(lambda conn, tx: conn.execute(count).fetchone()[0]) == 1
    # The same call on both stores: SQLite's answers a cursor, PostgreSQL's a coroutine.
    await store.writer.run(
        lambda conn, tx: conn.execute("DELETE FROM messages WHERE client_msg_id = 's'")
    )
    if isinstance(store, SQLiteStore):
        assert await store.writer.run(lambda conn, tx: conn.execute(count).fetchone()[0]) == 0
    assert (await store.list_conversations(q="secretword")).items == []


async def test_purging_the_index_leaves_no_deleted_words_in_the_file(tmp_path: Path) -> None:
    """After delete and purge, neither the table nor the search index keeps the text."""
    s = SQLiteStore(tmp_path / "fts.db")
    await s.open()
    conv = await new_conversation(s)
    for i in range(30):
        await s.append_message(visitor_message(conv, f"filler message {i}", f"f{i}"))
    await s.append_message(visitor_message(conv, "zebrapassword", "z"))
    await s.index_now()
    await s.writer.run(
        lambda conn, tx: conn.execute("DELETE FROM messages WHERE client_msg_id='z'")
    )
    await s.purge_search_index()
    await s.close()
    data = (tmp_path / "fts.db").read_bytes()
    wal = tmp_path / "fts.db-wal"
    data += wal.read_bytes() if wal.exists() else b""
    assert b"zebrapassword" not in data
