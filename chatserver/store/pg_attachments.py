"""The attachments' part of the PostgreSQL store: the counterpart of ``sqlite_attachments``.

Mixed into ``PostgresStore``, which provides ``writer`` (a ``PgWriter``) and ``_rows``.
``claim_attachments`` runs inside the writer's transaction that stores a message, so a
file is linked to exactly one message in the same commit as the message itself. Several
nodes may store messages at once: the rows claimed are locked (``FOR UPDATE``) until the
commit, so a second node claiming the same file waits and then sees it taken. Deleting a
conversation or a message drops its attachment rows by cascade; the ``attachments_trash``
trigger (migration 7 of ``pg_schema``) keeps their storage keys in ``attachment_trash``
until the files are deleted from disk (``chatserver.attachments.lifecycle.purge``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatserver.errors import BadRequest, Conflict, NotFound, RateLimited
from chatserver.store.models import Attachment, AttachmentRef, NewMessage

if TYPE_CHECKING:
    import asyncpg

    from chatserver.store.pg_writer import PgTx, PgWriter

ATTACHMENT_COLUMNS = (
    "a.id, a.conversation_id, a.message_id, a.uploader_role, a.uploader_id, a.name, a.size, "
    "a.type, a.sha256, a.storage_key, a.created_at"
)
# A message's attachments as one JSON text, for the message reads (the PG counterpart of
# ``sqlite_attachments.MESSAGE_ATTACHMENTS``; ``refs_from_json`` reads both).
MESSAGE_ATTACHMENTS = (
    "(SELECT coalesce(json_agg(json_build_array(x.id, x.name, x.size, x.type) "
    "ORDER BY x.id)::text, '[]') FROM attachments x WHERE x.message_id = m.id)"
)
# Lists of keys or ids are sent as one array parameter in slices of this many.
BATCH = 1000


def affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 3`` or ``UPDATE 1``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


async def claim_attachments(
    conn: asyncpg.Connection, tx: PgTx, new: NewMessage, conversation_id: str
) -> tuple[AttachmentRef, ...]:
    """Check that ``new`` may carry its attachments, and link them when it is written.

    Each must be one this author uploaded, not sent with another message (here, earlier
    in this transaction, or by another node meanwhile), and uploaded to this conversation
    or to none yet (a visitor's first message). Someone else's, or one that does not
    exist, is ``not_found``, so ids cannot be probed.

    The link itself is a ``before_commit`` step registered here: the caller must have
    registered the step that inserts the message rows first (or inserted them already),
    since ``attachments.message_id`` refers to them.
    """
    ids = new.attachments
    if len(set(ids)) != len(ids):
        raise BadRequest("an attachment is listed twice")
    claimed: set[str] = tx.state.setdefault("attachments_claimed", set())
    # Locked in id order until the commit: a message on another node claiming one of
    # them waits, then reads it with its message_id set.
    rows = {
        row[0]: row
        for row in await conn.fetch(
            "SELECT id, conversation_id, message_id, uploader_role, uploader_id, name, size, "
            "type FROM attachments WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
            list(ids),
        )
    }
    refs = []
    for attachment_id in ids:
        row = rows.get(attachment_id)
        if row is None or (row[3], row[4]) != (new.author_role, new.author_id):
            raise NotFound(f"no such attachment: {attachment_id}")
        if row[2] is not None or attachment_id in claimed:
            raise Conflict(f"attachment {attachment_id} was sent with another message")
        if row[1] is not None and row[1] != conversation_id:
            raise BadRequest(f"attachment {attachment_id} was uploaded to another conversation")
        refs.append(AttachmentRef(id=row[0], name=row[5], size=row[6], type=row[7]))
    claimed.update(ids)
    links: list[tuple[str, str, str]] = tx.state.setdefault("attachment_links", [])
    links += [(new.message_id, conversation_id, attachment_id) for attachment_id in ids]
    tx.before_commit("attachments", _link)
    return tuple(sorted(refs, key=lambda r: r.id))


async def _link(conn: asyncpg.Connection, tx: PgTx) -> None:
    await conn.executemany(
        "UPDATE attachments SET message_id = $1, conversation_id = $2 WHERE id = $3",
        tx.state["attachment_links"],
    )


def _attachment(row: Any) -> Attachment:
    return Attachment(*row)


async def export_attachment_rows(
    conn: asyncpg.Connection, conversation_ids: tuple[str, ...], visitor_ids: tuple[str, ...]
) -> list[dict[str, Any]]:
    """A subject's attachments for the export: those in their conversations, and those
    their visitors uploaded that were never sent."""
    rows = await conn.fetch(
        "SELECT id, conversation_id, message_id, uploader_role, uploader_id, name, size, type, "
        "sha256, created_at FROM attachments WHERE conversation_id = ANY($1::text[]) "
        "OR (message_id IS NULL AND uploader_role = 'visitor' AND uploader_id = ANY($2::text[])) "
        "ORDER BY created_at, id",
        list(conversation_ids),
        list(visitor_ids),
    )
    return [dict(row.items()) for row in rows]


async def erase_unsent_attachments(conn: asyncpg.Connection, visitor_ids: tuple[str, ...]) -> int:
    """Inside an erasure: the person's uploads that no conversation holds."""
    return affected(
        await conn.execute(
            "DELETE FROM attachments WHERE uploader_role = 'visitor' "
            "AND uploader_id = ANY($1::text[])",
            list(visitor_ids),
        )
    )


class PgAttachments:
    """Attachment operations of ``PostgresStore``: it provides ``writer`` and ``_rows``."""

    writer: PgWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def add_attachment(self, attachment: Attachment, *, max_unsent: int) -> None:
        """Record an uploaded file. ``NotFound`` when its conversation is gone (erased while
        it was uploaded); ``RateLimited`` when the uploader has ``max_unsent`` files that
        no message carries yet (counted under a lock per uploader, so uploads through
        several nodes at once cannot pass it together)."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            cid = attachment.conversation_id
            if (
                cid is not None
                # Kept from being deleted until the commit: the insert cannot then fail.
                and await conn.fetchval(
                    "SELECT 1 FROM conversations WHERE id = $1 FOR KEY SHARE", cid
                )
                is None
            ):
                raise NotFound("no such conversation")
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                f"attachments:{attachment.uploader_role}:{attachment.uploader_id}",
            )
            waiting = await conn.fetchval(
                "SELECT count(*) FROM attachments WHERE message_id IS NULL "
                "AND uploader_role = $1 AND uploader_id = $2",
                attachment.uploader_role,
                attachment.uploader_id,
            )
            if waiting >= max_unsent:
                raise RateLimited(
                    f"{waiting} attached files are waiting to be sent: send them first"
                )
            await conn.execute(
                "INSERT INTO attachments (id, conversation_id, message_id, uploader_role, "
                "uploader_id, name, size, type, sha256, storage_key, created_at) "
                "VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10)",
                attachment.id,
                cid,
                attachment.uploader_role,
                attachment.uploader_id,
                attachment.name,
                attachment.size,
                attachment.type,
                attachment.sha256,
                attachment.storage_key,
                attachment.created_at,
            )

        await self.writer.run(op)

    async def attachment(self, attachment_id: str) -> Attachment | None:
        """One attachment, with what deciding who may download it needs."""
        rows = await self._rows(
            f"SELECT {ATTACHMENT_COLUMNS}, m.kind, c.visitor_id, c.account_id "
            "FROM attachments a LEFT JOIN messages m ON m.id = a.message_id "
            "LEFT JOIN conversations c ON c.id = a.conversation_id WHERE a.id = $1",
            (attachment_id,),
        )
        return _attachment(rows[0]) if rows else None

    async def attachment_keys(self, attachment_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(attachment_ids), BATCH):
            rows = await self._rows(
                "SELECT id, storage_key FROM attachments WHERE id = ANY($1::text[])",
                (attachment_ids[start : start + BATCH],),
            )
            found.update((r[0], r[1]) for r in rows)
        return found

    async def known_storage_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` a row holds, or the trash still lists."""
        known: set[str] = set()
        for start in range(0, len(keys), BATCH):
            rows = await self._rows(
                "SELECT storage_key FROM attachments WHERE storage_key = ANY($1::text[]) "
                "UNION SELECT storage_key FROM attachment_trash "
                "WHERE storage_key = ANY($1::text[])",
                (keys[start : start + BATCH],),
            )
            known.update(r[0] for r in rows)
        return known

    async def trashed_attachment_keys(self, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT storage_key FROM attachment_trash ORDER BY trashed_at, storage_key LIMIT $1",
            (limit,),
        )
        return [r[0] for r in rows]

    async def forget_trashed_attachments(self, keys: list[str]) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "DELETE FROM attachment_trash WHERE storage_key = ANY($1::text[])", list(keys)
            )

        await self.writer.run(op)

    async def expire_unsent_attachments(self, cutoff: int, limit: int = 500) -> int:
        """Delete uploads older than ``cutoff`` that no message carries; answers how many.
        One being sent with a message right now (locked by its claim) is left alone."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> int:
            return affected(
                await conn.execute(
                    "DELETE FROM attachments WHERE id IN (SELECT id FROM attachments "
                    "WHERE message_id IS NULL AND created_at < $1 ORDER BY created_at, id "
                    "LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    cutoff,
                    limit,
                )
            )

        return await self.writer.run(op)
