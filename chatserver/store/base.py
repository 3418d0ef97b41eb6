"""The Store interface: everything the core asks of durable storage.

Writes that the relay makes per message (``submit_message``, ``submit_read``)
take a callback instead of being awaited, so a burst of them shares one
transaction and no task is created per message; the callback runs on the event
loop after commit with the result or the error. Every other write is awaited.
"""

from __future__ import annotations

from typing import Any, Protocol

from chatserver.store.models import (
    Account,
    Agent,
    ApiToken,
    Conversation,
    ConversationPage,
    NewMessage,
    Policy,
    SessionInfo,
    StoredMessage,
    Visitor,
)
from chatserver.store.writer import Done


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def schema_version(self) -> int: ...

    async def visitor_by_token_hash(self, token_hash: str) -> Visitor | None: ...
    async def create_visitor(self, visitor_id: str, token_hash: str, now: int) -> Visitor: ...
    async def account(self, account_id: str) -> Account | None: ...
    async def start_session(self, info: SessionInfo) -> None: ...
    def end_session(self, session_id: str, now: int) -> None: ...
    async def sessions_of(self, visitor_id: str) -> list[SessionInfo]: ...

    async def conversation(self, conversation_id: str) -> Conversation | None: ...
    async def visitor_conversations(self, visitor_id: str) -> list[Conversation]: ...
    async def list_conversations(
        self,
        *,
        status: str | None = None,
        assignee_id: str | None = None,
        unassigned: bool = False,
        q: str | None = None,
        tag: str | None = None,
        reader_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> ConversationPage: ...
    async def assigned_load(self, agent_ids: list[str]) -> dict[str, int]: ...
    async def stats_rows(self, start: int, end: int) -> dict[str, list[Any]]: ...
    async def update_conversation(
        self,
        conversation_id: str,
        *,
        now: int,
        status: str | None = None,
        assignee_id: str | None = None,
        unassign: bool = False,
        tags: list[str] | None = None,
    ) -> tuple[Conversation, Conversation]: ...

    def submit_message(self, new: NewMessage, done: Done) -> None: ...
    async def append_message(self, new: NewMessage) -> StoredMessage: ...
    async def messages_after(
        self, conversation_id: str, after_seq: int, limit: int, *, include_notes: bool = True
    ) -> list[StoredMessage]: ...
    def submit_read(
        self, conversation_id: str, role: str, reader_id: str, seq: int, now: int, done: Done
    ) -> None: ...
    async def read_state(self, conversation_id: str) -> list[tuple[str, str, int]]: ...

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
    ) -> Agent: ...
    async def agent(self, agent_id: str) -> Agent | None: ...
    async def agent_credentials(self, email: str) -> tuple[Agent, str | None] | None: ...
    async def list_agents(self) -> list[Agent]: ...
    async def update_agent(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        role: str | None = None,
        active: bool | None = None,
        password_hash: str | None = None,
    ) -> Agent: ...
    async def create_api_token(
        self, token_id: str, token_hash: str, agent_id: str, now: int
    ) -> None: ...
    async def token(self, token_hash: str) -> ApiToken | None: ...

    async def publish_policy(self, version: str, url: str | None, now: int) -> Policy: ...
    async def current_policy(self) -> Policy | None: ...
    async def has_consent(self, version: str, visitor_id: str, account_id: str | None) -> bool: ...
    async def record_consent(
        self, consent_id: str, version: str, visitor_id: str, account_id: str | None, now: int
    ) -> None: ...
