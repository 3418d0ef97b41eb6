"""The attachments' part of the SQLite store: rows of uploaded files, linking them to the
message that carries them, and the trash of files whose rows are gone.

Mixed into ``SQLiteStore``. ``claim_attachments`` runs inside the writer's transaction
that stores a message (``_append_message``), so a file is linked to exactly one message,
in the same commit as the message itself. Deleting a conversation or a message drops its
attachment rows by cascade; the ``attachments_trash`` trigger (migration 7) then keeps
their storage keys in ``attachment_trash`` until the files are deleted from disk
(``chatserver.attachments.lifecycle.purge``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from chatserver.errors import BadRequest, Conflict, NotFound, RateLimited
from chatserver.store.models import Attachment, AttachmentRef, NewMessage
from chatserver.store.writer import GroupCommitWriter, Tx

ATTACHMENT_COLUMNS = (
    "a.id, a.conversation_id, a.message_id, a.uploader_role, a.uploader_id, a.name, a.size, "
    "a.type, a.sha256, a.storage_key, a.created_at"
)
# A message's attachments as one JSON value, for the message reads (``MESSAGE_COLUMNS``).
MESSAGE_ATTACHMENTS = (
    "(SELECT json_group_array(json_array(x.id, x.name, x.size, x.type)) "
    "FROM attachments x WHERE x.message_id = m.id)"
)


def refs_from_json(text: str | None) -> tuple[AttachmentRef, ...]:
    if not text or text == "[]":
        return ()
    refs = [AttachmentRef(id=i, name=n, size=s, type=t) for i, n, s, t in json.loads(text)]
    return tuple(sorted(refs, key=lambda r: r.id))


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join("?" * len(values)) + ")" if values else "(NULL)"


def claim_attachments(
    conn: sqlite3.Connection, tx: Tx, new: NewMessage, conversation_id: str
) -> tuple[AttachmentRef, ...]:
    """Check that ``new`` may carry its attachments, and link them when it is written.

    Each must be one this author uploaded, not sent with another message (here or earlier
    in this transaction), and uploaded to this conversation or to none yet (a visitor's
    first message). Someone else's, or one that does not exist, is ``not_found``, so ids
    cannot be probed.
    """
    ids = new.attachments
    if len(set(ids)) != len(ids):
        raise BadRequest("an attachment is listed twice")
    claimed: set[str] = tx.state.setdefault("attachments_claimed", set())
    rows = {
        row[0]: row
        for row in conn.execute(
            "SELECT id, conversation_id, message_id, uploader_role, uploader_id, name, size, "
            f"type FROM attachments WHERE id IN {_in(ids)}",
            ids,
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
    # Registered after the "messages" step of this transaction, so it runs after the
    # message rows it points at are written.
    tx.before_commit("attachments", _link)
    return tuple(sorted(refs, key=lambda r: r.id))


def _link(conn: sqlite3.Connection, tx: Tx) -> None:
    conn.executemany(
        "UPDATE attachments SET message_id = ?, conversation_id = ? WHERE id = ?",
        tx.state["attachment_links"],
    )


def _attachment(row: Any) -> Attachment:
    return Attachment(*row)


def export_attachment_rows(
    conn: sqlite3.Connection, conversation_ids: tuple[str, ...], visitor_ids: tuple[str, ...]
) -> list[dict[str, Any]]:
    """A subject's attachments for the export: those in their conversations, and those
    their visitors uploaded that were never sent."""
    cursor = conn.execute(
        "SELECT id, conversation_id, message_id, uploader_role, uploader_id, name, size, type, "
        f"sha256, created_at FROM attachments WHERE conversation_id IN {_in(conversation_ids)} "
        f"OR (message_id IS NULL AND uploader_role = 'visitor' AND uploader_id IN "
        f"{_in(visitor_ids)}) ORDER BY created_at, id",
        (*conversation_ids, *visitor_ids),
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def erase_unsent_attachments(conn: sqlite3.Connection, visitor_ids: tuple[str, ...]) -> int:
    """Inside an erasure: the person's uploads that no conversation holds."""
    return conn.execute(
        f"DELETE FROM attachments WHERE uploader_role = 'visitor' AND uploader_id IN "
        f"{_in(visitor_ids)}",
        visitor_ids,
    ).rowcount


class SQLiteAttachments:
    """Attachment operations of ``SQLiteStore``: it provides ``writer`` and ``_rows``."""

    writer: GroupCommitWriter

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def add_attachment(self, attachment: Attachment, *, max_unsent: int) -> None:
        """Record an uploaded file. ``NotFound`` when its conversation is gone (erased while
        it was uploaded); ``RateLimited`` when the uploader has ``max_unsent`` files that
        no message carries yet."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            cid = attachment.conversation_id
            if (
                cid is not None
                and conn.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone()
                is None
            ):
                raise NotFound("no such conversation")
            waiting = conn.execute(
                "SELECT count(*) FROM attachments WHERE message_id IS NULL "
                "AND uploader_role = ? AND uploader_id = ?",
                (attachment.uploader_role, attachment.uploader_id),
            ).fetchone()[0]
            if waiting >= max_unsent:
                raise RateLimited(
                    f"{waiting} attached files are waiting to be sent: send them first"
                )
            conn.execute(
                "INSERT INTO attachments (id, conversation_id, message_id, uploader_role, "
                "uploader_id, name, size, type, sha256, storage_key, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    attachment.id,
                    cid,
                    None,
                    attachment.uploader_role,
                    attachment.uploader_id,
                    attachment.name,
                    attachment.size,
                    attachment.type,
                    attachment.sha256,
                    attachment.storage_key,
                    attachment.created_at,
                ),
            )

        await self.writer.run(op)

    async def attachment(self, attachment_id: str) -> Attachment | None:
        """One attachment, with what deciding who may download it needs."""
        rows = await self._rows(
            f"SELECT {ATTACHMENT_COLUMNS}, m.kind, c.visitor_id, c.account_id "
            "FROM attachments a LEFT JOIN messages m ON m.id = a.message_id "
            "LEFT JOIN conversations c ON c.id = a.conversation_id WHERE a.id = ?",
            (attachment_id,),
        )
        return _attachment(rows[0]) if rows else None

    async def attachment_keys(self, attachment_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(attachment_ids), 500):
            batch = tuple(attachment_ids[start : start + 500])
            rows = await self._rows(
                f"SELECT id, storage_key FROM attachments WHERE id IN {_in(batch)}", batch
            )
            found.update((r[0], r[1]) for r in rows)
        return found

    async def known_storage_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` a row holds, or the trash still lists."""
        known: set[str] = set()
        for start in range(0, len(keys), 500):
            batch = tuple(keys[start : start + 500])
            rows = await self._rows(
                f"SELECT storage_key FROM attachments WHERE storage_key IN {_in(batch)} "
                f"UNION SELECT storage_key FROM attachment_trash WHERE storage_key IN "
                f"{_in(batch)}",
                (*batch, *batch),
            )
            known.update(r[0] for r in rows)
        return known

    async def trashed_attachment_keys(self, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT storage_key FROM attachment_trash ORDER BY trashed_at LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]

    async def forget_trashed_attachments(self, keys: list[str]) -> None:
        batch = tuple(keys)
        await self.writer.run(
            lambda conn, tx: conn.execute(
                f"DELETE FROM attachment_trash WHERE storage_key IN {_in(batch)}", batch
            )
        )

    async def expire_unsent_attachments(self, cutoff: int, limit: int = 500) -> int:
        """Delete uploads older than ``cutoff`` that no message carries; answers how many."""

        def op(conn: sqlite3.Connection, tx: Tx) -> int:
            return conn.execute(
                "DELETE FROM attachments WHERE id IN (SELECT id FROM attachments "
                "WHERE message_id IS NULL AND created_at < ? LIMIT ?)",
                (cutoff, limit),
            ).rowcount

        return await self.writer.run(op)
