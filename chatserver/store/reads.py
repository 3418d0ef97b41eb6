"""Reads both stores answer with the same SQL: written once, with ``?`` placeholders
(the PostgreSQL store numbers them as ``$1, $2 …`` on the way out)."""

from __future__ import annotations

from typing import Any

import msgspec

from chatserver.store.models import (
    Agent,
    ApiToken,
    CannedResponse,
    Conversation,
    ConversationCounts,
    ConversationPage,
    LastMessage,
    SearchMatch,
    SessionInfo,
    Visitor,
)
from chatserver.store.rows import (
    AGENT_COLUMNS,
    AGENT_COLUMNS_A,
    CONVERSATION_COLUMNS,
    CONVERSATION_FROM,
    CONVERSATION_JOINS,
    _agent,
    _conversation,
    decode_cursor,
    encode_cursor,
)
from chatserver.store.snippets import LEADING_BLANKS, PREVIEW_HEAD, preview

# A reader's unread messages in conversation ``c`` past read position ``r``: neither
# events nor the reader's own. The one ``?`` is the reader (an agent) id.
UNREAD = (
    "(SELECT count(*) FROM messages u WHERE u.conversation_id = c.id "
    "AND u.seq > coalesce(r.seq, 0) AND u.kind != 'event' "
    "AND NOT (u.author_role = 'agent' AND u.author_id = ?))"
)
# Conversation ``c``'s newest message that is not an event, found backwards on the
# (conversation_id, seq) index; its columns (the ``?`` is LEADING_BLANKS).
LAST_MESSAGE_JOIN = (
    "LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = "
    "(SELECT lx.seq FROM messages lx WHERE lx.conversation_id = c.id AND lx.kind != 'event' "
    "ORDER BY lx.seq DESC LIMIT 1)"
)
LAST_MESSAGE_COLUMNS = (
    f"lm.seq, lm.kind, lm.author_role, substr(ltrim(lm.body, ?), 1, {PREVIEW_HEAD}), "
    "lm.created_at, (SELECT count(*) FROM attachments ax WHERE ax.message_id = lm.id)"
)
STATUSES = ("open", "pending", "resolved")


def _inbox_sql(page: str, *, unread: bool) -> str:
    """The inbox items of the conversations ``page`` selects (at most a page of them): each
    with its last message, the reader's read seq (a ``?``) and, with ``unread``, their
    unread count. The placeholders, in order: reader (with ``unread``), LEADING_BLANKS,
    those of ``page``, reader."""
    count = f"CASE WHEN c.last_seq > coalesce(r.seq, 0) THEN {UNREAD} ELSE 0 END"
    return (
        f"SELECT {CONVERSATION_COLUMNS}, r.seq, {count if unread else 'NULL'}, "
        f"{LAST_MESSAGE_COLUMNS} FROM ({page}) c {CONVERSATION_JOINS} "
        "LEFT JOIN conversation_reads r ON r.conversation_id = c.id "
        f"AND r.reader_role = 'agent' AND r.reader_id = ? {LAST_MESSAGE_JOIN} "
        "ORDER BY c.updated_at DESC, c.id DESC"
    )


def _inbox_item(row: Any, *, listed: bool) -> Conversation:
    last = None
    if row[18] is not None:
        last = LastMessage(
            seq=row[18],
            kind=row[19],
            author_role=row[20],
            preview=preview(row[21]),
            created_at=row[22],
            attachments=int(row[23]),
        )
    return msgspec.structs.replace(
        _conversation(row),
        read_seq=(row[16] or 0) if listed else None,
        unread=None if row[17] is None else int(row[17]),
        last_message=last,
    )


class SharedReads:
    """Mixin of both stores; each brings ``_rows`` and ``_row`` on its own connections."""

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def _row(self, sql: str, params: tuple[Any, ...] = ()) -> Any | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def schema_version(self) -> int:
        row = await self._row("SELECT max(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0

    async def visitor_by_token_hash(self, token_hash: str) -> Visitor | None:
        row = await self._row(
            "SELECT id, account_id, created_at FROM visitors WHERE token_hash = ?", (token_hash,)
        )
        return Visitor(id=row[0], account_id=row[1], created_at=row[2]) if row else None

    async def sessions_of(self, visitor_id: str) -> list[SessionInfo]:
        rows = await self._rows(
            "SELECT id, visitor_id, started_at, ip, user_agent, device_class, browser, os, "
            "page_url, page_title, referrer, locale, ended_at FROM visitor_sessions "
            "WHERE visitor_id = ? ORDER BY started_at",
            (visitor_id,),
        )
        return [SessionInfo(*row) for row in rows]

    async def conversation(self, conversation_id: str) -> Conversation | None:
        row = await self._row(
            f"SELECT {CONVERSATION_COLUMNS} FROM {CONVERSATION_FROM} WHERE c.id = ?",
            (conversation_id,),
        )
        return _conversation(row) if row else None

    # ------------------------------------------------------------ the inbox

    # Dialect hooks: a condition on ``c.tags`` holding the tag (one ``?``); the condition
    # (and its parameters) that conversation ``c`` has a message matching ``q``; and the
    # newest matching message of each of some conversations, with its snippet.
    _TAG_FILTER = ""

    def _search_filter(self, q: str) -> tuple[str, list[Any]]:
        raise NotImplementedError

    async def _search_matches(self, q: str, conversation_ids: list[str]) -> dict[str, SearchMatch]:
        raise NotImplementedError

    async def list_conversations(
        self,
        *,
        status: str | list[str] | None = None,
        assignee_id: str | None = None,
        unassigned: bool = False,
        q: str | None = None,
        tag: str | None = None,
        reader_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ConversationPage:
        """Newest activity first, each with its last message and read seq; with
        ``reader_id`` that agent's read seq and unread count, with ``q`` its ``match``."""
        where: list[str] = []
        params: list[Any] = []
        if tag is not None:
            where.append(self._TAG_FILTER)
            params.append(tag)
        statuses = [status] if isinstance(status, str) else list(status or ())
        if statuses:
            where.append(f"c.status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if unassigned:
            where.append("c.assignee_id IS NULL")
        elif assignee_id is not None:
            where.append("c.assignee_id = ?")
            params.append(assignee_id)
        if q:
            condition, extra = self._search_filter(q)
            where.append(condition)
            params += extra
        if cursor is not None:
            updated_at, last_id = decode_cursor(cursor, (int, str))
            where.append("(c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))")
            params += [updated_at, updated_at, last_id]
        page = "SELECT * FROM conversations c"
        if where:
            page += " WHERE " + " AND ".join(where)
        page += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
        unread = reader_id is not None
        rows = await self._rows(
            _inbox_sql(page, unread=unread),
            (
                *((reader_id,) if unread else ()),
                LEADING_BLANKS,
                *params,
                limit + 1,
                reader_id,
            ),
        )
        items = [_inbox_item(row, listed=True) for row in rows[:limit]]
        if q and items:
            matches = await self._search_matches(q, [c.id for c in items])
            items = [msgspec.structs.replace(c, match=matches.get(c.id)) for c in items]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.updated_at, last.id)
        return ConversationPage(items=items, next_cursor=next_cursor)

    async def inbox_conversation(self, conversation_id: str) -> Conversation | None:
        """One conversation as the inbox lists it (its last message), without read state."""
        row = await self._row(
            _inbox_sql("SELECT * FROM conversations c WHERE c.id = ?", unread=False),
            (LEADING_BLANKS, conversation_id, None),
        )
        return _inbox_item(row, listed=False) if row else None

    async def conversation_counts(
        self, *, reader_id: str, tag: str | None = None
    ) -> ConversationCounts:
        """The inbox's counters for agent ``reader_id``: two aggregate queries, the first
        on the status index alone, the second over open and pending conversations."""
        tag_where = f" AND {self._TAG_FILTER}" if tag is not None else ""
        tag_params = (tag,) if tag is not None else ()
        by_status = await self._rows(
            f"SELECT c.status, count(*) FROM conversations c WHERE 1 = 1{tag_where} "
            "GROUP BY c.status",
            tag_params,
        )
        row = await self._row(
            "SELECT count(*), "
            "coalesce(sum(CASE WHEN c.assignee_id IS NULL THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN c.assignee_id = ? THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN (c.assignee_id IS NULL OR c.assignee_id = ?) "
            f"AND c.last_seq > coalesce(r.seq, 0) THEN {UNREAD} ELSE 0 END), 0) "
            "FROM conversations c LEFT JOIN conversation_reads r ON r.conversation_id = c.id "
            "AND r.reader_role = 'agent' AND r.reader_id = ? "
            f"WHERE c.status IN ('open', 'pending'){tag_where}",
            (reader_id, reader_id, reader_id, reader_id, *tag_params),
        )
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({r[0]: int(r[1]) for r in by_status if r[0] in counts})
        return ConversationCounts(
            status=counts,
            all=int(row[0]) if row else 0,
            unassigned=int(row[1]) if row else 0,
            mine=int(row[2]) if row else 0,
            unread=int(row[3]) if row else 0,
        )

    async def read_state(self, conversation_id: str) -> list[tuple[str, str, int]]:
        rows = await self._rows(
            "SELECT reader_role, reader_id, seq FROM conversation_reads WHERE conversation_id = ?",
            (conversation_id,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def agent_read_positions(self, visitor_id: str) -> dict[str, int]:
        """For each of a visitor's conversations, the furthest seq any agent has read."""
        rows = await self._rows(
            "SELECT r.conversation_id, max(r.seq) FROM conversation_reads r "
            "JOIN conversations c ON c.id = r.conversation_id "
            "WHERE c.visitor_id = ? AND r.reader_role = 'agent' GROUP BY 1",
            (visitor_id,),
        )
        return {row[0]: row[1] for row in rows}

    async def agent(self, agent_id: str) -> Agent | None:
        row = await self._row(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,))
        return _agent(row) if row else None

    async def agent_credentials(self, email: str) -> tuple[Agent, str | None] | None:
        row = await self._row(
            f"SELECT {AGENT_COLUMNS}, password_hash FROM agents WHERE email = ?", (email,)
        )
        return (_agent(row), row[6]) if row else None

    async def list_agents(self) -> list[Agent]:
        rows = await self._rows(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name, id")
        return [_agent(row) for row in rows]

    async def token(self, token_hash: str) -> ApiToken | None:
        row = await self._row(
            f"SELECT t.id, {AGENT_COLUMNS_A} FROM api_tokens t JOIN agents a ON a.id = t.agent_id "
            "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
            (token_hash,),
        )
        return ApiToken(id=row[0], agent=_agent(row[1:])) if row else None

    async def tokens(self) -> list[tuple[str, int, int | None, Agent]]:
        """Every API token: (id, created_at, revoked_at, its agent), newest first."""
        rows = await self._rows(
            f"SELECT t.id, t.created_at, t.revoked_at, {AGENT_COLUMNS_A} FROM api_tokens t "
            "JOIN agents a ON a.id = t.agent_id ORDER BY t.created_at DESC, t.id DESC"
        )
        return [(r[0], r[1], r[2], _agent(r[3:])) for r in rows]

    async def allowed_origins(self) -> list[str]:
        rows = await self._rows("SELECT origin FROM allowed_origins ORDER BY origin")
        return [row[0] for row in rows]

    async def canned_responses(self) -> list[CannedResponse]:
        rows = await self._rows(
            "SELECT id, shortcut, body, updated_at FROM canned_responses ORDER BY shortcut"
        )
        return [CannedResponse(*row) for row in rows]

    async def has_consent(self, version: str, visitor_id: str, account_id: str | None) -> bool:
        row = await self._row(
            "SELECT 1 FROM consents WHERE policy_version = ? AND "
            "(visitor_id = ? OR (account_id IS NOT NULL AND account_id = ?)) LIMIT 1",
            (version, visitor_id, account_id),
        )
        return row is not None
