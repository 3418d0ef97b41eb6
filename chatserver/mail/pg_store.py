"""The outbox and the pending transcript confirmations on the PostgreSQL store: the
counterpart of ``chatserver.mail.store.MailStore``, with the same methods and answers.

Several nodes run an outbox worker over the same table: ``claim_due`` takes rows with
``FOR UPDATE SKIP LOCKED`` and leases them in the same statement, so two nodes polling
at once never send the same email, and one that dies while sending leaves it to be
tried again when the lease runs out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from chatserver.mail.store import _CONFIRMATION_COLUMNS, Confirmation, Due, MailReads, OutboxRow
from chatserver.store.pg_attachments import affected

if TYPE_CHECKING:
    import asyncpg

    from chatserver.store.pg_writer import PgTx, PgWriter


class PgLike(Protocol):
    """What this module needs of ``PostgresStore``."""

    writer: PgWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


async def _insert(conn: asyncpg.Connection, rows: list[OutboxRow]) -> None:
    await conn.executemany(
        "INSERT INTO mail_outbox (id, kind, recipient, message, conversation_id, visitor_id, "
        "next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        [
            (r.id, r.kind, r.recipient, r.message, r.conversation_id, r.visitor_id, r.created_at)
            for r in rows
        ],
    )


class PgMailStore(MailReads):
    def __init__(self, store: PgLike) -> None:
        self.store = store

    # ------------------------------------------------------------ outbox

    async def enqueue(self, rows: list[OutboxRow]) -> None:
        """Queue messages, due at once. A conversation erased meanwhile fails the foreign
        key, so nothing is queued for a person who is gone."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await _insert(conn, rows)

        await self.store.writer.run(op)

    async def claim_due(self, now: int, lease_until: int, limit: int) -> list[Due]:
        """Take up to ``limit`` messages whose time has come, counting the attempt and
        moving their next attempt to ``lease_until``: a process that dies while sending
        leaves them to be tried again then, never lost. Rows another node is claiming at
        this moment are skipped, not waited for."""
        probe = await self.store._rows(
            "SELECT 1 FROM mail_outbox WHERE next_attempt_at <= $1 LIMIT 1", (now,)
        )
        if not probe:  # the common case costs no write transaction
            return []

        async def op(conn: asyncpg.Connection, tx: PgTx) -> list[Due]:
            rows = await conn.fetch(
                "UPDATE mail_outbox u SET attempts = u.attempts + 1, next_attempt_at = $3 "
                "FROM (SELECT id, next_attempt_at AS was FROM mail_outbox "
                "WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) c WHERE u.id = c.id "
                "RETURNING u.id, u.kind, u.recipient, u.message, u.attempts, c.was",
                now,
                limit,
                lease_until,
            )
            rows = sorted(rows, key=lambda r: (r[5], r[0]))
            return [Due(r[0], r[1], r[2], r[3], r[4]) for r in rows]

        return await self.store.writer.run(op)

    async def remove(self, message_id: str) -> None:
        """Sent, or given up on: the copy of the message goes."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute("DELETE FROM mail_outbox WHERE id = $1", message_id)

        await self.store.writer.run(op)

    async def retry_later(self, message_id: str, at: int, error: str) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3",
                at,
                error[:500],
                message_id,
            )

        await self.store.writer.run(op)

    # ------------------------------------------------------------ confirmations

    async def add_confirmation(self, confirmation: Confirmation, email: OutboxRow) -> None:
        """The pending request and the email with its link, in one transaction."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            c = confirmation
            await conn.execute(
                f"INSERT INTO mail_confirmations ({_CONFIRMATION_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                c.token_hash,
                c.visitor_id,
                c.conversation_id,
                c.email,
                c.locale,
                c.created_at,
                c.expires_at,
                c.used_at,
            )
            await _insert(conn, [email])

        await self.store.writer.run(op)

    async def consume(self, token_hash: str, now: int, email: OutboxRow) -> bool:
        """Use a confirmation once: mark it used, forget its address, queue ``email``.
        False when it was used, expired or removed meanwhile (then nothing is queued).
        Two nodes consuming one token at once: the row lock lets exactly one through."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> bool:
            used = affected(
                await conn.execute(
                    "UPDATE mail_confirmations SET used_at = $1, email = NULL "
                    "WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
                    now,
                    token_hash,
                )
            )
            if used:
                await _insert(conn, [email])
            return bool(used)

        return await self.store.writer.run(op)

    async def purge_expired(self, now: int, keep_us: int) -> int:
        """At expiry a confirmation's address goes; the row itself ``keep_us`` later (until
        then the link answers "expired" rather than "unknown"). Answers rows deleted."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> int:
            await conn.execute(
                "UPDATE mail_confirmations SET email = NULL "
                "WHERE expires_at <= $1 AND email IS NOT NULL",
                now,
            )
            return affected(
                await conn.execute(
                    "DELETE FROM mail_confirmations WHERE expires_at <= $1", now - keep_us
                )
            )

        return int(await self.store.writer.run(op))
