"""Reads both stores answer with the same SQL: written once, with ``?`` placeholders
(the PostgreSQL store numbers them as ``$1, $2 …`` on the way out)."""

from __future__ import annotations

from typing import Any

from chatserver.store.models import (
    Agent,
    ApiToken,
    CannedResponse,
    Conversation,
    SessionInfo,
    Visitor,
)
from chatserver.store.rows import (
    AGENT_COLUMNS,
    AGENT_COLUMNS_A,
    CONVERSATION_COLUMNS,
    CONVERSATION_FROM,
    _agent,
    _conversation,
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
