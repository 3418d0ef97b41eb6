"""The PostgreSQL store: several chatserver nodes share one database.

Reads go through an asyncpg pool; every write goes through one ``PgWriter``
connection with group commit, like the SQLite store's writer. The schema,
SQL fragments and row mappers are the SQLite store's wherever the dialects
agree (``pg_schema``), so both stores pass the same contract tests.

Nothing about the database's contents is cached in Python between
transactions: another node may have changed it. While PostgreSQL cannot be
reached, reads and writes answer ``Unavailable`` promptly (short connect
timeouts) and the next call after it is back succeeds: the pool replaces
broken connections, the writer reconnects on its next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec

from chatserver import timeline
from chatserver.errors import BadRequest, ChatError, Conflict, NotFound, Unavailable
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
from chatserver.store.pg_attachments import PgAttachments
from chatserver.store.pg_messages import (
    MESSAGE_COLUMNS,
    MESSAGE_FROM,
    append_event,
    append_message,
    fetch_conversation,
    pending_last_seq,
    pending_status,
)
from chatserver.store.pg_privacy import PgPrivacy, append_audit, numbered
from chatserver.store.pg_ratings import PgRatings
from chatserver.store.pg_schema import migrate, quote_ident
from chatserver.store.pg_staff import PgStaff
from chatserver.store.pg_writer import PgTx, PgWriter, is_connection_error
from chatserver.store.reads import SharedReads
from chatserver.store.rows import (
    AGENT_COLUMNS,
    CONVERSATION_COLUMNS,
    CONVERSATION_FROM,
    _agent,
    _conversation,
)
from chatserver.store.snippets import (
    MARK_END,
    MARK_START,
    SNIPPET_WORDS,
    has_marks,
    plain_snippet,
    unfolded_parts,
)
from chatserver.store.sqlite import _message
from chatserver.store.writer import BatchObserver, Done

# A stopped or unreachable database should give a prompt ``unavailable``, not a hung request.
CONNECT_TIMEOUT = 3.0
# A statement that long means the database is in trouble: give up rather than pile up.
COMMAND_TIMEOUT = 30.0

_WORD = re.compile(r"\w+", re.UNICODE)
# ts_headline: one fragment of about SNIPPET_WORDS words around the hits, marked.
HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxFragments=1, "
    f"MaxWords={SNIPPET_WORDS}, MinWords={SNIPPET_WORDS // 2}"
)


def parse_url(url: str) -> tuple[str, str | None]:
    """(DSN for asyncpg, schema): ``?schema=`` is ours, every other parameter is asyncpg's."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None) or None
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def tsquery(text: str) -> str | None:
    """Every word of ``text`` must occur (the last may be the start of a word).

    Only the words are kept, each quoted as a lexeme, so no tsquery syntax from
    the user is obeyed; the result is passed as a parameter, never spliced in.
    """
    words = [w for w in (_fold(w) for w in _WORD.findall(text)[:20]) if w]
    if not words:
        return None
    terms = [f"'{w}'" for w in words]
    terms[-1] += ":*"
    return " & ".join(terms)


def _fold(word: str) -> str:
    """``word`` without its accents, as migration 5 folds the messages' words."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if not 0x300 <= ord(c) <= 0x36F)


class Params:
    """Numbered placeholders for SQL built piece by piece."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class PostgresStore(SharedReads, PgAttachments, PgRatings, PgStaff, PgPrivacy):
    """The Store on PostgreSQL. Open with ``await store.open()``."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        group_commit_max: int = 512,
        readers: int = 4,
        observe_batch: BatchObserver | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        synchronous: str | None = None,  # SQLite's; PostgreSQL's durability is its own setting
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self._readers = readers
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self.writer = PgWriter(
            self._connect_writer, max_batch=group_commit_max, observe=observe_batch
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgresStore:
        dsn, schema = parse_url(url)
        return cls(dsn, schema=schema, **kwargs)

    # ------------------------------------------------------------ lifecycle

    def _server_settings(self) -> dict[str, str]:
        settings = {}
        # Named in pg_stat_activity, unless the URL names it (``?application_name=``).
        if "application_name=" not in urlsplit(self.dsn).query:
            settings["application_name"] = "chatserver"
        if self.schema is not None:
            settings["search_path"] = quote_ident(self.schema)
        return settings

    async def _connect_writer(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.dsn,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings=self._server_settings(),
        )

    async def _connect(self) -> asyncpg.Connection:
        """A connection of its own, for maintenance off the request path (a VACUUM after an
        erasure): without the statement time limit, which such work may well exceed."""
        return await asyncpg.connect(
            self.dsn, timeout=self._connect_timeout, server_settings=self._server_settings()
        )

    async def open(self) -> None:
        await self.writer.start()
        try:
            await migrate(await self.writer.connection(), self.schema)
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._readers,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=self._server_settings(),
            )
        except BaseException:
            await self.writer.close()
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            # A VACUUM after an erasure may be at work on its own connection: let it finish.
            await self.vacuumed()
        await self.writer.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except Exception:
                pool.terminate()

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[asyncpg.Record]:
        pool = self._pool
        if pool is None:
            raise Unavailable("the store is closed")
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                return list(await conn.fetch(numbered(sql), *params))
        except ChatError:
            raise
        except Exception as exc:
            if is_connection_error(exc) or isinstance(exc, asyncpg.PostgresError):
                raise Unavailable(f"store read failed: {exc}") from None
            raise

    async def _row(self, sql: str, params: tuple[Any, ...] = ()) -> asyncpg.Record | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def ping(self) -> None:
        await self._rows("SELECT 1")
        await self.writer.run(lambda conn, tx: conn.fetchval("SELECT 1"))

    async def index_now(self) -> None:
        """The SQLite store's catch-up of its search index; here the index is written with
        each message, so there is never anything to catch up."""

    # ------------------------------------------------------------ visitors and sessions

    async def create_visitor(self, visitor_id: str, token_hash: str, now: int) -> Visitor:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Visitor:
            await conn.execute(
                "INSERT INTO visitors (id, token_hash, created_at, last_seen_at) "
                "VALUES ($1, $2, $3, $3)",
                visitor_id,
                token_hash,
                now,
            )
            return Visitor(id=visitor_id, account_id=None, created_at=now)

        return await self.writer.run(op)

    async def start_session(self, info: SessionInfo) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "INSERT INTO visitor_sessions (id, visitor_id, ip, user_agent, device_class, "
                "browser, os, page_url, page_title, referrer, locale, started_at, last_seen_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
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
            )
            await conn.execute(
                "UPDATE visitors SET last_seen_at = $1 WHERE id = $2",
                info.started_at,
                info.visitor_id,
            )

        await self.writer.run(op)

    def end_session(self, session_id: str, now: int) -> None:
        """Mark a session ended; fire and forget (a lost end time is harmless)."""
        self.writer.submit(
            lambda conn, tx: conn.execute(
                "UPDATE visitor_sessions SET ended_at = $1, last_seen_at = $1 WHERE id = $2",
                now,
                session_id,
            ),
            lambda _: None,
        )

    # ------------------------------------------------------------ conversations

    async def last_seqs(self, conversation_ids: list[str]) -> dict[str, int]:
        rows = await self._rows(
            "SELECT id, last_seq FROM conversations WHERE id = ANY($1::text[])",
            (list(conversation_ids),),
        )
        return {row[0]: row[1] for row in rows}

    async def visitor_conversations(self, visitor_id: str) -> list[Conversation]:
        rows = await self._rows(
            # A verified visitor sees their account's conversations from every device.
            f"SELECT {CONVERSATION_COLUMNS} FROM {CONVERSATION_FROM} WHERE c.visitor_id = $1 "
            "OR c.account_id = (SELECT account_id FROM visitors WHERE id = $1) "
            "ORDER BY c.created_at",
            (visitor_id,),
        )
        return [_conversation(row) for row in rows]

    # The inbox's listing is SharedReads'; these are its PostgreSQL parts.
    _TAG_FILTER = "c.tags::jsonb @> jsonb_build_array(?::text)"

    def _search_filter(self, q: str) -> tuple[str, list[Any]]:
        match = tsquery(q)
        if not match:
            return "false", []  # nothing searchable in it (only punctuation)
        return (
            "c.id IN (SELECT m.conversation_id FROM messages m "
            "WHERE m.body_tsv @@ to_tsquery('simple', ?) AND m.kind != 'event')",
            [match],
        )

    async def _search_matches(self, q: str, conversation_ids: list[str]) -> dict[str, SearchMatch]:
        """Each conversation's newest matching message, with ``ts_headline()`` of its text
        folded as the index folds it, mapped back to the text itself."""
        match = tsquery(q)
        if not match:
            return {}
        rows = await self._rows(
            "SELECT w.conversation_id, w.seq, w.id, w.body, ts_headline('simple', "
            "regexp_replace(normalize(w.body, NFD), '[\\u0300-\\u036f]', '', 'g'), "
            "to_tsquery('simple', $1), $2) FROM ("
            "SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.seq, m.id, m.body "
            "FROM messages m WHERE m.conversation_id = ANY($3::text[]) AND m.kind != 'event' "
            "AND m.body_tsv @@ to_tsquery('simple', $1) "
            "ORDER BY m.conversation_id, m.seq DESC) w",
            (match, HEADLINE_OPTIONS, conversation_ids),
        )
        found: dict[str, SearchMatch] = {}
        for conversation_id, seq, message_id, body, headline in rows:
            parts = (
                plain_snippet(body, _WORD.findall(q)[0])
                if has_marks(body)
                else unfolded_parts(body, headline)
            )
            found[conversation_id] = SearchMatch(seq=seq, message_id=message_id, snippet=parts)
        return found

    async def stats_rows(self, start: int, end: int) -> dict[str, list[Any]]:
        """The raw aggregates behind the stats page, for conversations started in [start, end)."""
        per_day = await self._rows(
            "SELECT to_char(to_timestamp(created_at / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
            "count(*) FROM conversations WHERE created_at >= $1 AND created_at < $2 "
            "GROUP BY 1 ORDER BY 1",
            (start, end),
        )
        first = await self._rows(
            "SELECT (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id "
            "AND m.author_role = 'agent' AND m.kind = 'text') - c.created_at "
            "FROM conversations c WHERE c.created_at >= $1 AND c.created_at < $2",
            (start, end),
        )
        resolved = await self._rows(
            "SELECT closed_at - created_at FROM conversations WHERE status = 'resolved' "
            "AND closed_at IS NOT NULL AND created_at >= $1 AND created_at < $2",
            (start, end),
        )
        devices = await self._rows(
            "SELECT device_class, count(*) FROM visitor_sessions "
            "WHERE started_at >= $1 AND started_at < $2 GROUP BY 1 ORDER BY 2 DESC",
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
        rows = await self._rows(
            "SELECT assignee_id, count(*) FROM conversations WHERE assignee_id = ANY($1::text[]) "
            "AND status != 'resolved' GROUP BY assignee_id",
            (list(agent_ids),),
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

        async def op(conn: asyncpg.Connection, tx: PgTx) -> tuple[Conversation, Conversation]:
            # Locked first, so "before" is what this change replaces, not a row another
            # node is changing meanwhile.
            if not await conn.fetchval(
                "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
            ):
                raise NotFound("no such conversation")
            before = await fetch_conversation(conn, tx, conversation_id)
            p = Params()
            sets = [f"updated_at = {p(now)}"]
            if status is not None:
                sets.append(f"status = {p(status)}")
                sets.append(f"closed_at = {p(now if status == 'resolved' else None)}::bigint")
            if unassign:
                sets.append("assignee_id = NULL")
            elif assignee_id is not None:
                row = await conn.fetchrow(
                    "SELECT role, active FROM agents WHERE id = $1", assignee_id
                )
                if row is None or not row[1] or row[0] == "compliance":
                    raise BadRequest("assignee_id is not an active agent")
                sets.append(f"assignee_id = {p(assignee_id)}")
            if tags is not None:
                sets.append(f"tags = {p(json.dumps(tags))}")
            await conn.execute(
                f"UPDATE conversations SET {', '.join(sets)} WHERE id = {p(conversation_id)}",
                *p.values,
            )
            if status is not None:
                pending_status(tx, conversation_id, status)  # later messages of this tx see it
            after = await fetch_conversation(conn, tx, conversation_id)
            lines = timeline.change_events(before, after, actor)
            if not lines:
                return before, after
            events = [await append_event(conn, tx, conversation_id, line, now) for line in lines]
            return before, msgspec.structs.replace(
                after, last_seq=events[-1].seq, events=tuple(events)
            )

        return await self.writer.run(op)

    # ------------------------------------------------------------ messages

    def submit_message(self, new: NewMessage, done: Done) -> None:
        """Store ``new`` in the next group commit; ``done`` gets a StoredMessage or an error."""
        self.writer.submit(lambda conn, tx: append_message(conn, tx, new), done)

    async def append_message(self, new: NewMessage) -> StoredMessage:
        return await self.writer.run(lambda conn, tx: append_message(conn, tx, new))

    async def messages_after(
        self, conversation_id: str, after_seq: int, limit: int, *, include_notes: bool = True
    ) -> list[StoredMessage]:
        # Without notes is the visitor's view: no event messages either.
        notes = "" if include_notes else " AND m.kind NOT IN ('note', 'event')"
        rows = await self._rows(
            f"SELECT {MESSAGE_COLUMNS} FROM {MESSAGE_FROM} "
            f"WHERE m.conversation_id = $1 AND m.seq > $2{notes} ORDER BY m.seq LIMIT $3",
            (conversation_id, after_seq, limit),
        )
        return [_message(row) for row in rows]

    def submit_read(
        self, conversation_id: str, role: str, reader_id: str, seq: int, now: int, done: Done
    ) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> int:
            last_seq = await conn.fetchval(
                "SELECT last_seq FROM conversations WHERE id = $1", conversation_id
            )
            if last_seq is None:
                raise NotFound("no such conversation")
            last_seq = pending_last_seq(tx, conversation_id) or last_seq
            if seq > last_seq:
                raise BadRequest(f"seq {seq} is past the conversation's last seq {last_seq}")
            await conn.execute(
                "INSERT INTO conversation_reads (conversation_id, reader_role, reader_id, seq, "
                "updated_at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (conversation_id, reader_role, reader_id) DO UPDATE SET "
                "seq = greatest(conversation_reads.seq, excluded.seq), "
                "updated_at = excluded.updated_at",
                conversation_id,
                role,
                reader_id,
                seq,
                now,
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
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Agent:
            if email is not None and await conn.fetchval(
                "SELECT 1 FROM agents WHERE email = $1", email
            ):
                raise Conflict(f"an agent with email {email} exists", field="email")
            await conn.execute(
                "INSERT INTO agents (id, email, name, role, kind, password_hash, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                agent_id,
                email,
                name,
                role,
                kind,
                password_hash,
                now,
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
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Agent:
            p = Params()
            sets = [
                f"{column} = {p(value)}"
                for column, value in (
                    ("name", name),
                    ("role", role),
                    ("active", None if active is None else int(active)),
                    ("password_hash", password_hash),
                )
                if value is not None
            ]
            if sets:
                await conn.execute(
                    f"UPDATE agents SET {', '.join(sets)} WHERE id = {p(agent_id)}", *p.values
                )
            row = await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1", agent_id)
            if row is None:
                raise NotFound("no such agent")
            return _agent(row)

        return await self.writer.run(op)

    async def create_api_token(
        self, token_id: str, token_hash: str, agent_id: str, now: int
    ) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO api_tokens (id, token_hash, agent_id, created_at) "
                "VALUES ($1, $2, $3, $4)",
                token_id,
                token_hash,
                agent_id,
                now,
            )
        )

    async def revoke_token(self, token_id: str, now: int) -> Agent:
        """Revoke a token; answers its agent. Revoking twice is fine."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> Agent:
            agent_id = await conn.fetchval(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2 "
                "RETURNING agent_id",
                now,
                token_id,
            )
            if agent_id is None:
                raise NotFound("no such token")
            row = await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1", agent_id)
            return _agent(row)

        return await self.writer.run(op)

    # ------------------------------------------------------------ allowed origins

    async def allow_origin(self, origin: str, now: int) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO allowed_origins (origin, added_at) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                origin,
                now,
            )
        )

    async def disallow_origin(self, origin: str) -> bool:
        """Remove an origin; False when it was not there."""
        return bool(
            await self.writer.run(
                lambda conn, tx: conn.fetchval(
                    "DELETE FROM allowed_origins WHERE origin = $1 RETURNING origin", origin
                )
            )
        )

    # ------------------------------------------------------------ canned responses

    async def save_canned_response(
        self, response_id: str, shortcut: str, body: str, now: int, *, create: bool
    ) -> CannedResponse:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> CannedResponse:
            taken = await conn.fetchval(
                "SELECT id FROM canned_responses WHERE shortcut = $1", shortcut
            )
            if taken is not None and taken != response_id:
                raise Conflict(f"the shortcut /{shortcut} is taken")
            if create:
                await conn.execute(
                    "INSERT INTO canned_responses (id, shortcut, body, created_at, updated_at) "
                    "VALUES ($1, $2, $3, $4, $4)",
                    response_id,
                    shortcut,
                    body,
                    now,
                )
            elif not await conn.fetchval(
                "UPDATE canned_responses SET shortcut = $1, body = $2, updated_at = $3 "
                "WHERE id = $4 RETURNING id",
                shortcut,
                body,
                now,
                response_id,
            ):
                raise NotFound("no such canned response")
            return CannedResponse(response_id, shortcut, body, now)

        return await self.writer.run(op)

    async def delete_canned_response(self, response_id: str) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            if not await conn.fetchval(
                "DELETE FROM canned_responses WHERE id = $1 RETURNING id", response_id
            ):
                raise NotFound("no such canned response")

        await self.writer.run(op)

    # ------------------------------------------------------------ policy and consent

    async def policies(self) -> list[Policy]:
        rows = await self._rows(
            "SELECT version, url, published_at FROM policy_versions "
            "ORDER BY published_at DESC, n DESC"
        )
        return [Policy(*row) for row in rows]

    async def publish_policy(
        self, version: str, url: str | None, now: int, *, audit: AuditRecord | None = None
    ) -> Policy:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Policy:
            if await conn.fetchval("SELECT 1 FROM policy_versions WHERE version = $1", version):
                raise Conflict(f"version {version} was published before")
            await conn.execute(
                "INSERT INTO policy_versions (version, url, published_at) VALUES ($1, $2, $3)",
                version,
                url,
                now,
            )
            if audit is not None:
                await append_audit(conn, audit)
            return Policy(version=version, url=url, published_at=now)

        return await self.writer.run(op)

    async def current_policy(self) -> Policy | None:
        row = await self._row(
            "SELECT version, url, published_at FROM policy_versions "
            "ORDER BY published_at DESC, n DESC LIMIT 1"
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
                "VALUES ($1, $2, $3, $4, $5)",
                consent_id,
                version,
                visitor_id,
                account_id,
                now,
            )
        )
