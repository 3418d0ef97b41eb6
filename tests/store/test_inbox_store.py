"""The inbox reads of the Store (``list_conversations``' items, ``inbox_conversation``,
``conversation_counts``, search matches) answer the same on SQLite and PostgreSQL; and the
snippet and preview helpers behind them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from chatserver.clock import uuid7
from chatserver.store.models import NewMessage, SnippetPart
from chatserver.store.snippets import (
    MARK_END,
    MARK_START,
    marked_parts,
    plain_snippet,
    preview,
    unfolded_parts,
)
from chatserver.store.sqlite import SQLiteStore
from tests.store.test_store_contract import T0, agent, message, start


def parts(*pieces: tuple[str, bool]) -> tuple[SnippetPart, ...]:
    return tuple(SnippetPart(text=t, hit=h) for t, h in pieces)


def event(conversation: str, body: str, at: int) -> NewMessage:
    """An event message (a timeline line), as the server writes one."""
    return NewMessage(
        message_id=uuid7(),
        author_role="system",
        author_id=None,
        kind="event",
        body=body,
        created_at=at,
        conversation_id=conversation,
    )


async def read(store: Any, conv: str, reader: str, seq: int) -> None:
    future = asyncio.get_running_loop().create_future()
    store.submit_read(conv, "agent", reader, seq, T0 + seq, future.set_result)
    assert await future == seq


async def test_items_have_their_last_message_and_unread(store: Any) -> None:
    await agent(store, "a1")
    await agent(store, "a2")
    conv = await start(store)  # "hello", seq 1
    await store.append_message(message(conv, "\n \n  second, trimmed  \nmore", at=T0 + 1))
    await read(store, conv, "a1", 1)
    await store.append_message(message(conv, "mine", role="agent", author="a1", at=T0 + 2))
    await store.append_message(
        message(conv, "a note", role="agent", author="a2", kind="note", at=T0 + 3)
    )
    await store.append_message(event(conv, "Assigned to a2", T0 + 4))
    [item] = (await store.list_conversations(reader_id="a1")).items
    assert item.read_seq == 1 and item.unread == 2  # "second" and a2's note
    assert item.last_message is not None
    assert (item.last_message.seq, item.last_message.kind) == (4, "note")
    assert (item.last_message.author_role, item.last_message.preview) == ("agent", "a note")
    [theirs] = (await store.list_conversations(reader_id="a2")).items
    assert theirs.read_seq == 0 and theirs.unread == 3  # hello, second, mine
    [anyone] = (await store.list_conversations()).items
    assert anyone.read_seq == 0 and anyone.unread is None
    one = await store.inbox_conversation(conv)
    assert one is not None and one.last_message == item.last_message and one.read_seq is None
    assert await store.inbox_conversation("missing") is None
    lone = await start(store, "v2")
    await store.append_message(event(lone, "only an event", T0 + 5))
    listed = {c.id: c for c in (await store.list_conversations(reader_id="a1")).items}
    assert listed[lone].last_message is not None and listed[lone].last_message.seq == 1
    assert listed[lone].last_message.preview == "hello"


async def test_status_lists_and_counts(store: Any) -> None:
    await agent(store, "a1")
    await agent(store, "a2")
    a = await start(store, "v1")
    b = await start(store, "v2", at=T0 + 1)
    c = await start(store, "v3", at=T0 + 2, contact_email="k@v.example")
    d = await start(store, "v4", at=T0 + 3)
    await store.update_conversation(a, now=T0 + 4, assignee_id="a1", tags=["vip"])
    await store.update_conversation(b, now=T0 + 5, assignee_id="a2")
    await store.update_conversation(d, now=T0 + 6, status="resolved")
    await store.append_message(message(a, "more", at=T0 + 7))
    ids = [x.id for x in (await store.list_conversations(status=["open", "pending"])).items]
    assert ids == [a, b, c]
    assert [x.id for x in (await store.list_conversations(status="pending")).items] == [c]
    assert [x.id for x in (await store.list_conversations(status=["resolved"])).items] == [d]
    counts = await store.conversation_counts(reader_id="a1")
    assert counts.status == {"open": 2, "pending": 1, "resolved": 1}
    assert (counts.all, counts.unassigned, counts.mine) == (3, 1, 1)
    assert counts.unread == 2 + 1  # a (hello, more) and c; not b (a2's) nor d (resolved)
    seen = await store.conversation(a)
    await read(store, a, "a1", seen.last_seq)
    assert (await store.conversation_counts(reader_id="a1")).unread == 1
    vip = await store.conversation_counts(reader_id="a1", tag="vip")
    assert vip.status == {"open": 1, "pending": 0, "resolved": 0}
    assert (vip.all, vip.unassigned, vip.mine, vip.unread) == (1, 0, 1, 0)


async def test_search_matches_with_snippets(store: Any) -> None:
    conv = await start(store)
    await store.append_message(message(conv, "Where is my order? It is late", at=T0 + 1))
    await store.append_message(message(conv, "nothing", at=T0 + 2))
    other = await start(store, "v2", at=T0 + 3)
    await store.append_message(event(other, "order moved", T0 + 4))
    await store.index_now()
    [item] = (await store.list_conversations(q="order")).items
    assert item.id == conv and item.match is not None
    assert item.match.seq == 2
    assert item.match.snippet == parts(
        ("Where is my ", False), ("order", True), ("? It is late", False)
    )
    assert all(c.match is msgspec.UNSET for c in (await store.list_conversations()).items)
    assert (await store.list_conversations(q="moved")).items == []


async def test_sqlite_matches_the_unindexed_tail_by_substring(tmp_path: Any) -> None:
    """Messages the index has not reached match by LIKE, with a plain snippet that marks
    the substring; a body holding the marker characters gets a plain snippet too."""
    store = SQLiteStore(tmp_path / "chat.db")
    await store.open()
    try:
        conv = await start(store)
        odd_body = f"odd order {MARK_START}x{MARK_END}"
        await store.append_message(message(conv, odd_body, at=T0 + 1))
        await store.index_now()
        store._indexing = True  # the indexer is busy: what follows stays out of the index
        tail = await start(store, "v2", at=T0 + 2)
        await store.append_message(
            message(tail, "Please check the Reorder form again today", at=T0 + 3, visitor="v2")
        )
        found = {c.id: c for c in (await store.list_conversations(q="order")).items}
        assert set(found) == {conv, tail}
        assert found[tail].match is not None and found[tail].match.seq == 2
        assert found[tail].match.snippet == parts(
            ("Please check the Re", False), ("order", True), (" form again today", False)
        )
        odd = found[conv].match
        assert odd is not None
        # Not split on the body's own marker characters: they are text like any other.
        assert odd.snippet == parts(
            ("odd ", False), ("order", True), (f" {MARK_START}x{MARK_END}", False)
        )
    finally:
        await store.close()


def test_preview_is_the_first_non_empty_line_cut_to_140() -> None:
    assert preview("\n  \n  Hello there  \nsecond") == "Hello there"
    assert preview("") == "" and preview(None) == "" and preview(" \n\t\n") == ""
    long = "x" * 200
    assert preview(long) == "x" * 139 + "…" and len(preview(long)) == 140
    assert preview("y" * 140) == "y" * 140


def test_snippet_parts() -> None:
    assert marked_parts(f"…the {MARK_START}order{MARK_END}\n\n is  late") == parts(
        ("…the ", False), ("order", True), (" is late", False)
    )
    words = " ".join(f"w{i}" for i in range(40))
    got = plain_snippet(words + " needle " + words, "NEEDLE")
    assert got[1] == SnippetPart(text="needle", hit=True)
    assert got[0].text.startswith("…") and got[2].text.endswith("…")
    assert len("".join(p.text for p in got).split()) <= 17
    assert plain_snippet("no such thing here", "zzz") == parts(("no such thing here", False))
    # PostgreSQL's headline is of the folded text; the parts are in the body's letters.
    body = "Vi møtes på Café Ångström i morgen tidlig"
    headline = f"pa {MARK_START}Cafe{MARK_END} {MARK_START}Angstrom{MARK_END} i"
    assert unfolded_parts(body, headline) == parts(
        ("…på ", False), ("Café", True), (" ", False), ("Ångström", True), (" i…", False)
    )
    assert unfolded_parts("abc", f"{MARK_START}xyz{MARK_END}") == parts(("xyz", True))
