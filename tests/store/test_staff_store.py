"""Staff in the store (migration 14), on SQLite and on PostgreSQL: invitations are used
once even when accepted twice at once, and the migration keeps the emails that wait in
the outbox (SQLite makes that table anew to widen its kind check)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chatserver.errors import Conflict, NotFound
from chatserver.mail.store import OutboxRow
from chatserver.store.migrations import MIGRATIONS
from chatserver.store.models import Invitation
from chatserver.store.pg_schema import MIGRATIONS as PG_MIGRATIONS
from chatserver.store.postgres import PostgresStore, parse_url
from chatserver.store.sqlite import SQLiteStore, _statements

NOW = 1_800_000_000_000_000
HOUR = 3600 * 1_000_000


def invitation(n: int, email: str, *, expires: int = NOW + 72 * HOUR) -> Invitation:
    return Invitation(
        id=f"inv-{n}",
        email=email,
        name="Invitee",
        role="agent",
        invited_by=None,
        created_at=NOW,
        expires_at=expires,
    )


def email_to(n: int, address: str) -> OutboxRow:
    return OutboxRow(
        id=f"mail-{n}",
        kind="invitation",
        recipient=address,
        message="Subject: hi\n\nhi",
        created_at=NOW,
    )


async def outbox(store: Any) -> list[tuple[Any, ...]]:
    rows = await store._rows("SELECT id, kind, recipient FROM mail_outbox ORDER BY id")
    return [tuple(r) for r in rows]


async def test_an_invitation_accepted_twice_at_once_makes_one_agent(store: Any) -> None:
    """Two accepts of one token at the same moment: one agent, the other ``NotFound``; the
    email was queued with the invitation, and re-inviting the address replaces both."""
    await store.add_invitation(
        invitation(1, "a@staff.example"), "hash-1", email_to(1, "a@staff.example")
    )
    assert await outbox(store) == [("mail-1", "invitation", "a@staff.example")]
    await store.add_invitation(
        invitation(2, "a@staff.example"), "hash-2", email_to(2, "a@staff.example")
    )
    assert await outbox(store) == [("mail-2", "invitation", "a@staff.example")]
    assert [i.id for i in await store.pending_invitations(NOW)] == ["inv-2"]
    assert await store.invitation_by_token("hash-1", NOW) is None

    results = await asyncio.gather(
        *(
            store.accept_invitation(
                "hash-2", agent_id=f"agent-{n}", name="Ann", password_hash="x", now=NOW + n
            )
            for n in range(2)
        ),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1 and len(refused) == 1 and isinstance(refused[0], NotFound)
    agent, used = made[0]
    assert agent.email == "a@staff.example" and used.used_at is not None
    assert [a.email for a in await store.list_agents()] == ["a@staff.example"]
    with pytest.raises(Conflict):
        await store.revoke_invitation("inv-2", NOW)
    with pytest.raises(Conflict) as taken:
        await store.add_invitation(invitation(3, "a@staff.example"), "hash-3", email_to(3, "x"))
    assert taken.value.field == "email"
    # An expired one is no longer pending, and cannot be accepted.
    await store.add_invitation(
        invitation(4, "late@staff.example", expires=NOW + HOUR), "hash-4", email_to(4, "late")
    )
    assert await store.invitation_by_token("hash-4", NOW + HOUR) is None
    with pytest.raises(NotFound):
        await store.accept_invitation(
            "hash-4", agent_id="agent-late", name="Late", password_hash="x", now=NOW + HOUR
        )


async def test_preferences_are_stored_per_agent(store: Any) -> None:
    await store.add_agent(
        agent_id="ag-1", email="p@staff.example", name="P", role="agent", password_hash=None, now=1
    )
    assert await store.agent_preferences("ag-1") is None
    await store.save_agent_preferences("ag-1", '{"sound":false}')
    assert await store.agent_preferences("ag-1") == '{"sound":false}'
    with pytest.raises(NotFound):
        await store.save_agent_preferences("nobody", "{}")


# ---------------------------------------------------------------- migration 14 on old data

WAITING = (
    "INSERT INTO mail_outbox (id, kind, recipient, message, attempts, next_attempt_at, "
    "last_error, created_at) VALUES ('m1', 'transcript', 'v@x.example', 'the mail', 2, 5, "
    "'SMTP down', 1)"
)
AFTER = (
    "SELECT id, kind, recipient, message, conversation_id, visitor_id, attempts, "
    "next_attempt_at, last_error, created_at FROM mail_outbox"
)
KEPT = [("m1", "transcript", "v@x.example", "the mail", None, None, 2, 5, "SMTP down", 1)]


async def test_sqlite_migration_14_keeps_waiting_emails(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at INTEGER NOT NULL)"
        )
        for version, name, sql in MIGRATIONS:
            if version >= 14:
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
        conn.execute(WAITING)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == MIGRATIONS[-1][0]
        assert [tuple(r) for r in await store._rows(AFTER)] == KEPT
        await store.add_invitation(invitation(1, "n@staff.example"), "h", email_to(1, "n@x"))
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(mail_outbox)")}
        assert {"mail_outbox_due", "mail_outbox_conversation", "mail_outbox_visitor"} <= indexes
        references = {r[2] for r in conn.execute("PRAGMA foreign_key_list(mail_outbox)")}
        assert references == {"conversations", "visitors"}
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


async def test_postgresql_migration_14_keeps_waiting_emails(pg_url: str) -> None:
    dsn, schema = parse_url(pg_url)
    assert schema is not None
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at BIGINT NOT NULL)"
        )
        for version, name, sql in PG_MIGRATIONS:
            if version >= 14:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, 0)", version, name)
        await conn.execute(WAITING)
    finally:
        await conn.close()
    store = PostgresStore.from_url(pg_url)
    await store.open()
    try:
        assert await store.schema_version() == PG_MIGRATIONS[-1][0]
        assert [tuple(r) for r in await store._rows(AFTER)] == KEPT
        await store.add_invitation(invitation(1, "n@staff.example"), "h", email_to(1, "n@x"))
        assert len(await outbox(store)) == 2
    finally:
        await store.close()
