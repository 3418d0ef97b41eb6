"""Seeding a chatserver SQLite file directly, before the server starts.

The privacy benchmarks need tens of thousands of messages for one person and a
million expired ones; sending them through the relay would take minutes, so
they are written in one transaction with ``executemany``, on the same schema
(``chatserver.store.sqlite._migrate``) the server uses. The search index is
rebuilt and optimized at the end and ``fts_progress`` moved past the last
message, as on a server that has caught up: deleting an indexed message then costs what it
costs in production (the FTS delete trigger), and the server's background
indexer has nothing left to do during the measurements.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chatserver.clock import uuid7
from chatserver.store.sqlite import _migrate

DAY_US = 86_400 * 1_000_000
# Messages per seeded conversation; a person's export spans several conversations.
EXPORT_CONVERSATION_SIZE = 500


@dataclass(frozen=True)
class SeededSubject:
    subject_id: str  # the account id: what the export API takes
    messages: int
    conversations: int


def _vocabulary(rng: random.Random, n: int = 4000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(n)]


def _bodies(rng: random.Random, n: int = 20_000) -> list[str]:
    """A pool of chat lines (~50-70 characters) with a realistic spread of words."""
    words = _vocabulary(rng)
    return [" ".join(rng.choices(words, k=rng.randint(6, 11))) for _ in range(n)]


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    _migrate(conn)
    # Seeding only: nothing to survive, so no fsyncs; a big cache for the index inserts.
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    return conn


def finish(conn: sqlite3.Connection) -> None:
    """Index every message for search, as a caught-up server would have, and close."""
    conn.execute("BEGIN")
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    # One merged segment, as after the server's own 'optimize' (erasure, retention): a
    # fresh rebuild leaves several large level-0 segments whose first automatic merge
    # with the live indexer's small ones stalls one commit for ~0.3 s, an artifact.
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    conn.execute(
        "UPDATE fts_progress SET last_n = (SELECT coalesce(max(n), 0) FROM messages) WHERE id = 1"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


def _agent(conn: sqlite3.Connection, now: int) -> str:
    agent_id = uuid7(now)
    conn.execute(
        "INSERT INTO agents (id, email, name, role, kind, created_at) VALUES (?,?,?,?,?,?)",
        (agent_id, f"agent-{agent_id[-8:]}@bench.local", "Bench Agent", "agent", "human", now),
    )
    return agent_id


def _message_rows(
    conversation_id: str,
    count: int,
    start_us: int,
    visitor_id: str,
    agent_id: str,
    bodies: list[str],
    offset: int,
) -> Iterator[tuple[object, ...]]:
    """Messages 1..count of one conversation, a second apart, visitor and agent taking turns."""
    pool = len(bodies)
    for seq in range(1, count + 1):
        at = start_us + seq * 1_000_000
        if seq % 2:
            role, author, kind = "visitor", visitor_id, "text"
        else:
            role, author = "agent", agent_id
            kind = "note" if seq % 20 == 0 else "text"
        yield (
            uuid7(at),
            conversation_id,
            seq,
            role,
            author,
            kind,
            bodies[(offset + seq) % pool],
            at,
            str(uuid.uuid4()),
        )


_INSERT_MESSAGE = (
    "INSERT INTO messages (id, conversation_id, seq, author_role, author_id, kind, body, "
    "created_at, client_msg_id) VALUES (?,?,?,?,?,?,?,?,?)"
)


def seed_export_subjects(path: Path, sizes: list[int], seed: int = 1) -> list[SeededSubject]:
    """One verified person per size, each with that many messages in conversations of
    ``EXPORT_CONVERSATION_SIZE`` (and a few other anonymous visitors' chats beside them)."""
    rng = random.Random(seed)
    bodies = _bodies(rng)
    now = time.time_ns() // 1000
    conn = connect(path)
    out: list[SeededSubject] = []
    conn.execute("BEGIN")
    agent_id = _agent(conn, now - 60 * DAY_US)
    offset = 0
    for k, size in enumerate(sizes):
        created = now - 30 * DAY_US
        account_id = uuid7(created)
        visitor_id = uuid7(created)
        conn.execute(
            "INSERT INTO accounts (id, sub, name, email, phone, verified_by, verified_at, "
            "verified_fields, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                account_id,
                f"bench-sub-{k}-{secrets.token_hex(4)}",
                f"Person {k}",
                f"person{k}@bench.local",
                "+4700000000",
                "bench-idp",
                created,
                '["email", "name"]',
                created,
                created,
            ),
        )
        conn.execute(
            "INSERT INTO visitors (id, token_hash, account_id, created_at, last_seen_at) "
            "VALUES (?,?,?,?,?)",
            (visitor_id, secrets.token_hex(32), account_id, created, now),
        )
        conversations = 0
        left = size
        while left > 0:
            count = min(EXPORT_CONVERSATION_SIZE, left)
            start = created + conversations * DAY_US // 10
            cid = uuid7(start)
            last = start + count * 1_000_000
            conn.execute(
                "INSERT INTO conversations (id, visitor_id, account_id, status, assignee_id, "
                "tags, last_seq, created_at, updated_at, last_message_at, closed_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    cid,
                    visitor_id,
                    account_id,
                    "resolved",
                    agent_id,
                    '["billing"]',
                    count,
                    start,
                    last,
                    last,
                    last,
                ),
            )
            conn.executemany(
                _INSERT_MESSAGE,
                _message_rows(cid, count, start, visitor_id, agent_id, bodies, offset),
            )
            offset += count
            left -= count
            conversations += 1
        out.append(SeededSubject(account_id, size, conversations))
    conn.execute("COMMIT")
    finish(conn)
    return out


def seed_expired_anonymous(
    path: Path, conversations: int, per_conversation: int, age_days: int = 400, seed: int = 2
) -> int:
    """``conversations`` anonymous visitors with one conversation each, all last active
    ``age_days`` ago; answers the number of messages written."""
    rng = random.Random(seed)
    bodies = _bodies(rng)
    now = time.time_ns() // 1000
    old = now - age_days * DAY_US
    conn = connect(path)
    conn.execute("BEGIN")
    agent_id = _agent(conn, old - DAY_US)
    total = 0
    for k in range(conversations):
        start = old - (conversations - k) * per_conversation * 1_000_000
        visitor_id = uuid7(start)
        cid = uuid7(start)
        last = start + per_conversation * 1_000_000
        conn.execute(
            "INSERT INTO visitors (id, token_hash, account_id, created_at, last_seen_at) "
            "VALUES (?,?,NULL,?,?)",
            (visitor_id, secrets.token_hex(32), start, last),
        )
        conn.execute(
            "INSERT INTO conversations (id, visitor_id, account_id, status, assignee_id, "
            "last_seq, created_at, updated_at, last_message_at) VALUES (?,?,NULL,?,?,?,?,?,?)",
            (cid, visitor_id, "open", agent_id, per_conversation, start, last, last),
        )
        conn.executemany(
            _INSERT_MESSAGE,
            _message_rows(cid, per_conversation, start, visitor_id, agent_id, bodies, total),
        )
        total += per_conversation
    conn.execute("COMMIT")
    finish(conn)
    return total
