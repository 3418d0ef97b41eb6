"""Endpoints and the outbox of deliveries, on the SQLite store's writer and readers.

The outbox is also the delivery log: a row is written when its event happens,
carries the exact body to send while it is pending, and keeps only times,
status codes and errors once it is delivered or given up. Every write goes
through the store's group-commit writer, so an event's rows share the
transaction of whatever else is being written at that moment.

``due`` is a claim with a lease: a delivery being attempted is not taken by another
dispatcher on the same database (another process on this file, or another node on
PostgreSQL: ``pg_store``), and is taken again if its attempt never ends.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Protocol

import msgspec

from chatserver.errors import NotFound
from chatserver.store.models import AuditRecord
from chatserver.store.rows import decode_cursor, encode_cursor
from chatserver.store.sqlite_privacy import append_audit
from chatserver.store.writer import Done, GroupCommitWriter, Tx

ENDPOINT_COLUMNS = (
    "id, url, secret, events, description, include_message_body, include_notes, active, "
    "created_by, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, webhook_id, event_type, status, attempts, attempt_log, next_attempt_at, created_at, "
    "finished_at"
)
# Attempts remembered per delivery in the log: enough to see a pattern, bounded.
LOG_ATTEMPTS = 50
STATUSES = ("pending", "delivered", "failed")
# How long a claimed delivery is held when the caller names no lease (µs).
DEFAULT_LEASE_US = 60 * 1_000_000


class SQLiteLike(Protocol):
    """What this module needs of ``SQLiteStore``."""

    writer: GroupCommitWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


class Endpoint(msgspec.Struct, frozen=True):
    id: str
    url: str
    secret: str
    events: tuple[str, ...]
    description: str
    include_message_body: bool
    include_notes: bool
    active: bool
    created_by: str | None
    created_at: int
    updated_at: int


class Attempt(msgspec.Struct, frozen=True):
    at: int
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(msgspec.Struct, frozen=True):
    id: str
    webhook_id: str
    event_type: str
    status: str
    attempts: int
    log: list[Attempt]
    next_attempt_at: int | None
    created_at: int
    finished_at: int | None


class Due(msgspec.Struct, frozen=True):
    """A pending delivery ready to be attempted, with where and how to sign it."""

    id: str
    event_type: str
    payload: bytes
    attempts: int
    url: str
    secret: str
    # Until when this claim holds it (``WebhookStore.due``).
    lease_until: int = 0


class NewDelivery(msgspec.Struct, frozen=True):
    id: str
    webhook_id: str
    event_type: str
    conversation_id: str | None
    payload: bytes
    created_at: int


class WebhookOutbox(Protocol):
    """What the dispatcher and the service use of a webhook store: ``WebhookStore`` on
    SQLite, ``chatserver.webhooks.pg_store.PgWebhookStore`` on PostgreSQL."""

    async def endpoints(self) -> list[Endpoint]: ...
    async def endpoint(self, webhook_id: str) -> Endpoint | None: ...
    async def add_endpoint(self, endpoint: Endpoint, audit: AuditRecord) -> Endpoint: ...
    async def change_endpoint(
        self, webhook_id: str, changes: dict[str, Any], audit: AuditRecord
    ) -> Endpoint: ...
    async def delete_endpoint(self, webhook_id: str, audit: AuditRecord) -> None: ...
    def enqueue(self, rows: list[NewDelivery], done: Done) -> None: ...
    async def add_deliveries(self, rows: list[NewDelivery]) -> int: ...
    async def due(
        self, now: int, *, skip: set[str], limit: int, lease_until: int | None = None
    ) -> list[Due]: ...
    async def release(self, claims: list[Due], now: int) -> None: ...
    async def next_due(self, *, skip: set[str]) -> int | None: ...
    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: str, next_attempt_at: int | None
    ) -> None: ...
    async def deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Delivery], str | None]: ...


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row[0],
        url=row[1],
        secret=row[2],
        events=tuple(json.loads(row[3])),
        description=row[4],
        include_message_body=bool(row[5]),
        include_notes=bool(row[6]),
        active=bool(row[7]),
        created_by=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        webhook_id=row[1],
        event_type=row[2],
        status=row[3],
        attempts=row[4],
        log=msgspec.json.decode(row[5], type=list[Attempt]),
        next_attempt_at=row[6],
        created_at=row[7],
        finished_at=row[8],
    )


def _insert(conn: sqlite3.Connection, rows: list[NewDelivery]) -> int:
    """Insert what still has its endpoint and conversation; never raises on a missing one,
    since a failing operation would send its whole batch (messages too) to be retried."""
    added = 0
    for d in rows:
        added += conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_type, conversation_id, "
            "payload, next_attempt_at, created_at) SELECT ?,?,?,?,?,?,? "
            "WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?) AND (? IS NULL OR EXISTS "
            "(SELECT 1 FROM conversations WHERE id = ?))",
            (
                d.id,
                d.webhook_id,
                d.event_type,
                d.conversation_id,
                d.payload.decode(),
                d.created_at,
                d.created_at,
                d.webhook_id,
                d.conversation_id,
                d.conversation_id,
            ),
        ).rowcount
    return added


class EndpointReads:
    """Endpoint reads both stores answer with the same SQL (``?`` placeholders; the
    PostgreSQL store numbers them)."""

    store: Any

    async def endpoints(self) -> list[Endpoint]:
        rows = await self.store._rows(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhooks ORDER BY created_at, id"
        )
        return [_endpoint(r) for r in rows]

    async def endpoint(self, webhook_id: str) -> Endpoint | None:
        rows = await self.store._rows(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)
        )
        return _endpoint(rows[0]) if rows else None


class WebhookStore(EndpointReads):
    def __init__(self, store: SQLiteLike) -> None:
        self.store = store
        self.writer = store.writer

    # ------------------------------------------------------------ endpoints

    async def add_endpoint(self, endpoint: Endpoint, audit: AuditRecord) -> Endpoint:
        def op(conn: sqlite3.Connection, tx: Tx) -> Endpoint:
            conn.execute(
                f"INSERT INTO webhooks ({ENDPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
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
                ),
            )
            append_audit(conn, audit)
            return endpoint

        return await self.writer.run(op)

    async def change_endpoint(
        self, webhook_id: str, changes: dict[str, Any], audit: AuditRecord
    ) -> Endpoint:
        """Apply ``changes`` (column: value; ``events`` a list) and answer the endpoint."""
        allowed = set(ENDPOINT_COLUMNS.replace(" ", "").split(",")) - {"id", "created_at"}

        def op(conn: sqlite3.Connection, tx: Tx) -> Endpoint:
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
                assignments = ", ".join(f"{column} = ?" for column in values)
                conn.execute(
                    f"UPDATE webhooks SET {assignments} WHERE id = ?",
                    (*values.values(), webhook_id),
                )
            row = conn.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such webhook")
            append_audit(conn, audit)
            return _endpoint(row)

        return await self.writer.run(op)

    async def delete_endpoint(self, webhook_id: str, audit: AuditRecord) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            # Its deliveries, pending or logged, go with it (ON DELETE CASCADE).
            if not conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount:
                raise NotFound("no such webhook")
            append_audit(conn, audit)

        await self.writer.run(op)

    # ------------------------------------------------------------ the outbox

    def enqueue(self, rows: list[NewDelivery], done: Done) -> None:
        """Write deliveries without awaiting: called from the hub's observers."""
        self.writer.submit(lambda conn, tx: _insert(conn, rows), done)

    async def add_deliveries(self, rows: list[NewDelivery]) -> int:
        return await self.writer.run(lambda conn, tx: _insert(conn, rows))

    async def due(
        self, now: int, *, skip: set[str], limit: int, lease_until: int | None = None
    ) -> list[Due]:
        """Claim pending deliveries of active endpoints whose time has come, oldest first.

        Each one claimed has its next attempt moved to ``lease_until`` in the same
        transaction, so no other dispatcher on this database takes it while it is being
        attempted; ``record_attempt`` then sets the real next time. A process that dies
        mid-attempt leaves it to be taken again once the lease has run out (at least
        once, never lost).
        """
        lease = now + DEFAULT_LEASE_US if lease_until is None else lease_until
        # A read first: the dispatcher looks after every event, and nothing due (the
        # common case) should cost a write transaction.
        probe = await self.store._rows(
            "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.active = 1 "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (now, len(skip) + 1),
        )
        if all(r[0] in skip for r in probe):
            return []

        def op(conn: sqlite3.Connection, tx: Tx) -> list[Due]:
            rows = conn.execute(
                "SELECT d.id, d.event_type, d.payload, d.attempts, w.url, w.secret "
                "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                "WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.active = 1 "
                "ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (now, limit + len(skip)),
            ).fetchall()
            found = [r for r in rows if r[0] not in skip and r[2] is not None][:limit]
            conn.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                [(lease, r[0]) for r in found],
            )
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
                for r in found
            ]

        return await self.writer.run(op)

    async def release(self, claims: list[Due], now: int) -> None:
        """Give back deliveries claimed by ``due`` and not attempted to the end (a
        shutdown): due again at once, for this node after a restart or for another.
        One whose lease ran out and was claimed again meanwhile is left to that claim."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            conn.executemany(
                "UPDATE webhook_deliveries SET next_attempt_at = ? "
                "WHERE id = ? AND status = 'pending' AND next_attempt_at = ?",
                [(now, d.id, d.lease_until) for d in claims],
            )

        if claims:
            await self.writer.run(op)

    async def next_due(self, *, skip: set[str]) -> int | None:
        """When the next pending delivery of an active endpoint is due, ignoring ``skip``."""
        rows = await self.store._rows(
            "SELECT d.id, d.next_attempt_at FROM webhook_deliveries d "
            "JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND w.active = 1 "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (len(skip) + 1,),
        )
        for delivery_id, at in rows:
            if delivery_id not in skip:
                return int(at)
        return None

    async def record_attempt(
        self, delivery_id: str, attempt: Attempt, *, status: str, next_attempt_at: int | None
    ) -> None:
        """Log one attempt. A delivered or given-up row keeps no payload and no conversation:
        what is left is the log, which names nobody."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            row = conn.execute(
                "SELECT attempt_log FROM webhook_deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                return  # erased, expired or its endpoint deleted meanwhile
            log = json.loads(row[0])
            log.append(msgspec.to_builtins(attempt))
            log = log[-LOG_ATTEMPTS:]
            finished = status != "pending"
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, attempt_log = ?, "
                "status = ?, next_attempt_at = ?, "
                "payload = CASE WHEN ? THEN NULL ELSE payload END, "
                "conversation_id = CASE WHEN ? THEN NULL ELSE conversation_id END, "
                "finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
                (
                    json.dumps(log),
                    status,
                    next_attempt_at,
                    finished,
                    finished,
                    finished,
                    attempt.at,
                    delivery_id,
                ),
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
        where = ["webhook_id = ?"]
        params: list[Any] = [webhook_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if cursor is not None:
            created_at, delivery_id = decode_cursor(cursor, (int, str))
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [created_at, created_at, delivery_id]
        rows = await self.store._rows(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
        items = [_delivery(r) for r in rows[:limit]]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].created_at, items[-1].id) if more else None
