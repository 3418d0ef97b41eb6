"""The outbox and the pending transcript confirmations, in the SQLite store (migration 11).

Writes go through the store's group-commit writer like every other write, reads
through its reader connections. Rows name their conversation and visitor with
``ON DELETE CASCADE``, so erasing a person, or retention removing a conversation,
takes their emails and confirmations with it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from chatserver.store.writer import Tx

if TYPE_CHECKING:
    from chatserver.store.sqlite import SQLiteStore


class OutboxRow(msgspec.Struct, frozen=True):
    id: str
    kind: str  # offline_notice, transcript, confirmation or invitation
    recipient: str
    message: str
    created_at: int
    conversation_id: str | None = None
    visitor_id: str | None = None


class Due(msgspec.Struct, frozen=True):
    """A message claimed for one attempt; ``attempts`` counts this one."""

    id: str
    kind: str
    recipient: str
    message: str
    attempts: int


class Confirmation(msgspec.Struct, frozen=True):
    token_hash: str
    visitor_id: str
    conversation_id: str
    email: str | None
    locale: str
    created_at: int
    expires_at: int
    used_at: int | None = None


class MailDb(Protocol):
    """What the mail service and the outbox worker use of a mail store: ``MailStore`` on
    SQLite, ``chatserver.mail.pg_store.PgMailStore`` on PostgreSQL."""

    async def enqueue(self, rows: list[OutboxRow]) -> None: ...
    async def claim_due(self, now: int, lease_until: int, limit: int) -> list[Due]: ...
    async def remove(self, message_id: str) -> None: ...
    async def retry_later(self, message_id: str, at: int, error: str) -> None: ...
    async def next_due(self) -> int | None: ...
    async def add_confirmation(self, confirmation: Confirmation, email: OutboxRow) -> None: ...
    async def confirmation(self, token_hash: str) -> Confirmation | None: ...
    async def consume(self, token_hash: str, now: int, email: OutboxRow) -> bool: ...
    async def purge_expired(self, now: int, keep_us: int) -> int: ...


_CONFIRMATION_COLUMNS = (
    "token_hash, visitor_id, conversation_id, email, locale, created_at, expires_at, used_at"
)


def _insert(conn: sqlite3.Connection, rows: list[OutboxRow]) -> None:
    conn.executemany(
        "INSERT INTO mail_outbox (id, kind, recipient, message, conversation_id, visitor_id, "
        "next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                r.id,
                r.kind,
                r.recipient,
                r.message,
                r.conversation_id,
                r.visitor_id,
                r.created_at,
                r.created_at,
            )
            for r in rows
        ],
    )


class MailReads:
    """Outbox and confirmation reads both stores answer with the same SQL."""

    store: Any

    async def next_due(self) -> int | None:
        rows = await self.store._rows("SELECT min(next_attempt_at) FROM mail_outbox")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def confirmation(self, token_hash: str) -> Confirmation | None:
        rows = await self.store._rows(
            f"SELECT {_CONFIRMATION_COLUMNS} FROM mail_confirmations WHERE token_hash = ?",
            (token_hash,),
        )
        return Confirmation(*rows[0]) if rows else None


class MailStore(MailReads):
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    # ------------------------------------------------------------ outbox

    async def enqueue(self, rows: list[OutboxRow]) -> None:
        """Queue messages, due at once. A conversation erased meanwhile fails the foreign
        key, so nothing is queued for a person who is gone."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            _insert(conn, rows)

        await self.store.writer.run(op)

    async def claim_due(self, now: int, lease_until: int, limit: int) -> list[Due]:
        """Take up to ``limit`` messages whose time has come, counting the attempt and
        moving their next attempt to ``lease_until``: a process that dies while sending
        leaves them to be tried again then, never lost."""

        def op(conn: sqlite3.Connection, tx: Tx) -> list[Due]:
            rows = conn.execute(
                "SELECT id, kind, recipient, message, attempts FROM mail_outbox "
                "WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                [(lease_until, r[0]) for r in rows],
            )
            return [Due(r[0], r[1], r[2], r[3], r[4] + 1) for r in rows]

        return await self.store.writer.run(op)

    async def remove(self, message_id: str) -> None:
        """Sent, or given up on: the copy of the message goes."""
        await self.store.writer.run(
            lambda conn, tx: conn.execute("DELETE FROM mail_outbox WHERE id = ?", (message_id,))
        )

    async def retry_later(self, message_id: str, at: int, error: str) -> None:
        await self.store.writer.run(
            lambda conn, tx: conn.execute(
                "UPDATE mail_outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                (at, error[:500], message_id),
            )
        )

    # ------------------------------------------------------------ confirmations

    async def add_confirmation(self, confirmation: Confirmation, email: OutboxRow) -> None:
        """The pending request and the email with its link, in one transaction."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            c = confirmation
            conn.execute(
                f"INSERT INTO mail_confirmations ({_CONFIRMATION_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    c.token_hash,
                    c.visitor_id,
                    c.conversation_id,
                    c.email,
                    c.locale,
                    c.created_at,
                    c.expires_at,
                    c.used_at,
                ),
            )
            _insert(conn, [email])

        await self.store.writer.run(op)

    async def consume(self, token_hash: str, now: int, email: OutboxRow) -> bool:
        """Use a confirmation once: mark it used, forget its address, queue ``email``.
        False when it was used, expired or removed meanwhile (then nothing is queued)."""

        def op(conn: sqlite3.Connection, tx: Tx) -> bool:
            used = conn.execute(
                "UPDATE mail_confirmations SET used_at = ?, email = NULL "
                "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                (now, token_hash, now),
            ).rowcount
            if used:
                _insert(conn, [email])
            return bool(used)

        return await self.store.writer.run(op)

    async def purge_expired(self, now: int, keep_us: int) -> int:
        """At expiry a confirmation's address goes; the row itself ``keep_us`` later (until
        then the link answers "expired" rather than "unknown"). Answers rows deleted."""

        def op(conn: sqlite3.Connection, tx: Tx) -> int:
            conn.execute(
                "UPDATE mail_confirmations SET email = NULL "
                "WHERE expires_at <= ? AND email IS NOT NULL",
                (now,),
            )
            return int(
                conn.execute(
                    "DELETE FROM mail_confirmations WHERE expires_at <= ?", (now - keep_us,)
                ).rowcount
            )

        return int(await self.store.writer.run(op))
