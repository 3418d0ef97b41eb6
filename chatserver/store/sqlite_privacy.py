"""The privacy operations' part of the SQLite store: subjects, export rows, erasure,
legal holds, rectifications, retention batches, the audit chain.

Mixed into ``SQLiteStore``. Writes go through the same group-commit writer as
the relay's, each one a short transaction, so a long erasure or a retention
sweep never holds the write lock for long: retention works in small batches
that the caller loops over, and live messages commit between them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver import timeline
from chatserver.errors import Conflict, NotFound
from chatserver.privacy.audit import GENESIS, canonical, chain_hash
from chatserver.privacy.ip import truncate_ip
from chatserver.store.models import (
    Account,
    AuditEntry,
    AuditRecord,
    IdentityClaims,
    Rectification,
    Subject,
    Tombstone,
)
from chatserver.store.sqlite_attachments import (
    erase_unsent_attachments,
    export_attachment_rows,
)
from chatserver.store.writer import Tx

if TYPE_CHECKING:
    from pathlib import Path

    from chatserver.store.writer import GroupCommitWriter

ACCOUNT_COLUMNS = (
    "id, sub, name, email, phone, verified_by, verified_at, legal_hold, verified_fields, created_at"
)
RECTIFICATION_COLUMNS = (
    "id, account_id, field, old_value, new_value, status, requested_at, requested_by, "
    "decided_at, decided_by"
)
AUDIT_COLUMNS = "seq, id, at, actor_role, actor_id, action, subject_id, details, prev_hash, hash"
PROFILE_FIELDS = ("name", "email", "phone")

# A retention transaction stops after about this long (or ``retention_batch`` rows),
# deleting messages this many at a time: measured on the bench, a 500-row batch held
# live acks for 12-15 ms, most of it in the idempotency and search indexes.
BATCH_SECONDS = 0.004
DELETE_STATEMENT_ROWS = 50

# Retention's categories, in the order a run takes them.
RETENTION_CATEGORIES = (
    "anonymous",
    "resolved",
    "sessions",
    "ip",
    "exports",
    "audit",
    "webhooks",
    "invitations",
)

# A staff invitation that ended (accepted, revoked or expired) before ``?``.
_ENDED = "coalesce(used_at, revoked_at, expires_at) < ?"

# Take a job's lease when it is free, expired or the caller's already; the
# parameters are the name, holder, new end of the lease and now. Both stores run it.
CLAIM_JOB_SQL = (
    "INSERT INTO job_leases (name, holder, until) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
    "WHERE job_leases.holder = excluded.holder OR job_leases.until <= ?"
)

# A conversation is deletable when neither it nor its person is on legal hold.
_NOT_HELD = (
    "c.legal_hold = 0 "
    "AND NOT EXISTS (SELECT 1 FROM accounts h WHERE h.id = c.account_id AND h.legal_hold = 1) "
    "AND NOT EXISTS (SELECT 1 FROM visitors hv WHERE hv.id = c.visitor_id AND hv.legal_hold = 1)"
)
_EXPIRED_CONVERSATIONS = {
    # Never linked to an account, by the conversation or by its visitor.
    "anonymous": (
        "FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id "
        "WHERE c.account_id IS NULL AND v.account_id IS NULL AND c.updated_at < ? AND " + _NOT_HELD
    ),
    "resolved": (
        "FROM conversations c WHERE c.status = 'resolved' AND c.closed_at < ? AND " + _NOT_HELD
    ),
}
# The same rules as conditions on a conversation aliased ``{c}`` (one ``?``: the cutoff),
# for a dry run to leave out what an earlier category of the same run removes.
_EXPIRED_CONDITION = {
    "anonymous": (
        "({c}.account_id IS NULL AND NOT EXISTS (SELECT 1 FROM visitors va "
        "WHERE va.id = {c}.visitor_id AND va.account_id IS NOT NULL) AND {c}.updated_at < ? "
        "AND " + _NOT_HELD.replace("c.", "{c}.") + ")"
    ),
    "resolved": (
        "({c}.status = 'resolved' AND {c}.closed_at < ? AND "
        + _NOT_HELD.replace("c.", "{c}.")
        + ")"
    ),
}
_SESSION_NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM visitors hv LEFT JOIN accounts h ON h.id = hv.account_id "
    "WHERE hv.id = s.visitor_id AND (hv.legal_hold = 1 OR h.legal_hold = 1))"
)


def _account(row: Any) -> Account:
    return Account(
        id=row[0],
        sub=row[1],
        name=row[2],
        email=row[3],
        phone=row[4],
        verified_by=row[5],
        verified_at=row[6],
        legal_hold=bool(row[7]),
        verified_fields=tuple(json.loads(row[8])),
        created_at=row[9],
    )


def _rectification(row: Any) -> Rectification:
    return Rectification(*row)


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(*row)


def amend(audit: AuditRecord, **changes: Any) -> AuditRecord:
    """The caller's audit record with what only the transaction knows (counts, ids)."""
    return msgspec.structs.replace(audit, **changes)


def append_audit(conn: sqlite3.Connection, record: AuditRecord) -> AuditEntry:
    """Chain ``record`` to the newest entry; call inside the writer's transaction.

    The writer is the only one appending, so reading the newest hash and
    inserting after it cannot interleave with another append.
    """
    row = conn.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT hash FROM audit_anchor WHERE id = 1").fetchone()
    prev = row[0] if row else GENESIS
    details = canonical(record.details)
    digest = chain_hash(
        prev,
        entry_id=record.id,
        at=record.at,
        actor_role=record.actor_role,
        actor_id=record.actor_id,
        action=record.action,
        subject_id=record.subject_id,
        details=details,
    )
    cursor = conn.execute(
        "INSERT INTO audit_log (id, at, actor_role, actor_id, action, subject_id, details, "
        "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            record.id,
            record.at,
            record.actor_role,
            record.actor_id,
            record.action,
            record.subject_id,
            details,
            prev,
            digest,
        ),
    )
    return AuditEntry(
        seq=int(cursor.lastrowid or 0),
        id=record.id,
        at=record.at,
        actor_role=record.actor_role,
        actor_id=record.actor_id,
        action=record.action,
        subject_id=record.subject_id,
        details=details,
        prev_hash=prev,
        hash=digest,
    )


def _subject(conn: sqlite3.Connection, subject_id: str) -> Subject | None:
    row = conn.execute(
        "SELECT id, sub, created_at, legal_hold FROM accounts WHERE id = ?", (subject_id,)
    ).fetchone()
    if row is not None:
        visitors = conn.execute(
            "SELECT id FROM visitors WHERE account_id = ? ORDER BY created_at", (subject_id,)
        ).fetchall()
        return Subject(
            id=row[0],
            kind="account",
            account_id=row[1],
            created_at=row[2],
            legal_hold=bool(row[3]),
            visitor_ids=tuple(v[0] for v in visitors),
        )
    row = conn.execute(
        "SELECT id, created_at, legal_hold FROM visitors WHERE id = ? AND account_id IS NULL",
        (subject_id,),
    ).fetchone()
    if row is None:
        return None
    return Subject(
        id=row[0],
        kind="visitor",
        account_id=None,
        created_at=row[1],
        legal_hold=bool(row[2]),
        visitor_ids=(row[0],),
    )


def _in(values: tuple[str, ...]) -> str:
    return "(" + ",".join("?" * len(values)) + ")" if values else "(NULL)"


def _conversation_ids(conn: sqlite3.Connection, subject: Subject) -> list[str]:
    vids = subject.visitor_ids
    if subject.kind == "account":
        sql = f"SELECT id FROM conversations WHERE account_id = ? OR visitor_id IN {_in(vids)}"
        params: tuple[Any, ...] = (subject.id, *vids)
    else:
        sql = f"SELECT id FROM conversations WHERE visitor_id IN {_in(vids)}"
        params = vids
    return [row[0] for row in conn.execute(sql + " ORDER BY created_at, id", params)]


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def export_rows(path: Path, subject_id: str) -> dict[str, Any] | None:
    """Everything stored about one subject, read on a connection of its own.

    Runs in a worker thread (never on the event loop) inside one read
    transaction, so the export is one consistent snapshot however long it
    takes, and the relay's readers and writer are not held up.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")
        subject = _subject(conn, subject_id)
        if subject is None:
            return None
        vids = subject.visitor_ids
        account = None
        if subject.kind == "account":
            account = _dicts(
                conn.execute(
                    f"SELECT {ACCOUNT_COLUMNS}, pid_hash IS NOT NULL AS has_pid "
                    "FROM accounts WHERE id = ?",
                    (subject.id,),
                )
            )[0]
        conversation_ids = tuple(_conversation_ids(conn, subject))
        conversations = _dicts(
            conn.execute(
                "SELECT c.id, c.visitor_id, c.status, c.created_at, c.closed_at, c.contact_email, "
                "c.tags, c.legal_hold, c.assignee_id, a.name AS assignee_name "
                "FROM conversations c LEFT JOIN agents a ON a.id = c.assignee_id "
                f"WHERE c.id IN {_in(conversation_ids)} ORDER BY c.created_at, c.id",
                conversation_ids,
            )
        )
        messages = _dicts(
            conn.execute(
                "SELECT m.id, m.conversation_id, m.seq, m.author_role, m.author_id, "
                "ag.name AS agent_name, m.kind, m.body, m.created_at, m.event "
                "FROM messages m LEFT JOIN agents ag "
                "ON m.author_role = 'agent' AND ag.id = m.author_id "
                f"WHERE m.conversation_id IN {_in(conversation_ids)} "
                "ORDER BY m.conversation_id, m.seq",
                conversation_ids,
            )
        )
        sessions = _dicts(
            conn.execute(
                "SELECT id, visitor_id, ip, ip_truncated_at, user_agent, device_class, browser, "
                "os, page_url, page_title, referrer, locale, started_at, last_seen_at, ended_at "
                f"FROM visitor_sessions WHERE visitor_id IN {_in(vids)} ORDER BY started_at",
                vids,
            )
        )
        consents = _dicts(
            conn.execute(
                "SELECT c.policy_version, p.url AS policy_url, c.accepted_at, c.visitor_id "
                "FROM consents c LEFT JOIN policy_versions p ON p.version = c.policy_version "
                f"WHERE c.visitor_id IN {_in(vids)} OR (c.account_id IS NOT NULL "
                "AND c.account_id = ?) ORDER BY c.accepted_at",
                (*vids, subject.id),
            )
        )
        rectifications = _dicts(
            conn.execute(
                f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE account_id = ? "
                "ORDER BY requested_at, id",
                (subject.id,),
            )
        )
        ratings = _dicts(
            conn.execute(
                "SELECT r.conversation_id, r.score, r.comment, r.created_at, r.agent_id, "
                "a.name AS agent_name FROM ratings r LEFT JOIN agents a ON a.id = r.agent_id "
                f"WHERE r.conversation_id IN {_in(conversation_ids)}",
                conversation_ids,
            )
        )
        return {
            "subject": subject,
            "account": account,
            "conversations": conversations,
            "messages": messages,
            "sessions": sessions,
            "consents": consents,
            "rectifications": rectifications,
            "attachments": export_attachment_rows(conn, conversation_ids, vids),
            "ratings": ratings,
        }
    finally:
        conn.close()


class PrivacyReads:
    """Privacy reads both stores answer with the same SQL (``?`` placeholders; the PostgreSQL
    store numbers them)."""

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def account(self, account_id: str) -> Account | None:
        rows = await self._rows(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
        )
        return _account(rows[0]) if rows else None

    async def account_by_sub(self, sub: str) -> Account | None:
        rows = await self._rows(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sub = ?", (sub,))
        return _account(rows[0]) if rows else None

    async def subject_ids(self) -> list[str]:
        """Every subject in the store: accounts, and visitors never linked to one."""
        rows = await self._rows(
            "SELECT id FROM accounts UNION ALL SELECT id FROM visitors WHERE account_id IS NULL"
        )
        return [row[0] for row in rows]

    async def tombstone_refs(self) -> list[str]:
        rows = await self._rows("SELECT subject_ref FROM tombstones WHERE subject_ref IS NOT NULL")
        return [row[0] for row in rows]

    async def rectifications(self, account_id: str) -> list[Rectification]:
        rows = await self._rows(
            f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE account_id = ? "
            "ORDER BY requested_at, id",
            (account_id,),
        )
        return [_rectification(r) for r in rows]

    async def audit_anchor(self) -> tuple[int, str] | None:
        rows = await self._rows("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        return (rows[0][0], rows[0][1]) if rows else None

    async def export_file_exists(self, file_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM export_files WHERE id = ?", (file_id,)))


class SQLitePrivacy(PrivacyReads):
    """Privacy operations of ``SQLiteStore``: it provides ``writer``, ``path`` and ``_rows``."""

    writer: GroupCommitWriter
    path: Path

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    # ------------------------------------------------------------ identity

    async def link_identity(
        self,
        visitor_id: str,
        claims: IdentityClaims,
        *,
        new_account_id: str,
        now: int,
    ) -> tuple[Account, int]:
        """Record a verified identity and link the visitor to its account.

        Answers the account and how many anonymous conversations of this
        visitor were merged into it (P2). The visitor must not belong to
        another account already; the caller makes a fresh visitor then. Each
        merged conversation gets a `verified` event message (``account.events``).
        """

        def op(conn: sqlite3.Connection, tx: Tx) -> tuple[Account, int]:
            from chatserver.store.sqlite import append_event  # sqlite.py imports this module

            row = conn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sub = ?", (claims.sub,)
            ).fetchone()
            given = {f: getattr(claims, f) for f in PROFILE_FIELDS if getattr(claims, f)}
            if row is None:
                account_id = new_account_id
                conn.execute(
                    "INSERT INTO accounts (id, sub, name, email, phone, pid_hash, verified_by, "
                    "verified_at, verified_fields, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        account_id,
                        claims.sub,
                        claims.name,
                        claims.email,
                        claims.phone,
                        claims.pid_hash,
                        claims.idp,
                        now,
                        json.dumps(sorted(given)),
                        now,
                        now,
                    ),
                )
            else:
                account = _account(row)
                account_id = account.id
                # What the identity provider says wins over earlier values of
                # the same fields: it is what was verified just now.
                fields = sorted(set(account.verified_fields) | set(given))
                conn.execute(
                    "UPDATE accounts SET name = coalesce(?, name), email = coalesce(?, email), "
                    "phone = coalesce(?, phone), pid_hash = coalesce(?, pid_hash), "
                    "verified_by = coalesce(?, verified_by), verified_at = ?, "
                    "verified_fields = ?, updated_at = ? WHERE id = ?",
                    (
                        given.get("name"),
                        given.get("email"),
                        given.get("phone"),
                        claims.pid_hash,
                        claims.idp,
                        now,
                        json.dumps(fields),
                        now,
                        account_id,
                    ),
                )
            linked = conn.execute(
                "SELECT account_id FROM visitors WHERE id = ?", (visitor_id,)
            ).fetchone()
            if linked is None:
                raise NotFound("no such visitor")
            if linked[0] not in (None, account_id):
                raise Conflict("this visitor belongs to another account")
            conn.execute(
                "UPDATE visitors SET account_id = ? WHERE id = ?", (account_id, visitor_id)
            )
            merged = sorted(
                row[0]
                for row in conn.execute(
                    "UPDATE conversations SET account_id = ? WHERE visitor_id = ? "
                    "AND account_id IS NULL RETURNING id",
                    (account_id, visitor_id),
                ).fetchall()
            )
            conn.execute(
                "UPDATE consents SET account_id = ? WHERE visitor_id = ? AND account_id IS NULL",
                (account_id, visitor_id),
            )
            account_row = conn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            linked_account = _account(account_row)
            line = timeline.verified(linked_account.verified_by, linked_account.name)
            events = tuple(append_event(conn, tx, cid, line, now) for cid in merged)
            return msgspec.structs.replace(linked_account, events=events), len(merged)

        return await self.writer.run(op)

    async def account_conversation_ids(self, account_id: str) -> list[str]:
        rows = await self._rows(
            "SELECT id FROM conversations WHERE account_id = ? ORDER BY created_at", (account_id,)
        )
        return [row[0] for row in rows]

    # ------------------------------------------------------------ subjects

    async def subject(self, subject_id: str) -> Subject | None:
        return await self.writer.run_in_thread(lambda conn: _subject(conn, subject_id))

    async def find_subjects(
        self,
        *,
        sub: str | None = None,
        email: str | None = None,
        pid_hash: str | None = None,
        audit: AuditRecord | None = None,
    ) -> list[Subject]:
        """Accounts by platform id, email or keyed national-id hash; with an email, also
        never-verified visitors who left that address with a message."""

        def op(conn: sqlite3.Connection, tx: Tx) -> list[Subject]:
            ids: list[str] = []
            if sub is not None:
                ids += [r[0] for r in conn.execute("SELECT id FROM accounts WHERE sub = ?", (sub,))]
            if email is not None:
                ids += [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM accounts WHERE lower(email) = lower(?)", (email,)
                    )
                ]
                ids += [
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT v.id FROM conversations c "
                        "JOIN visitors v ON v.id = c.visitor_id "
                        "WHERE lower(c.contact_email) = lower(?) AND v.account_id IS NULL",
                        (email,),
                    )
                ]
            if pid_hash is not None:
                ids += [
                    r[0]
                    for r in conn.execute("SELECT id FROM accounts WHERE pid_hash = ?", (pid_hash,))
                ]
            found = []
            for subject_id in dict.fromkeys(ids):
                subject = _subject(conn, subject_id)
                if subject is not None:
                    found.append(subject)
            if audit is not None:
                append_audit(
                    conn,
                    amend(
                        audit,
                        details={**audit.details, "found": [s.id for s in found]},
                    ),
                )
            return found

        return await self.writer.run(op)

    async def export_rows(self, subject_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(export_rows, self.path, subject_id)

    # ------------------------------------------------------------ erasure

    async def erase_subject(
        self,
        subject_id: str,
        *,
        tombstone_id: str,
        subject_ref: str,
        ordered_by: str | None,
        now: int,
        audit: AuditRecord,
    ) -> tuple[Tombstone, bool, Subject | None, list[str], list[str]]:
        """Delete everything about one subject in one transaction, leaving a tombstone.

        Answers the tombstone, whether this call erased anything (False when it
        had been erased before: idempotent), the subject as it was, the ids of
        the conversations removed and the export files to remove from disk.
        """

        def op(
            conn: sqlite3.Connection, tx: Tx
        ) -> tuple[Tombstone, bool, Subject | None, list[str], list[str]]:
            subject = _subject(conn, subject_id)
            if subject is None:
                row = conn.execute(
                    "SELECT id, erased_at, ordered_by, counts FROM tombstones "
                    "WHERE subject_ref = ?",
                    (subject_ref,),
                ).fetchone()
                if row is None:
                    raise NotFound("no such subject")
                return (
                    Tombstone(row[0], row[1], row[2], json.loads(row[3])),
                    False,
                    None,
                    [],
                    [],
                )
            vids = subject.visitor_ids
            conversation_ids = tuple(_conversation_ids(conn, subject))
            held = conn.execute(
                f"SELECT count(*) FROM conversations WHERE legal_hold = 1 AND id IN "
                f"{_in(conversation_ids)}",
                conversation_ids,
            ).fetchone()[0]
            if subject.legal_hold or held:
                # Art. 17(3)(e): data kept for legal claims is not erased until released.
                raise Conflict("this person or a conversation of theirs is on legal hold")
            counts: dict[str, int] = {
                "conversations": len(conversation_ids),
                "messages": conn.execute(
                    f"SELECT count(*) FROM messages WHERE conversation_id IN "
                    f"{_in(conversation_ids)}",
                    conversation_ids,
                ).fetchone()[0],
                "sessions": conn.execute(
                    f"SELECT count(*) FROM visitor_sessions WHERE visitor_id IN {_in(vids)}", vids
                ).fetchone()[0],
                "visitors": len(vids),
            }
            consent_filter = (
                f"visitor_id IN {_in(vids)} OR (account_id IS NOT NULL AND account_id = ?)"
            )
            proof = [
                {"version": r[0], "accepted_at": r[1]}
                for r in conn.execute(
                    f"SELECT DISTINCT policy_version, accepted_at FROM consents "
                    f"WHERE {consent_filter} ORDER BY accepted_at",
                    (*vids, subject.id),
                )
            ]
            counts["consents"] = len(proof)
            counts["rectifications"] = conn.execute(
                "SELECT count(*) FROM rectifications WHERE account_id = ?", (subject.id,)
            ).fetchone()[0]
            # Ratings go with their conversations (ON DELETE CASCADE).
            counts["ratings"] = conn.execute(
                f"SELECT count(*) FROM ratings WHERE conversation_id IN {_in(conversation_ids)}",
                conversation_ids,
            ).fetchone()[0]
            files = [
                r[0]
                for r in conn.execute(
                    f"SELECT path FROM export_files WHERE subject_id IN {_in((subject.id, *vids))}",
                    (subject.id, *vids),
                )
            ]
            counts["export_files"] = len(files)
            # Messages go with their conversations (ON DELETE CASCADE), the
            # search index with its messages (trigger), sessions with visitors.
            conn.execute(
                f"DELETE FROM conversations WHERE id IN {_in(conversation_ids)}", conversation_ids
            )
            conn.execute(f"DELETE FROM consents WHERE {consent_filter}", (*vids, subject.id))
            # Files in the conversations went with them; these are the uploads no
            # conversation holds yet. The trigger queues all of them for deletion from disk.
            erase_unsent_attachments(conn, vids)
            conn.execute(f"DELETE FROM visitors WHERE id IN {_in(vids)}", vids)
            conn.execute(
                f"DELETE FROM export_files WHERE subject_id IN {_in((subject.id, *vids))}",
                (subject.id, *vids),
            )
            if subject.kind == "account":
                conn.execute("DELETE FROM accounts WHERE id = ?", (subject.id,))
                counts["accounts"] = 1
            conn.execute(
                "INSERT INTO tombstones (id, erased_at, ordered_by, subject_ref, counts, "
                "consent_proof) VALUES (?,?,?,?,?,?)",
                (tombstone_id, now, ordered_by, subject_ref, json.dumps(counts), json.dumps(proof)),
            )
            append_audit(
                conn,
                amend(
                    audit,
                    details={**audit.details, "tombstone": tombstone_id, "counts": counts},
                ),
            )
            return (
                Tombstone(tombstone_id, now, ordered_by, counts),
                True,
                subject,
                list(conversation_ids),
                files,
            )

        return await self.writer.run(op)

    async def wipe_free_space(self) -> None:
        """After an erasure: move the WAL into the database and empty it.

        Deleted rows are zeroed in the pages (``secure_delete``), but the WAL
        still holds earlier copies of those pages until it is checkpointed and
        truncated.
        """
        await self.writer.run_in_thread(
            lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        )

    # ------------------------------------------------------------ legal hold

    async def set_legal_hold(
        self, *, subject_id: str | None, conversation_id: str | None, hold: bool, audit: AuditRecord
    ) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            record = audit
            if conversation_id is not None:
                owner = conn.execute(
                    "SELECT coalesce(account_id, visitor_id) FROM conversations WHERE id = ?",
                    (conversation_id,),
                ).fetchone()
                if owner is None:
                    raise NotFound("no such conversation")
                conn.execute(
                    "UPDATE conversations SET legal_hold = ? WHERE id = ?",
                    (int(hold), conversation_id),
                )
                # Filed under the person, so their audit trail shows it.
                record = msgspec.structs.replace(audit, subject_id=owner[0])
            else:
                subject = _subject(conn, subject_id or "")
                if subject is None:
                    raise NotFound("no such subject")
                table = "accounts" if subject.kind == "account" else "visitors"
                conn.execute(
                    f"UPDATE {table} SET legal_hold = ? WHERE id = ?", (int(hold), subject.id)
                )
            append_audit(conn, record)

        await self.writer.run(op)

    # ------------------------------------------------------------ rectification

    async def request_rectification(
        self,
        *,
        rectification_id: str,
        account_id: str,
        field: str,
        value: str | None,
        requested_by: str | None,
        now: int,
        audit: AuditRecord,
    ) -> Rectification:
        """File a correction; it applies at once unless the field came from a verified identity."""

        def op(conn: sqlite3.Connection, tx: Tx) -> Rectification:
            row = conn.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such subject, or it has no profile to correct")
            account = _account(row)
            old = getattr(account, field)
            needs_approval = field in account.verified_fields
            status = "pending" if needs_approval else "applied"
            conn.execute(
                f"INSERT INTO rectifications ({RECTIFICATION_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    rectification_id,
                    account_id,
                    field,
                    old,
                    value,
                    status,
                    now,
                    requested_by,
                    None if needs_approval else now,
                    None if needs_approval else requested_by,
                ),
            )
            if not needs_approval:
                _apply_field(conn, account_id, field, value, now)
            append_audit(
                conn,
                amend(
                    audit,
                    subject_id=account_id,
                    details={"rectification": rectification_id, "field": field, "status": status},
                ),
            )
            return _rectification(
                conn.execute(
                    f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE id = ?",
                    (rectification_id,),
                ).fetchone()
            )

        return await self.writer.run(op)

    async def decide_rectification(
        self, rectification_id: str, *, approve: bool, by: str, now: int, audit: AuditRecord
    ) -> Rectification:
        def op(conn: sqlite3.Connection, tx: Tx) -> Rectification:
            row = conn.execute(
                f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE id = ?",
                (rectification_id,),
            ).fetchone()
            if row is None:
                raise NotFound("no such rectification")
            current = _rectification(row)
            if current.status != "pending":
                raise Conflict(f"this rectification is {current.status} already")
            status = "applied" if approve else "rejected"
            conn.execute(
                "UPDATE rectifications SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
                (status, now, by, rectification_id),
            )
            if approve:
                _apply_field(conn, current.account_id, current.field, current.new_value, now)
                # A corrected field no longer claims to be what the eID said.
                fields = json.loads(
                    conn.execute(
                        "SELECT verified_fields FROM accounts WHERE id = ?", (current.account_id,)
                    ).fetchone()[0]
                )
                conn.execute(
                    "UPDATE accounts SET verified_fields = ? WHERE id = ?",
                    (json.dumps([f for f in fields if f != current.field]), current.account_id),
                )
            append_audit(
                conn,
                amend(
                    audit,
                    subject_id=current.account_id,
                    details={"rectification": rectification_id, "field": current.field},
                ),
            )
            return msgspec.structs.replace(current, status=status, decided_at=now, decided_by=by)

        return await self.writer.run(op)

    async def rectification(self, rectification_id: str) -> Rectification | None:
        rows = await self._rows(
            f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE id = ?", (rectification_id,)
        )
        return _rectification(rows[0]) if rows else None

    # ------------------------------------------------------------ audit

    async def append_audit(self, record: AuditRecord) -> AuditEntry:
        return await self.writer.run(lambda conn, tx: append_audit(conn, record))

    async def audit_page(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        subject_id: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        where, params = ["seq > ?"], [after_seq]
        if subject_id is not None:
            where.append("subject_id = ?")
            params.append(subject_id)  # type: ignore[arg-type]
        if action is not None:
            where.append("action = ?")
            params.append(action)  # type: ignore[arg-type]
        rows = await self._rows(
            f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} "
            "ORDER BY seq LIMIT ?",
            (*params, limit),
        )
        return [_audit_entry(r) for r in rows]

    # ------------------------------------------------------------ retention

    async def retention_count(
        self, category: str, cutoff: int, *, earlier: dict[str, int] | None = None
    ) -> dict[str, int]:
        """What a run would remove in ``category`` now: the dry run's answer.

        ``earlier`` holds the cutoffs of the categories a real run takes before
        this one: what they remove is not counted again here, and what their
        removal frees (a visitor left with nothing) is.
        """
        counts: dict[str, int] = {}
        for keys, sql, params in retention_count_queries(category, cutoff, earlier or {}):
            row = (await self._rows(sql, params))[0]
            counts.update((key, int(value)) for key, value in zip(keys, row, strict=True))
        return counts

    async def retention_batch(
        self, category: str, cutoff: int, *, now: int, limit: int
    ) -> tuple[dict[str, int], list[str]]:
        """Remove at most about ``limit`` rows of ``category`` older than ``cutoff``.

        Answers the counts removed (all zero when nothing is left to do) and, for
        export files, the paths to delete from disk. One short transaction: the
        caller loops, and live writes commit between batches.
        """

        def op(conn: sqlite3.Connection, tx: Tx) -> tuple[dict[str, int], list[str]]:
            return _retention_batch(conn, category, cutoff, now, limit)

        return await self.writer.run(op)

    async def record_retention_run(
        self,
        *,
        run_id: str,
        started_at: int,
        finished_at: int,
        dry_run: bool,
        ordered_by: str | None,
        counts: dict[str, dict[str, int]],
        audit: AuditRecord,
    ) -> None:
        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            conn.execute(
                "INSERT INTO retention_runs (id, started_at, finished_at, dry_run, ordered_by, "
                "counts) VALUES (?,?,?,?,?,?)",
                (run_id, started_at, finished_at, int(dry_run), ordered_by, json.dumps(counts)),
            )
            append_audit(conn, audit)

        await self.writer.run(op)

    async def retention_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT id, started_at, finished_at, dry_run, ordered_by, counts FROM retention_runs "
            "ORDER BY started_at DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": r[0],
                "started_at": r[1],
                "finished_at": r[2],
                "dry_run": bool(r[3]),
                "ordered_by": r[4],
                "counts": json.loads(r[5]),
            }
            for r in rows
        ]

    # ------------------------------------------------------------ export files

    async def add_export_file(self, file_id: str, subject_id: str, path: str, now: int) -> None:
        await self.writer.run(
            lambda conn, tx: conn.execute(
                "INSERT INTO export_files (id, subject_id, path, created_at) VALUES (?,?,?,?)",
                (file_id, subject_id, path, now),
            )
        )

    # ------------------------------------------------------------ singleton jobs

    async def claim_job(self, name: str, holder: str, now: int, lease_us: int) -> bool:
        """Take or renew the lease on background job ``name`` until ``now + lease_us``.

        True when ``holder`` holds it now: it was free, it had expired, or it was
        ``holder``'s already. Nodes sharing the database call this before each
        run of a sweep, so one of them runs it at a time.
        """

        def op(conn: sqlite3.Connection, tx: Tx) -> bool:
            return conn.execute(CLAIM_JOB_SQL, (name, holder, now + lease_us, now)).rowcount > 0

        return await self.writer.run(op)


_ORPHAN_VISITORS_FROM = (
    "FROM visitors v WHERE v.account_id IS NULL AND v.legal_hold = 0 AND v.last_seen_at < ? "
    "AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = v.id) "
    "AND NOT EXISTS (SELECT 1 FROM visitor_sessions s WHERE s.visitor_id = v.id "
    "AND s.last_seen_at >= ?)"
)


CountQuery = tuple[tuple[str, ...], str, tuple[Any, ...]]


def retention_count_queries(
    category: str, cutoff: int, earlier: dict[str, int]
) -> list[CountQuery]:
    """The queries ``retention_count`` runs, shared by both stores: each answers one row,
    whose values are the counts named by its keys. Placeholders are ``?``."""
    if category in _EXPIRED_CONVERSATIONS:
        where = _EXPIRED_CONVERSATIONS[category]
        params: list[int] = [cutoff]
        if category == "resolved" and "anonymous" in earlier:
            where += " AND NOT " + _EXPIRED_CONDITION["anonymous"].format(c="c")
            params.append(earlier["anonymous"])
        return [
            (
                ("conversations", "messages"),
                "SELECT count(*), CAST(coalesce(sum((SELECT count(*) FROM messages m "
                f"WHERE m.conversation_id = c.id)), 0) AS BIGINT) {where}",
                tuple(params),
            )
        ]
    if category == "sessions":
        before = [c for c in ("anonymous", "resolved") if c in earlier]
        gone = [_EXPIRED_CONDITION[c].format(c="c") for c in before]
        orphans = _ORPHAN_VISITORS_FROM
        if gone:
            # Conversations an earlier category removes do not keep their visitor.
            orphans = orphans.replace(
                "WHERE c.visitor_id = v.id)",
                f"WHERE c.visitor_id = v.id AND NOT ({' OR '.join(gone)}))",
            )
        return [
            (
                ("sessions",),
                "SELECT count(*) FROM visitor_sessions s WHERE s.last_seen_at < ? AND "
                + _SESSION_NOT_HELD,
                (cutoff,),
            ),
            (
                ("visitors",),
                f"SELECT count(*) {orphans}",
                (cutoff, *(earlier[c] for c in before), cutoff),
            ),
        ]
    if category == "ip":
        sql = (
            "SELECT count(*) FROM visitor_sessions s WHERE s.ip_truncated_at IS NULL "
            "AND s.ip IS NOT NULL AND s.started_at < ? AND " + _SESSION_NOT_HELD
        )
        ip_params: tuple[int, ...] = (cutoff,)
        if "sessions" in earlier:
            # Sessions the ``sessions`` rule deletes are not truncated first.
            sql += " AND s.last_seen_at >= ?"
            ip_params = (cutoff, earlier["sessions"])
        return [(("ip_addresses",), sql, ip_params)]
    if category == "exports":
        return [
            (
                ("export_files",),
                "SELECT count(*) FROM export_files WHERE created_at < ?",
                (cutoff,),
            )
        ]
    if category == "audit":
        return [(("audit_entries",), "SELECT count(*) FROM audit_log WHERE at < ?", (cutoff,))]
    if category == "webhooks":
        sql = "SELECT count(*) FROM webhook_deliveries d WHERE d.created_at < ?"
        hook_params: list[int] = [cutoff]
        for earlier_category in ("anonymous", "resolved"):
            if earlier_category in earlier:
                # A pending delivery goes with its conversation, uncounted, before this.
                sql += (
                    " AND NOT EXISTS (SELECT 1 FROM conversations wc WHERE "
                    "wc.id = d.conversation_id AND "
                    + _EXPIRED_CONDITION[earlier_category].format(c="wc")
                    + ")"
                )
                hook_params.append(earlier[earlier_category])
        return [(("webhook_deliveries",), sql, tuple(hook_params))]
    if category == "invitations":
        return [
            (("invitations",), f"SELECT count(*) FROM agent_invitations WHERE {_ENDED}", (cutoff,))
        ]
    raise ValueError(f"no retention category {category!r}")


def _apply_field(
    conn: sqlite3.Connection, account_id: str, field: str, value: str | None, now: int
) -> None:
    if field not in PROFILE_FIELDS:  # the column name comes from this fixed list only
        raise ValueError(field)
    conn.execute(
        f"UPDATE accounts SET {field} = ?, updated_at = ? WHERE id = ?", (value, now, account_id)
    )


def _retention_batch(
    conn: sqlite3.Connection, category: str, cutoff: int, now: int, limit: int
) -> tuple[dict[str, int], list[str]]:
    if category in _EXPIRED_CONVERSATIONS:
        where = _EXPIRED_CONVERSATIONS[category]
        ids = [r[0] for r in conn.execute(f"SELECT c.id {where} LIMIT 20", (cutoff,))]
        budget, conversations, messages = limit, 0, 0
        started = time.perf_counter()
        for cid in ids:
            # A long conversation goes over several batches: the messages first,
            # in small statements, then the emptied conversation. The batch ends
            # at ``limit`` rows or after BATCH_SECONDS, whichever comes first:
            # live messages wait for this transaction, so it must stay short.
            while budget > 0 and time.perf_counter() - started < BATCH_SECONDS:
                removed = conn.execute(
                    "DELETE FROM messages WHERE n IN (SELECT n FROM messages "
                    "WHERE conversation_id = ? ORDER BY seq LIMIT ?)",
                    (cid, min(budget, DELETE_STATEMENT_ROWS)),
                ).rowcount
                messages += removed
                budget -= removed
                if removed < DELETE_STATEMENT_ROWS:
                    break
            else:
                break
            if conn.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? LIMIT 1", (cid,)
            ).fetchone():
                break
            conversations += conn.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount
            budget -= 1
            if budget <= 0 or time.perf_counter() - started >= BATCH_SECONDS:
                break
        return {"conversations": conversations, "messages": messages}, []
    if category == "sessions":
        sessions = conn.execute(
            "DELETE FROM visitor_sessions WHERE id IN (SELECT s.id FROM visitor_sessions s "
            "WHERE s.last_seen_at < ? AND " + _SESSION_NOT_HELD + " LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        visitors = 0
        if sessions < limit:
            visitors = conn.execute(
                f"DELETE FROM visitors WHERE id IN (SELECT v.id {_ORPHAN_VISITORS_FROM} LIMIT ?)",
                (cutoff, cutoff, limit - sessions),
            ).rowcount
        return {"sessions": sessions, "visitors": visitors}, []
    if category == "ip":
        rows = conn.execute(
            "SELECT s.id, s.ip FROM visitor_sessions s WHERE s.ip_truncated_at IS NULL "
            "AND s.ip IS NOT NULL AND s.started_at < ? AND " + _SESSION_NOT_HELD + " LIMIT ?",
            (cutoff, limit),
        ).fetchall()
        conn.executemany(
            "UPDATE visitor_sessions SET ip = ?, ip_truncated_at = ? WHERE id = ?",
            [(truncate_ip(ip), now, sid) for sid, ip in rows],
        )
        return {"ip_addresses": len(rows)}, []
    if category == "exports":
        rows = conn.execute(
            "SELECT id, path FROM export_files WHERE created_at < ? LIMIT ?", (cutoff, limit)
        ).fetchall()
        conn.executemany("DELETE FROM export_files WHERE id = ?", [(r[0],) for r in rows])
        return {"export_files": len(rows)}, [r[1] for r in rows]
    if category == "audit":
        rows = conn.execute(
            "SELECT seq, hash FROM audit_log WHERE at < ? ORDER BY seq LIMIT ?", (cutoff, limit)
        ).fetchall()
        if rows:
            conn.execute("DELETE FROM audit_log WHERE seq <= ?", (rows[-1][0],))
            conn.execute(
                "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (rows[-1][0], rows[-1][1]),
            )
        return {"audit_entries": len(rows)}, []
    if category == "webhooks":
        # The delivery log, and deliveries still pending that long (given up).
        removed = conn.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
            "WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        return {"webhook_deliveries": removed}, []
    if category == "invitations":
        removed = conn.execute(
            "DELETE FROM agent_invitations WHERE id IN (SELECT id FROM agent_invitations "
            f"WHERE {_ENDED} LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        return {"invitations": removed}, []
    raise ValueError(f"no retention category {category!r}")
