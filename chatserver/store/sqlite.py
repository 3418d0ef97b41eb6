"""The embedded SQLite store: WAL, ``secure_delete``, foreign keys, one group-commit writer.

Reads go through aiosqlite connections of their own (WAL lets them run beside
the writer); every write goes through ``GroupCommitWriter`` so that a burst of
messages shares one transaction and one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from chatserver import timeline
from chatserver.errors import BadRequest, Conflict, NotFound, Unavailable
from chatserver.store.migrations import MIGRATIONS
from chatserver.store.models import (
    Agent,
    AuditRecord,
    CannedResponse,
    Conversation,
    NewMessage,
    Policy,
    SearchMatch,
    SessionInfo,
    StoredMessage,
    Visitor,
)
from chatserver.store.reads import SharedReads
from chatserver.store.rows import (
    AGENT_COLUMNS,
    CONVERSATION_COLUMNS,
    CONVERSATION_FROM,
    _agent,
    _conversation,
)
from chatserver.store.snippets import (
    ELLIPSIS,
    MARK_END,
    MARK_START,
    SNIPPET_WORDS,
    marked_parts,
    plain_snippet,
)
from chatserver.store.sqlite_attachments import (
    MESSAGE_ATTACHMENTS,
    SQLiteAttachments,
    claim_attachments,
    refs_from_json,
)
from chatserver.store.sqlite_privacy import SQLitePrivacy, append_audit
from chatserver.store.sqlite_ratings import SQLiteRatings
from chatserver.store.sqlite_staff import SQLiteStaff
from chatserver.store.writer import BatchObserver, Done, GroupCommitWriter, Tx

# Measured on the bench: a checkpoint every 0.1 s of write activity keeps p99
# at a few ms where one a second (or SQLite's own) stalled it by 20-50 ms.
CHECKPOINT_SECONDS = 0.1
# The search index is written behind the messages, in small batches on the
# writer: FTS5 triples the cost of an insert, which the ack path should not pay.
INDEX_SECONDS = 0.05
INDEX_BATCH = 64

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


def _message(row: Any, **extra: Any) -> StoredMessage:
    return StoredMessage(
        id=row[0],
        conversation_id=row[1],
        seq=row[2],
        author_role=row[3],
        author_id=row[4],
        author_name=row[5],
        kind=row[6],
        body=row[7],
        created_at=row[8],
        client_msg_id=row[9],
        attachments=refs_from_json(row[10]),
        event=json.loads(row[11]) if row[11] is not None else None,
        **extra,
    )


def _path_of(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    return Path(url.removeprefix("sqlite:///"))


class SQLiteStore(SharedReads, SQLiteAttachments, SQLiteRatings, SQLiteStaff, SQLitePrivacy):
    """The Store on one SQLite file. Open with ``await store.open()``."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        group_commit_max: int = 512,
        readers: int = 2,
        observe_batch: BatchObserver | None = None,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._readers: list[aiosqlite.Connection] = []
        self._reader_count = readers
        self._next_reader = 0
        self._last_checkpoint = 0.0
        self._last_index = 0.0
        self._indexing = False
        self._index_behind = False
        self._observe_batch = observe_batch
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_running: asyncio.Future[None] | None = None
        self.writer = GroupCommitWriter(
            self._connect_writer, max_batch=group_commit_max, observe=self._after_commit
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        return cls(_path_of(url), **kwargs)

    # ------------------------------------------------------------ lifecycle

    def _pragmas(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
        # Erased rows are overwritten with zeros, not left readable in free pages (P7).
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    def _connect_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # SQLite's automatic checkpoint runs inside a commit and stalls it for
        # tens of milliseconds; ``_after_commit`` starts the same work on its own
        # connection, beside the writer, instead.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._pragmas(conn)
        _migrate(conn)
        return conn

    async def open(self) -> None:
        await self.writer.start()
        for _ in range(self._reader_count):
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            await reader.execute("PRAGMA query_only = ON")
            await reader.execute("PRAGMA busy_timeout = 5000")
            await reader.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._readers.append(reader)

    async def close(self) -> None:
        if self._checkpoint_running is not None:
            # A checkpoint may still be at work in its thread: let it finish.
            with contextlib.suppress(Exception):
                await self._checkpoint_running
        for reader in self._readers:
            await reader.close()
        self._readers.clear()
        await self.writer.idle()
        with contextlib.suppress(Exception):
            # Leave a small database file and an empty WAL behind.
            await self.writer.run_in_thread(
                lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            )
        await self.writer.close()
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    def _after_commit(self, size: int, seconds: float) -> None:
        """After each batch: metrics, and a checkpoint when the last is old enough.

        Small checkpoints often, from their own connection and thread, keep the
        WAL short without ever stalling a commit (SQLite's automatic checkpoint
        runs inside the commit that crosses its threshold).
        """
        if self._observe_batch is not None:
            self._observe_batch(size, seconds)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._indexing and (
            now - self._last_index >= INDEX_SECONDS
            or (self._index_behind and not self.writer.backlog)
        ):
            self._last_index = now
            self._indexing = True
            self.writer.submit(_index_some, self._indexed)
        if self._checkpoint_running is None and now - self._last_checkpoint >= CHECKPOINT_SECONDS:
            self._last_checkpoint = now
            running = loop.run_in_executor(None, self._checkpoint_once)
            self._checkpoint_running = running
            running.add_done_callback(self._checkpoint_done)

    def _indexed(self, result: int | BaseException) -> None:
        self._indexing = False
        # A full batch means more is waiting: the next idle moment continues.
        self._index_behind = result == INDEX_BATCH

    async def purge_search_index(self) -> None:
        """Rewrite the search index so deleted messages' words are gone from the file.

        An FTS5 delete only records that a row is gone; its words stay in the
        older index segments until they are merged (SQLite here predates FTS5's
        own secure-delete). Erasure calls this after deleting a person's messages.
        """
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO messages_fts (messages_fts) VALUES ('optimize')"
            )
        )

    async def index_now(self) -> None:
        """Bring the search index up to date (tests, and before a shutdown)."""
        while await self.writer.run(_index_some) == INDEX_BATCH:
            pass

    def _checkpoint_done(self, future: asyncio.Future[None]) -> None:
        self._checkpoint_running = None
        if not future.cancelled():
            future.exception()  # busy or I/O trouble: a later batch tries again

    def _checkpoint_once(self) -> None:
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._pragmas(self._checkpoint_conn)
        # PASSIVE never waits for the writer or readers: it copies what it can.
        self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self._readers:
            raise Unavailable("the store is closed")
        reader = self._readers[self._next_reader % len(self._readers)]
        self._next_reader += 1
        try:
            return list(await reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise Unavailable(f"store read failed: {exc}") from None

    async def _row(self, sql: str, params: tuple[Any, ...] = ()) -> Any | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def ping(self) -> None:
        await self._rows("SELECT 1")
        await self.writer.run(lambda conn, tx: conn.execute("SELECT 1").fetchone())

    # ------------------------------------------------------------ visitors and sessions

    async def create_visitor(self, visitor_id: str, token_hash: str, now: int) -> Visitor:
        def op(conn: sqlite3.Connection, tx: Tx) -> Visitor:
            conn.execute(
                "INSERT INTO visitors (id, token_hash, created_at, last_seen_at) VALUES (?,?,?,?)",
                (visitor_id, token_hash, now, now),
            )
            return Visitor(id=visitor_id, account_id=None, created_at=now)

        return await self.writer.run(op)

    async def start_session(self, info: SessionInfo) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            conn.execute(
                "INSERT INTO visitor_sessions (id, visitor_id, ip, user_agent, device_class, "
                "browser, os, page_url, page_title, referrer, locale, started_at, last_seen_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    info.id,
                    info.visitor_id,
                    info.ip,
                    info.user_agent,
                    info.device_class,
                    info.browser,
                    info.os,
                    info.page_url,
                    info.page_title,
                    info.referrer,
                    info.locale,
                    info.started_at,
                    info.started_at,
                ),
            )
            conn.execute(
                "UPDATE visitors SET last_seen_at = ? WHERE id = ?",
                (info.started_at, info.visitor_id),
            )

        await self.writer.run(op)

    def end_session(self, session_id: str, now: int) -> None:
        """Mark a session ended; fire and forget (a lost end time is harmless)."""
        self.writer.submit(
            lambda conn, tx: conn.execute(
                "UPDATE visitor_sessions SET ended_at = ?, last_seen_at = ? WHERE id = ?",
                (now, now, session_id),
            ),
            lambda _: None,
        )

    # ------------------------------------------------------------ conversations

    async def last_seqs(self, conversation_ids: list[str]) -> dict[str, int]:
        heads: dict[str, int] = {}
        for start in range(0, len(conversation_ids), 500):
            chunk = conversation_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._rows(
                f"SELECT id, last_seq FROM conversations WHERE id IN ({marks})", tuple(chunk)
            )
            heads.update((row[0], row[1]) for row in rows)
        return heads

    async def visitor_conversations(self, visitor_id: str) -> list[Conversation]:
        rows = await self._rows(
            # A verified visitor sees their account's conversations from every device.
            f"SELECT {CONVERSATION_COLUMNS} FROM {CONVERSATION_FROM} WHERE c.visitor_id = ? "
            "OR c.account_id = (SELECT account_id FROM visitors WHERE id = ?) "
            "ORDER BY c.created_at",
            (visitor_id, visitor_id),
        )
        return [_conversation(row) for row in rows]

    # The inbox's listing is SharedReads'; these are its SQLite parts.
    _TAG_FILTER = "EXISTS (SELECT 1 FROM json_each(c.tags) WHERE value = ?)"

    def _search_filter(self, q: str) -> tuple[str, list[Any]]:
        match = _fts_query(q)
        if not match:
            return "0", []  # nothing searchable in it (only punctuation)
        # The index, plus a scan of the few messages it has not reached yet.
        return (
            "c.id IN (SELECT m.conversation_id FROM messages m WHERE m.n IN "
            "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?) AND m.kind != 'event' "
            "UNION SELECT m.conversation_id FROM messages m "
            "WHERE m.n > (SELECT last_n FROM fts_progress WHERE id = 1) "
            "AND m.kind != 'event' AND m.body LIKE ? ESCAPE '\\')",
            [match, _like_pattern(q)],
        )

    async def _search_matches(self, q: str, conversation_ids: list[str]) -> dict[str, SearchMatch]:
        """Each conversation's newest matching message: from the index with FTS5's
        ``snippet()``, or (not indexed yet) by LIKE with a plain snippet."""
        match = _fts_query(q)
        if not match:
            return {}
        marks = ",".join("?" * len(conversation_ids))
        rows = await self._rows(
            "SELECT m.conversation_id, m.seq, m.id, s.snip, "
            "CASE WHEN s.snip IS NULL OR instr(m.body, ?) > 0 OR instr(m.body, ?) > 0 "
            "THEN m.body END FROM ("
            # The winners first, by one pass over the matches; then snippet() for them
            # alone. ``+rowid``: a filter, not a constraint given to FTS5, which would run
            # the query once per rowid (slow for a prefix of a common word).
            f"SELECT rowid AS n, snippet(messages_fts, 0, ?, ?, ?, {SNIPPET_WORDS}) AS snip "
            "FROM messages_fts WHERE messages_fts MATCH ? AND +rowid IN ("
            "SELECT max(i.n) FROM messages_fts JOIN messages i ON i.n = messages_fts.rowid "
            f"WHERE messages_fts MATCH ? AND i.conversation_id IN ({marks}) "
            "AND i.kind != 'event' GROUP BY i.conversation_id) "
            "UNION ALL SELECT max(t.n), NULL FROM messages t "
            f"WHERE t.conversation_id IN ({marks}) AND t.kind != 'event' "
            "AND t.n > (SELECT last_n FROM fts_progress WHERE id = 1) "
            "AND t.body LIKE ? ESCAPE '\\' GROUP BY t.conversation_id"
            ") s JOIN messages m ON m.n = s.n",
            (
                MARK_START,
                MARK_END,
                MARK_START,
                MARK_END,
                ELLIPSIS,
                match,
                match,
                *conversation_ids,
                *conversation_ids,
                _like_pattern(q),
            ),
        )
        found: dict[str, SearchMatch] = {}
        for conversation_id, seq, message_id, snip, body in sorted(rows, key=lambda r: r[1]):
            if snip is None or body is not None:
                words = _WORD.findall(q)
                parts = plain_snippet(body, q if snip is None else words[0])
            else:
                parts = marked_parts(snip)
            # Sorted by seq: the newest (an unindexed one, when both matched) comes last.
            found[conversation_id] = SearchMatch(seq=seq, message_id=message_id, snippet=parts)
        return found

    async def stats_rows(self, start: int, end: int) -> dict[str, list[Any]]:
        """The raw aggregates behind the stats page, for conversations started in [start, end)."""
        per_day = await self._rows(
            "SELECT date(created_at / 1000000, 'unixepoch'), count(*) FROM conversations "
            "WHERE created_at >= ? AND created_at < ? GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        first = await self._rows(
            "SELECT (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id "
            "AND m.author_role = 'agent' AND m.kind = 'text') - c.created_at "
            "FROM conversations c WHERE c.created_at >= ? AND c.created_at < ?",
            (start, end),
        )
        resolved = await self._rows(
            "SELECT closed_at - created_at FROM conversations WHERE status = 'resolved' "
            "AND closed_at IS NOT NULL AND created_at >= ? AND created_at < ?",
            (start, end),
        )
        devices = await self._rows(
            "SELECT device_class, count(*) FROM visitor_sessions "
            "WHERE started_at >= ? AND started_at < ? GROUP BY 1 ORDER BY 2 DESC",
            (start, end),
        )
        return {
            "per_day": [(r[0], r[1]) for r in per_day],
            "first_responses": [r[0] for r in first if r[0] is not None],
            "resolutions": [r[0] for r in resolved],
            "devices": [(r[0], r[1]) for r in devices],
        }

    async def assigned_load(self, agent_ids: list[str]) -> dict[str, int]:
        """How many conversations that are not resolved each of these agents holds."""
        if not agent_ids:
            return {}
        marks = ",".join("?" * len(agent_ids))
        rows = await self._rows(
            f"SELECT assignee_id, count(*) FROM conversations WHERE assignee_id IN ({marks}) "
            "AND status != 'resolved' GROUP BY assignee_id",
            tuple(agent_ids),
        )
        return {row[0]: row[1] for row in rows}

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        now: int,
        status: str | None = None,
        assignee_id: str | None = None,
        unassign: bool = False,
        tags: list[str] | None = None,
        actor: Agent | None = None,
    ) -> tuple[Conversation, Conversation]:
        """Change a conversation; answers (before, after), with ``after.events`` the event
        messages recording the change (made by ``actor``; None: by the server itself)."""

        def op(conn: sqlite3.Connection, tx: Tx) -> tuple[Conversation, Conversation]:
            before = _fetch_conversation(conn, tx, conversation_id)
            sets = ["updated_at = ?"]
            params: list[Any] = [now]
            if status is not None:
                sets.append("status = ?")
                params.append(status)
                sets.append("closed_at = ?")
                params.append(now if status == "resolved" else None)
            if unassign:
                sets.append("assignee_id = NULL")
            elif assignee_id is not None:
                row = conn.execute(
                    "SELECT role, active FROM agents WHERE id = ?", (assignee_id,)
                ).fetchone()
                if row is None or not row[1] or row[0] == "compliance":
                    raise BadRequest("assignee_id is not an active agent")
                sets.append("assignee_id = ?")
                params.append(assignee_id)
            if tags is not None:
                sets.append("tags = ?")
                params.append(json.dumps(tags))
            conn.execute(
                f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?",
                (*params, conversation_id),
            )
            entry = tx.state.get("seqs", {}).get(conversation_id)
            if entry is not None and status is not None:
                entry[3] = status  # later messages of this transaction see the new status
            after = _fetch_conversation(conn, tx, conversation_id)
            lines = timeline.change_events(before, after, actor)
            if not lines:
                return before, after
            events = tuple(append_event(conn, tx, conversation_id, line, now) for line in lines)
            return before, msgspec.structs.replace(after, last_seq=events[-1].seq, events=events)

        return await self.writer.run(op)

    # ------------------------------------------------------------ messages

    def submit_message(self, new: NewMessage, done: Done) -> None:
        """Store ``new`` in the next group commit; ``done`` gets a StoredMessage or an error."""
        self.writer.submit(lambda conn, tx: _append_message(conn, tx, new), done)

    async def append_message(self, new: NewMessage) -> StoredMessage:
        return await self.writer.run(lambda conn, tx: _append_message(conn, tx, new))

    async def messages_after(
        self, conversation_id: str, after_seq: int, limit: int, *, include_notes: bool = True
    ) -> list[StoredMessage]:
        # Without notes is the visitor's view: no event messages either.
        notes = "" if include_notes else " AND m.kind NOT IN ('note', 'event')"
        rows = await self._rows(
            f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} "
            f"WHERE m.conversation_id = ? AND m.seq > ?{notes} ORDER BY m.seq LIMIT ?",
            (conversation_id, after_seq, limit),
        )
        return [_message(row) for row in rows]

    def submit_read(
        self, conversation_id: str, role: str, reader_id: str, seq: int, now: int, done: Done
    ) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> int:
            row = conn.execute(
                "SELECT last_seq FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such conversation")
            last_seq = _pending_last_seq(tx, conversation_id) or row[0]
            if seq > last_seq:
                raise BadRequest(f"seq {seq} is past the conversation's last seq {last_seq}")
            conn.execute(
                "INSERT INTO conversation_reads (conversation_id, reader_role, reader_id, seq, "
                "updated_at) VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "seq = max(seq, excluded.seq), updated_at = excluded.updated_at",
                (conversation_id, role, reader_id, seq, now),
            )
            return seq

        self.writer.submit(op, done)

    # ------------------------------------------------------------ agents and tokens

    async def add_agent(
        self,
        *,
        agent_id: str,
        email: str | None,
        name: str,
        role: str,
        password_hash: str | None,
        now: int,
        kind: str = "human",
    ) -> Agent:
        def op(conn: sqlite3.Connection, tx: Tx) -> Agent:
            if (
                email is not None
                and conn.execute("SELECT 1 FROM agents WHERE email = ?", (email,)).fetchone()
            ):
                raise Conflict(f"an agent with email {email} exists", field="email")
            conn.execute(
                "INSERT INTO agents (id, email, name, role, kind, password_hash, created_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (agent_id, email, name, role, kind, password_hash, now),
            )
            return Agent(id=agent_id, email=email, name=name, role=role, active=True, kind=kind)

        return await self.writer.run(op)

    async def update_agent(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        role: str | None = None,
        active: bool | None = None,
        password_hash: str | None = None,
    ) -> Agent:
        def op(conn: sqlite3.Connection, tx: Tx) -> Agent:
            sets: list[str] = []
            params: list[Any] = []
            for column, value in (
                ("name", name),
                ("role", role),
                ("active", None if active is None else int(active)),
                ("password_hash", password_hash),
            ):
                if value is not None:
                    sets.append(f"{column} = ?")
                    params.append(value)
            if sets:
                conn.execute(
                    f"UPDATE agents SET {', '.join(sets)} WHERE id = ?", (*params, agent_id)
                )
            row = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such agent")
            return _agent(row)

        return await self.writer.run(op)

    async def create_api_token(
        self, token_id: str, token_hash: str, agent_id: str, now: int
    ) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO api_tokens (id, token_hash, agent_id, created_at) VALUES (?,?,?,?)",
                (token_id, token_hash, agent_id, now),
            )
        )

    async def revoke_token(self, token_id: str, now: int) -> Agent:
        """Revoke a token; answers its agent. Revoking twice is fine."""

        def op(conn: sqlite3.Connection, tx: Tx) -> Agent:
            row = conn.execute(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
                "RETURNING agent_id",
                (now, token_id),
            ).fetchone()
            if row is None:
                raise NotFound("no such token")
            agent = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (row[0],)
            ).fetchone()
            return _agent(agent)

        return await self.writer.run(op)

    # ------------------------------------------------------------ allowed origins

    async def allow_origin(self, origin: str, now: int) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO allowed_origins (origin, added_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (origin, now),
            )
        )

    async def disallow_origin(self, origin: str) -> bool:
        """Remove an origin; False when it was not there."""
        return bool(
            await self.writer.run(
                lambda conn, tx: conn.execute(
                    "DELETE FROM allowed_origins WHERE origin = ? RETURNING origin", (origin,)
                ).fetchone()
            )
        )

    # ------------------------------------------------------------ canned responses

    async def save_canned_response(
        self, response_id: str, shortcut: str, body: str, now: int, *, create: bool
    ) -> CannedResponse:
        def op(conn: sqlite3.Connection, tx: Tx) -> CannedResponse:
            taken = conn.execute(
                "SELECT id FROM canned_responses WHERE shortcut = ?", (shortcut,)
            ).fetchone()
            if taken is not None and taken[0] != response_id:
                raise Conflict(f"the shortcut /{shortcut} is taken")
            if create:
                conn.execute(
                    "INSERT INTO canned_responses (id, shortcut, body, created_at, updated_at) "
                    "VALUES (?,?,?,?,?)",
                    (response_id, shortcut, body, now, now),
                )
            elif not conn.execute(
                "UPDATE canned_responses SET shortcut = ?, body = ?, updated_at = ? "
                "WHERE id = ? RETURNING id",
                (shortcut, body, now, response_id),
            ).fetchone():
                raise NotFound("no such canned response")
            return CannedResponse(response_id, shortcut, body, now)

        return await self.writer.run(op)

    async def delete_canned_response(self, response_id: str) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            if not conn.execute(
                "DELETE FROM canned_responses WHERE id = ? RETURNING id", (response_id,)
            ).fetchone():
                raise NotFound("no such canned response")

        await self.writer.run(op)

    async def policies(self) -> list[Policy]:
        rows = await self._rows(
            "SELECT version, url, published_at FROM policy_versions "
            "ORDER BY published_at DESC, rowid DESC"
        )
        return [Policy(*row) for row in rows]

    # ------------------------------------------------------------ policy and consent

    async def publish_policy(
        self, version: str, url: str | None, now: int, *, audit: AuditRecord | None = None
    ) -> Policy:
        def op(conn: sqlite3.Connection, tx: Tx) -> Policy:
            if conn.execute(
                "SELECT 1 FROM policy_versions WHERE version = ?", (version,)
            ).fetchone():
                raise Conflict(f"version {version} was published before")
            conn.execute(
                "INSERT INTO policy_versions (version, url, published_at) VALUES (?,?,?)",
                (version, url, now),
            )
            if audit is not None:
                append_audit(conn, audit)
            return Policy(version=version, url=url, published_at=now)

        return await self.writer.run(op)

    async def current_policy(self) -> Policy | None:
        row = await self._row(
            "SELECT version, url, published_at FROM policy_versions "
            "ORDER BY published_at DESC, rowid DESC LIMIT 1"
        )
        return Policy(*row) if row else None

    async def record_consent(
        self,
        consent_id: str,
        version: str,
        visitor_id: str,
        account_id: str | None,
        now: int,
    ) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO consents (id, policy_version, visitor_id, account_id, accepted_at) "
                "VALUES (?,?,?,?,?)",
                (consent_id, version, visitor_id, account_id, now),
            )
        )


# ---------------------------------------------------------------- writer operations


def _fetch_conversation(conn: sqlite3.Connection, tx: Tx, conversation_id: str) -> Conversation:
    row = conn.execute(
        f"SELECT {CONVERSATION_COLUMNS} FROM {CONVERSATION_FROM} WHERE c.id = ?",
        (conversation_id,),
    ).fetchone()
    if row is None:
        raise NotFound("no such conversation")
    conversation = _conversation(row)
    last_seq = _pending_last_seq(tx, conversation_id)
    if last_seq is not None:
        conversation = msgspec.structs.replace(conversation, last_seq=last_seq)
    return conversation


def _pending_last_seq(tx: Tx, conversation_id: str) -> int | None:
    """The conversation's last seq as this transaction has it, before ``_write_seqs``."""
    entry = tx.state.get("seqs", {}).get(conversation_id)
    return None if entry is None else int(entry[0])


def _append_message(conn: sqlite3.Connection, tx: Tx, new: NewMessage) -> StoredMessage:
    """Store one message, assigning its seq in this same transaction (invariant 2).

    The work is shaped for group commit: the conversation's ``last_seq`` is read
    once per transaction and counted up in memory, and the batch's rows are
    written by one ``executemany`` and one UPDATE per conversation just before
    COMMIT (``_write_messages``). The writer holds SQLite's write lock from
    BEGIN IMMEDIATE to COMMIT, so no other process can assign a seq in between.
    """
    state = tx.state
    pending: dict[tuple[str, str | None, str], StoredMessage] = state.setdefault("by_client_id", {})
    if new.client_msg_id is not None:
        key = (new.author_role, new.author_id, new.client_msg_id)
        earlier = pending.get(key)
        if earlier is None:
            earlier = _stored_by_client_id(conn, key)
        if earlier is not None:
            if new.conversation_id is not None and earlier.conversation_id != new.conversation_id:
                raise Conflict("this client_msg_id was already used in another conversation")
            return msgspec.structs.replace(earlier, duplicate=True, created_conversation=False)
    created = False
    conversation_id = new.conversation_id
    if conversation_id is None:
        if new.new_conversation_id is None or new.visitor_id is None:
            raise BadRequest("conversation_id is required")
        conversation_id = new.new_conversation_id
        status = "pending" if new.contact_email else "open"
        conn.execute(
            "INSERT INTO conversations (id, visitor_id, account_id, status, contact_email, "
            "created_at, updated_at) SELECT ?, id, account_id, ?, ?, ?, ? FROM visitors "
            "WHERE id = ?",
            (
                conversation_id,
                status,
                new.contact_email,
                new.created_at,
                new.created_at,
                new.visitor_id,
            ),
        )
        created = True
    seqs: dict[str, list[Any]] = state.setdefault("seqs", {})
    entry = seqs.get(conversation_id)
    if entry is None:
        row = conn.execute(
            "SELECT last_seq, visitor_id, status, account_id FROM conversations WHERE id = ?",
            (conversation_id,),
        ).fetchone()
        if row is None:
            raise NotFound("no such conversation")
        # [last seq, visitor, newest message time (events are not counted), status, account]
        entry = seqs[conversation_id] = [row[0], row[1], None, row[2], row[3]]
        tx.before_commit("messages", _write_messages)
    if (
        new.visitor_id is not None
        and entry[1] != new.visitor_id
        # A verified person writes from any of their devices into their account's threads.
        and (new.account_id is None or entry[4] != new.account_id)
    ):
        raise NotFound("no such conversation")
    refs = claim_attachments(conn, tx, new, conversation_id) if new.attachments else ()
    reopened = False
    if new.author_role == "visitor" and entry[3] == "resolved":
        # The visitor wrote again: the conversation is back in the agents' open inbox.
        # Written now, not with the batch's seqs, so that a resolve later in this same
        # transaction still wins.
        conn.execute(
            "UPDATE conversations SET status = 'open', closed_at = NULL WHERE id = ?",
            (conversation_id,),
        )
        entry[3] = "open"
        reopened = True
    entry[0] += 1
    if new.kind != "event":
        entry[2] = new.created_at if entry[2] is None else max(entry[2], new.created_at)
    stored = StoredMessage(
        id=new.message_id,
        conversation_id=conversation_id,
        seq=entry[0],
        author_role=new.author_role,
        author_id=new.author_id,
        author_name=None,
        kind=new.kind,
        body=new.body,
        created_at=new.created_at,
        client_msg_id=new.client_msg_id,
        created_conversation=created,
        conversation_status=status if created else entry[3],
        reopened=reopened,
        attachments=refs,
        event=new.event,
    )
    state.setdefault("rows", []).append(stored)
    if new.client_msg_id is not None:
        pending[(new.author_role, new.author_id, new.client_msg_id)] = stored
    if reopened:
        line = timeline.reopened_by_visitor()
        event = append_event(conn, tx, conversation_id, line, new.created_at)
        return msgspec.structs.replace(stored, events=(event,))
    return stored


def append_event(
    conn: sqlite3.Connection, tx: Tx, conversation_id: str, line: timeline.EventLine, at: int
) -> StoredMessage:
    """Store an event message (``chatserver.timeline``) in this transaction, in the
    conversation's seq order like any message."""
    return _append_message(conn, tx, timeline.event_message(conversation_id, line, at))


def _stored_by_client_id(
    conn: sqlite3.Connection, key: tuple[str, str | None, str]
) -> StoredMessage | None:
    # The bare index probe first: it is on every message's path, the join is not.
    hit = conn.execute(
        "SELECT id FROM messages WHERE author_role = ? AND author_id = ? AND client_msg_id = ?",
        key,
    ).fetchone()
    if hit is None:
        return None
    row = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} WHERE m.id = ?", (hit[0],)
    ).fetchone()
    return _message(row)


def _write_messages(conn: sqlite3.Connection, tx: Tx) -> None:
    conn.executemany(
        "INSERT INTO messages (id, conversation_id, seq, author_role, author_id, kind, body, "
        "created_at, client_msg_id, event) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
            for m in tx.state["rows"]
        ],
    )
    # A conversation that got only event messages keeps its last_message_at (NULL here).
    conn.executemany(
        "UPDATE conversations SET last_seq = ?, last_message_at = coalesce(?, last_message_at), "
        "updated_at = max(updated_at, coalesce(?, updated_at)) WHERE id = ?",
        [(last, at, at, cid) for cid, (last, _, at, *_) in tx.state["seqs"].items()],
    )


def _index_some(conn: sqlite3.Connection, tx: Tx) -> int:
    """Add the next messages to the search index; answers how many."""
    last = conn.execute("SELECT last_n FROM fts_progress WHERE id = 1").fetchone()[0]
    rows = conn.execute(
        "SELECT n, body FROM messages WHERE n > ? ORDER BY n LIMIT ?", (last, INDEX_BATCH)
    ).fetchall()
    if rows:
        conn.executemany("INSERT INTO messages_fts (rowid, body) VALUES (?, ?)", rows)
        conn.execute("UPDATE fts_progress SET last_n = ? WHERE id = 1", (rows[-1][0],))
    return len(rows)


_WORD = re.compile(r"\w+", re.UNICODE)


def _like_pattern(text: str) -> str:
    """``%text%`` for LIKE … ESCAPE '\\': the text's own ``%`` and ``_`` match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_query(text: str) -> str | None:
    """Every word of ``text`` must occur (the last may be the start of a word), quoted so
    that no FTS5 syntax from the user is obeyed."""
    words = _WORD.findall(text)[:20]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; answers the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    done: list[int] = []
    for version, name, sql in MIGRATIONS:
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the lock.
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000000)",
                (version, name),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(version)
    return done


def _statements(script: str) -> list[str]:
    parts: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            parts.append(buf.strip())
            buf = ""
    if buf.strip():
        parts.append(buf.strip())
    return parts
