"""Endpoints and the outbox of deliveries on the PostgreSQL store: the counterpart of
``chatserver.webhooks.store.WebhookStore``, with the same methods and answers.

Several nodes run a dispatcher over the same outbox. ``due`` claims rows with
``FOR UPDATE SKIP LOCKED`` and moves their next attempt to the end of a lease in the
same statement, so two nodes polling at once never take the same delivery, and one
that dies mid-attempt leaves it to be taken again when the lease runs out.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from chatserver.errors import NotFound
from chatserver.store.models import AuditRecord
from chatserver.store.pg_attachments import affected
from chatserver.store.pg_privacy import append_audit
from chatserver.store.rows import decode_cursor, encode_cursor
from chatserver.store.writer import Done
from chatserver.webhooks.store import (
    DEFAULT_LEASE_US,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    LOG_ATTEMPTS,
    Attempt,
    Delivery,
    Due,
    Endpoint,
    EndpointReads,
    NewDelivery,
    _delivery,
    _endpoint,
)

if TYPE_CHECKING:
    import asyncpg

    from chatserver.store.pg_writer import PgTx, PgWriter

_ENDPOINT_FIELDS = [c.strip() for c in ENDPOINT_COLUMNS.split(",")]
_DUE_WHERE = (
    "d.status = 'pending' AND d.next_attempt_at <= $1 AND w.active = 1 "
    "AND d.payload IS NOT NULL AND NOT (d.id = ANY($2::text[]))"
)


class PgLike(Protocol):
    """What this module needs of ``PostgresStore``."""

    writer: PgWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


async def _insert(conn: asyncpg.Connection, rows: list[NewDelivery]) -> int:
    """Insert what still has its endpoint and conversation; never raises on a missing one,
    since a failing operation would send its whole batch (messages too) to be retried."""
    added = 0
    for d in rows:
        added += affected(
            await conn.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_type, conversation_id, "
                "payload, next_attempt_at, created_at) "
                "SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint, $6::bigint "
                "WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $2::text) "
                "AND ($4::text IS NULL OR EXISTS "
                "(SELECT 1 FROM conversations WHERE id = $4::text))",
                d.id,
                d.webhook_id,
                d.event_type,
                d.conversation_id,
                d.payload.decode(),
                d.created_at,
            )
        )
    return added


class PgWebhookStore(EndpointReads):
    def __init__(self, store: PgLike) -> None:
        self.store = store
        self.writer = store.writer

    # ------------------------------------------------------------ endpoints

    async def add_endpoint(self, endpoint: Endpoint, audit: AuditRecord) -> Endpoint:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Endpoint:
            await conn.execute(
                f"INSERT INTO webhooks ({ENDPOINT_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                endpoint.id,
                endpoint.url,
                endpoint.secret,
                json.dumps(list(endpoint.events)),
                endpoint.description,
                int(endpoint.include_message_body),
                int(endpoint.include_notes),
                int(endpoint.active),
                endpoint.created_by,
                endpoint.created_at,
                endpoint.updated_at,
            )
            await append_audit(conn, audit)
            return endpoint

        return await self.writer.run(op)

    async def change_endpoint(
        self, webhook_id: str, changes: dict[str, Any], audit: AuditRecord
    ) -> Endpoint:
        """Apply ``changes`` (column: value; ``events`` a list) and answer the endpoint."""
        allowed = set(_ENDPOINT_FIELDS) - {"id", "created_at"}

        async def op(conn: asyncpg.Connection, tx: PgTx) -> Endpoint:
            values: dict[str, Any] = {}
            for column, value in changes.items():
                if column not in allowed:  # column names come from this fixed set only
                    raise ValueError(column)
                if column == "events":
                    value = json.dumps(list(value))
                elif isinstance(value, bool):
                    value = int(value)
                values[column] = value
            if values:
                assignments = ", ".join(
                    f"{column} = ${n}" for n, column in enumerate(values, start=2)
                )
                await conn.execute(
                    f"UPDATE webhooks SET {assignments} WHERE id = $1",
                    webhook_id,
                    *values.values(),
                )
            row = await conn.fetchrow(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhooks WHERE id = $1", webhook_id
            )
            if row is None:
                raise NotFound("no such webhook")
            await append_audit(conn, audit)
            return _endpoint(row)

        return await self.writer.run(op)

    async def delete_endpoint(self, webhook_id: str, audit: AuditRecord) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            # Its deliveries, pending or logged, go with it (ON DELETE CASCADE).
            if not affected(await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)):
                raise NotFound("no such webhook")
            await append_audit(conn, audit)

        await self.writer.run(op)

    # ------------------------------------------------------------ the outbox

    def enqueue(self, rows: list[NewDelivery], done: Done) -> None:
        """Write deliveries without awaiting: called from the hub's observers."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> int:
            return await _insert(conn, rows)

        self.writer.submit(op, done)

    async def add_deliveries(self, rows: list[NewDelivery]) -> int:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> int:
            return await _insert(conn, rows)

        return await self.writer.run(op)

    async def due(
        self, now: int, *, skip: set[str], limit: int, lease_until: int | None = None
    ) -> list[Due]:
        """Claim pending deliveries of active endpoints whose time has come, oldest first,
        moving their next attempt to ``lease_until`` (see ``WebhookStore.due``). Rows
        another node is claiming at this moment are skipped, not waited for."""
        lease = now + DEFAULT_LEASE_US if lease_until is None else lease_until
        skipped = list(skip)
        # A read first: nothing due (the common case) costs no write transaction.
        probe = await self.store._rows(
            "SELECT 1 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            f"WHERE {_DUE_WHERE} LIMIT 1",
            (now, skipped),
        )
        if not probe:
            return []

        async def op(conn: asyncpg.Connection, tx: PgTx) -> list[Due]:
            rows = await conn.fetch(
                "UPDATE webhook_deliveries u SET next_attempt_at = $4 FROM ("
                "SELECT d.id, d.next_attempt_at AS was, w.url, w.secret "
                "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                f"WHERE {_DUE_WHERE} ORDER BY d.next_attempt_at, d.id LIMIT $3 "
                "FOR UPDATE OF d SKIP LOCKED) c WHERE u.id = c.id "
                "RETURNING u.id, u.event_type, u.payload, u.attempts, c.url, c.secret, c.was",
                now,
                skipped,
                limit,
                lease,
            )
            rows = sorted(rows, key=lambda r: (r[6], r[0]))
            return [
                Due(
                    id=r[0],
                    event_type=r[1],
                    payload=r[2].encode(),
                    attempts=r[3],
                    url=r[4],
                    secret=r[5],
                    lease_until=lease,
                )
                for r in rows
            ]

        return await self.writer.run(op)

    async def release(self, claims: list[Due], now: int) -> None:
        """Give back deliveries claimed by ``due`` and not attempted to the end (a
        shutdown): due again at once, here after a restart or on another node. One whose
        lease ran out and was claimed again meanwhile is left to that claim."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = $1 "
                "WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
                [(now, d.id, d.lease_until) for d in claims],
            )

        if claims:
            await self.writer.run(op)

    async def next_due(self, *, skip: set[str]) -> int | None:
        """When the next pending delivery of an active endpoint is due, ignoring ``skip``."""
        rows = await self.store._rows(
            "SELECT d.next_attempt_at FROM webhook_deliveries d "
            "JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND w.active = 1 AND NOT (d.id = ANY($1::text[])) "
            "ORDER BY d.next_attempt_at, d.id LIMIT 1",
            (list(skip),),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: str, next_attempt_at: int | None
    ) -> None:
        """Log one attempt. A delivered or given-up row keeps no payload and no conversation:
        what is left is the log, which names nobody."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            # Locked: an attempt logged by another node at the same moment (its lease ran
            # out) is appended after this one, not lost.
            log_text = await conn.fetchval(
                "SELECT attempt_log FROM webhook_deliveries WHERE id = $1 FOR UPDATE",
                delivery_id,
            )
            if log_text is None:
                return  # erased, expired or its endpoint deleted meanwhile
            log = json.loads(log_text)
            log.append(msgspec.to_builtins(attempt))
            log = log[-LOG_ATTEMPTS:]
            finished = status != "pending"
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, attempt_log = $1, "
                "status = $2, next_attempt_at = $3, "
                "payload = CASE WHEN $4::boolean THEN NULL ELSE payload END, "
                "conversation_id = CASE WHEN $4::boolean THEN NULL ELSE conversation_id END, "
                "finished_at = CASE WHEN $4::boolean THEN $5::bigint ELSE finished_at END "
                "WHERE id = $6",
                json.dumps(log),
                status,
                next_attempt_at,
                finished,
                attempt.at,
                delivery_id,
            )

        await self.writer.run(op)

    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Delivery], str | None]:
        """The delivery log of one endpoint, newest first."""
        params: list[Any] = [webhook_id]
        where = ["webhook_id = $1"]
        if status is not None:
            params.append(status)
            where.append(f"status = ${len(params)}")
        if cursor is not None:
            created_at, delivery_id = decode_cursor(cursor, (int, str))
            params += [created_at, delivery_id]
            a, b = len(params) - 1, len(params)
            where.append(f"(created_at < ${a} OR (created_at = ${a} AND id < ${b}))")
        params.append(limit + 1)
        rows = await self.store._rows(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)} "
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(params)}",
            tuple(params),
        )
        items = [_delivery(r) for r in rows[:limit]]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].created_at, items[-1].id) if more else None
