"""Writer operations of the PostgreSQL store that several nodes may run at once:
storing messages (seq allocation, idempotency, conversation creation and reopening).

The counterpart of ``_append_message`` in ``sqlite.py``, with the same answers.
What differs is how it stays right with several writers: SQLite has one writer
holding the database's write lock from BEGIN to COMMIT; here another node may
write the same conversation at any time, so

- the conversation's row is read ``FOR UPDATE`` once per transaction, which locks
  it until COMMIT: a second node's message to it waits, then reads the
  ``last_seq`` this transaction wrote; in between, seqs are counted in memory,
  as the SQLite store does;
- a retried message (same author and ``client_msg_id``) is refused by the unique
  index ``messages_idempotency`` (whether it was stored long ago or by another
  node a moment ago): the batch is rolled back, the writer runs each of its
  operations alone again, and alone an operation probes first, finds the
  committed message and answers it as the duplicate.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import msgspec

from chatserver import timeline
from chatserver.errors import BadRequest, Conflict, NotFound
from chatserver.store.models import Conversation, NewMessage, StoredMessage
from chatserver.store.pg_attachments import MESSAGE_ATTACHMENTS, claim_attachments
from chatserver.store.pg_writer import PgTx
from chatserver.store.rows import CONVERSATION_COLUMNS, CONVERSATION_FROM, _conversation
from chatserver.store.sqlite import _message

# The SQLite store's message columns, with the attachments aggregated in PostgreSQL's dialect.
MESSAGE_COLUMNS = (
    "m.id, m.conversation_id, m.seq, m.author_role, m.author_id, "
    "CASE m.author_role WHEN 'agent' THEN ag.name WHEN 'visitor' THEN ac.name END, "
    "m.kind, m.body, m.created_at, m.client_msg_id, " + MESSAGE_ATTACHMENTS + ", m.event"
)
MESSAGE_FROM = (
    "messages m "
    "LEFT JOIN agents ag ON m.author_role = 'agent' AND ag.id = m.author_id "
    "LEFT JOIN visitors v ON m.author_role = 'visitor' AND v.id = m.author_id "
    "LEFT JOIN accounts ac ON ac.id = v.account_id"
)


async def fetch_conversation(
    conn: asyncpg.Connection, tx: PgTx, conversation_id: str
) -> Conversation:
    """The conversation as this transaction sees it (seqs allocated in it included)."""
    row = await conn.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM {CONVERSATION_FROM} WHERE c.id = $1",
        conversation_id,
    )
    if row is None:
        raise NotFound("no such conversation")
    conversation = _conversation(row)
    last_seq = pending_last_seq(tx, conversation_id)
    if last_seq is not None:
        conversation = msgspec.structs.replace(conversation, last_seq=last_seq)
    return conversation


def pending_last_seq(tx: PgTx, conversation_id: str) -> int | None:
    """The conversation's last seq as this transaction has it, before ``_write_messages``."""
    entry = tx.state.get("seqs", {}).get(conversation_id)
    return None if entry is None else int(entry[0])


def pending_status(tx: PgTx, conversation_id: str, status: str) -> None:
    """A status change made in this transaction: later messages of it see it."""
    entry = tx.state.get("seqs", {}).get(conversation_id)
    if entry is not None:
        entry[3] = status


async def append_message(conn: asyncpg.Connection, tx: PgTx, new: NewMessage) -> StoredMessage:
    """Store one message, assigning its seq in this same transaction (invariant 2).

    The message rows of a batch are written by one ``executemany`` just before
    COMMIT (``_write_messages``); the conversation's seq is counted up here, so
    every later operation of the transaction sees it.
    """
    state = tx.state
    pending: dict[tuple[str, str | None, str], StoredMessage] = state.setdefault("by_client_id", {})
    if new.client_msg_id is not None:
        key = (new.author_role, new.author_id, new.client_msg_id)
        earlier = pending.get(key)
        # Files are claimed before the rows are written, so a retried message with
        # files would be refused for its own claim: it is probed here as well.
        if earlier is None and (tx.alone or new.attachments):
            # In a batch, no probe (a round trip per message): a retried message
            # makes the unique index refuse the batch's INSERT, and the writer then
            # runs each operation alone, when this probe answers it as the duplicate.
            earlier = await _stored_by_client_id(conn, key)
        if earlier is not None:
            if new.conversation_id is not None and earlier.conversation_id != new.conversation_id:
                raise Conflict("this client_msg_id was already used in another conversation")
            return msgspec.structs.replace(earlier, duplicate=True, created_conversation=False)
    # First, so that it runs before any step an operation below registers (the
    # attachments' links point at these rows).
    tx.before_commit("messages", _write_messages)
    created = False
    status = "open"
    conversation_id = new.conversation_id
    if conversation_id is None:
        if new.new_conversation_id is None or new.visitor_id is None:
            raise BadRequest("conversation_id is required")
        conversation_id = new.new_conversation_id
        status = "pending" if new.contact_email else "open"
        await conn.execute(
            "INSERT INTO conversations (id, visitor_id, account_id, status, contact_email, "
            "created_at, updated_at) SELECT $1, id, account_id, $2, $3, $4, $4 FROM visitors "
            "WHERE id = $5",
            conversation_id,
            status,
            new.contact_email,
            new.created_at,
            new.visitor_id,
        )
        created = True
    # The conversation's row is read and locked once per transaction; its seq is then
    # counted up here and written once, before COMMIT (``_write_messages``). The lock
    # keeps every other node's message to it waiting until then.
    seqs: dict[str, list[Any]] = state.setdefault("seqs", {})
    entry = seqs.get(conversation_id)
    if entry is None:
        row = await conn.fetchrow(
            "SELECT last_seq, visitor_id, status, account_id FROM conversations "
            "WHERE id = $1 FOR UPDATE",
            conversation_id,
        )
        if row is None:
            raise NotFound("no such conversation")
        # [last seq, visitor, newest message time (events are not counted), status, account]
        entry = seqs[conversation_id] = [row[0], row[1], None, row[2], row[3]]
    if (
        new.visitor_id is not None
        and entry[1] != new.visitor_id
        # A verified person writes from any of their devices into their account's threads.
        and (new.account_id is None or entry[4] != new.account_id)
    ):
        raise NotFound("no such conversation")
    refs = await claim_attachments(conn, tx, new, conversation_id) if new.attachments else ()
    reopened = False
    if new.author_role == "visitor" and entry[3] == "resolved":
        # The visitor wrote again: the conversation is back in the agents' open inbox.
        # Written now, not with the batch's seqs, so that a resolve later in this same
        # transaction still wins.
        await conn.execute(
            "UPDATE conversations SET status = 'open', closed_at = NULL WHERE id = $1",
            conversation_id,
        )
        entry[3] = "open"
        reopened = True
    entry[0] += 1
    if new.kind != "event":
        entry[2] = new.created_at if entry[2] is None else max(entry[2], new.created_at)
    seq, current_status = entry[0], entry[3]
    stored = StoredMessage(
        id=new.message_id,
        conversation_id=conversation_id,
        seq=seq,
        author_role=new.author_role,
        author_id=new.author_id,
        author_name=None,
        kind=new.kind,
        body=new.body,
        created_at=new.created_at,
        client_msg_id=new.client_msg_id,
        created_conversation=created,
        conversation_status=status if created else current_status,
        reopened=reopened,
        attachments=refs,
        event=new.event,
    )
    state.setdefault("rows", []).append(stored)
    if new.client_msg_id is not None:
        pending[(new.author_role, new.author_id, new.client_msg_id)] = stored
    if reopened:
        line = timeline.reopened_by_visitor()
        event = await append_event(conn, tx, conversation_id, line, new.created_at)
        return msgspec.structs.replace(stored, events=(event,))
    return stored


async def append_event(
    conn: asyncpg.Connection, tx: PgTx, conversation_id: str, line: timeline.EventLine, at: int
) -> StoredMessage:
    """Store an event message (``chatserver.timeline``) in this transaction, in the
    conversation's seq order like any message."""
    return await append_message(conn, tx, timeline.event_message(conversation_id, line, at))


async def _stored_by_client_id(
    conn: asyncpg.Connection, key: tuple[str, str | None, str]
) -> StoredMessage | None:
    # The bare index probe first: it is on every message's path, the join is not.
    hit = await conn.fetchval(
        "SELECT id FROM messages WHERE author_role = $1 AND author_id = $2 AND client_msg_id = $3",
        *key,
    )
    if hit is None:
        return None
    row = await conn.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.id = $1", hit)
    return _message(row)


async def _write_messages(conn: asyncpg.Connection, tx: PgTx) -> None:
    rows: list[StoredMessage] = tx.state.get("rows", [])
    if rows:
        await conn.executemany(
            "INSERT INTO messages (id, conversation_id, seq, author_role, author_id, kind, body, "
            "created_at, client_msg_id, event) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (
                    m.id,
                    m.conversation_id,
                    m.seq,
                    m.author_role,
                    m.author_id,
                    m.kind,
                    m.body,
                    m.created_at,
                    m.client_msg_id,
                    None if m.event is None else json.dumps(m.event, ensure_ascii=False),
                )
                for m in rows
            ],
        )
    seqs: dict[str, list[Any]] = tx.state.get("seqs", {})
    if seqs:
        # greatest(): another node's clock may be a little behind this one's. It ignores
        # NULL: a conversation that got only event messages keeps its last_message_at.
        await conn.executemany(
            "UPDATE conversations SET last_seq = $2, last_message_at = "
            "greatest(last_message_at, $3), updated_at = greatest(updated_at, $3) WHERE id = $1",
            [(cid, last, at) for cid, (last, _, at, *_) in seqs.items()],
        )
