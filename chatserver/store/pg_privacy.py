"""The privacy operations of the PostgreSQL store: the counterpart of ``sqlite_privacy``.

Mixed into ``PostgresStore``, which provides ``writer`` (a ``PgWriter``), ``_rows`` and
``_pool`` / ``_connect`` for the reads that need a connection of their own. Every
operation answers exactly what its ``SQLitePrivacy`` namesake answers; the SQL
fragments, row mappers and the retention counts' queries are that module's.

Where SQLite has one writer and so never interleaves two operations, several nodes
write this database at once, and the operations take locks instead:

- the audit chain: ``append_audit`` takes a transaction-level advisory lock before it
  reads the newest hash, so appends from every node form one line, in commit order;
- erasure locks the person's account, visitors and conversations before it reads them
  (a hold, a link or a new thread on another node waits, or is waited for) and takes a
  lock on the subject, so a second erasure of the same person waits and then answers
  the first one's tombstone;
- linking an identity locks the account and the visitor it reads, so two links of one
  ``sub`` make one account, as one after the other would;
- a retention batch locks the conversations it removes.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from chatserver import timeline
from chatserver.errors import ChatError, Conflict, NotFound, Unavailable
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
from chatserver.store.pg_attachments import (
    affected,
    erase_unsent_attachments,
    export_attachment_rows,
)
from chatserver.store.pg_messages import append_event
from chatserver.store.pg_writer import PgTx, PgWriter, is_connection_error
from chatserver.store.sqlite_privacy import (
    _EXPIRED_CONVERSATIONS,
    _ORPHAN_VISITORS_FROM,
    _SESSION_NOT_HELD,
    ACCOUNT_COLUMNS,
    AUDIT_COLUMNS,
    CLAIM_JOB_SQL,
    PROFILE_FIELDS,
    RECTIFICATION_COLUMNS,
    PrivacyReads,
    _account,
    _audit_entry,
    _rectification,
    amend,
    retention_count_queries,
)

log = logging.getLogger(__name__)

# A retention transaction stops after about this long (or ``retention_batch`` rows),
# deleting a long conversation's messages this many per statement. Not SQLite's numbers:
# here each statement is a round trip (about 3 ms for 50 rows, 5-8 ms for 500 on the
# bench), and a batch holds up only this node's writer, not other nodes' writes.
BATCH_SECONDS = 0.02
DELETE_STATEMENT_ROWS = 500

# Tables erasure and retention delete personal rows from: VACUUM'd afterwards, since a
# deleted row stays in its page (and a GIN index keeps its words) until then.
ERASED_TABLES = (
    "accounts",
    "attachments",
    "audit_log",
    "consents",
    "conversation_reads",
    "conversations",
    "export_files",
    "mail_confirmations",
    "mail_outbox",
    "messages",
    "ratings",
    "rectifications",
    "visitor_sessions",
    "visitors",
    "webhook_deliveries",
)

# One audit chain per schema: every append, on any node, holds this until its commit.
_AUDIT_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('chatserver:audit:' || current_schema(), 0))"
)
# One erasure of a person at a time (across nodes), keyed by the subject id.
_ERASE_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "'chatserver:erase:' || current_schema() || ':' || $1, 0))"
)

# The subject ``$1`` in one statement (one snapshot): the account of that id with its
# visitors, else the visitor of that id when it belongs to no account.
_SUBJECT = (
    "SELECT a.id, 'account' AS kind, a.sub, a.created_at, a.legal_hold, "
    "ARRAY(SELECT v.id FROM visitors v WHERE v.account_id = a.id "
    "ORDER BY v.created_at, v.id) AS visitor_ids "
    "FROM accounts a WHERE a.id = $1 "
    "UNION ALL "
    "SELECT v.id, 'visitor', NULL, v.created_at, v.legal_hold, ARRAY[v.id] "
    "FROM visitors v WHERE v.id = $1 AND v.account_id IS NULL "
    "ORDER BY kind LIMIT 1"
)

_QMARK = re.compile(r"\?")

Fetch = Callable[[str, tuple[Any, ...]], Awaitable[list[Any]]]


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``sql`` written with SQLite's ``?`` placeholders, with PostgreSQL's ``$1, $2 …``.

    For SQL shared with the SQLite store (``store/reads.py``, the fragments of
    ``sqlite_privacy``), which hold no ``?`` but placeholders (no string literal, no
    JSON operator of that name). SQL written for PostgreSQL passes unchanged.
    """
    if "?" not in sql:
        return sql
    counter = itertools.count(1)
    return _QMARK.sub(lambda _: f"${next(counter)}", sql)


def _on(conn: asyncpg.Connection) -> Fetch:
    async def fetch(sql: str, params: tuple[Any, ...]) -> list[Any]:
        return list(await conn.fetch(sql, *params))

    return fetch


async def _subject(fetch: Fetch, subject_id: str) -> Subject | None:
    rows = await fetch(_SUBJECT, (subject_id,))
    if not rows:
        return None
    row = rows[0]
    return Subject(
        id=row[0],
        kind=row[1],
        account_id=row[2],
        created_at=row[3],
        legal_hold=bool(row[4]),
        visitor_ids=tuple(row[5]),
    )


async def append_audit(conn: asyncpg.Connection, record: AuditRecord) -> AuditEntry:
    """Chain ``record`` to the newest entry; call inside the writer's transaction.

    Several nodes append at once: the advisory lock, held until this transaction
    ends, makes each append read the hash the previous one committed, and the entry's
    ``seq`` (drawn under the lock) follows the previous one's.
    """
    await conn.execute(_AUDIT_LOCK)
    prev = await conn.fetchval("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    if prev is None:
        prev = await conn.fetchval("SELECT hash FROM audit_anchor WHERE id = 1")
    prev = prev or GENESIS
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
    seq = await conn.fetchval(
        "INSERT INTO audit_log (id, at, actor_role, actor_id, action, subject_id, details, "
        "prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
        record.id,
        record.at,
        record.actor_role,
        record.actor_id,
        record.action,
        record.subject_id,
        details,
        prev,
        digest,
    )
    return AuditEntry(
        seq=int(seq),
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


async def _conversation_ids(
    conn: asyncpg.Connection, subject: Subject, *, lock: bool = False
) -> list[tuple[str, int]]:
    """The subject's conversations (id, legal_hold), oldest first; locked until the
    commit with ``lock``, and then as last committed."""
    rows = await conn.fetch(
        "SELECT id, legal_hold FROM conversations WHERE account_id = $1 "
        "OR visitor_id = ANY($2::text[]) ORDER BY created_at, id" + (" FOR UPDATE" if lock else ""),
        subject.id if subject.kind == "account" else None,
        list(subject.visitor_ids),
    )
    return [(r[0], r[1]) for r in rows]


def _dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(row.items()) for row in rows]


async def _export_rows(conn: asyncpg.Connection, subject_id: str) -> dict[str, Any] | None:
    subject = await _subject(_on(conn), subject_id)
    if subject is None:
        return None
    vids = list(subject.visitor_ids)
    account = None
    if subject.kind == "account":
        account = _dicts(
            await conn.fetch(
                f"SELECT {ACCOUNT_COLUMNS}, (pid_hash IS NOT NULL)::integer AS has_pid "
                "FROM accounts WHERE id = $1",
                subject.id,
            )
        )[0]
    conversation_ids = [cid for cid, _ in await _conversation_ids(conn, subject)]
    conversations = _dicts(
        await conn.fetch(
            "SELECT c.id, c.visitor_id, c.status, c.created_at, c.closed_at, c.contact_email, "
            "c.tags, c.legal_hold, c.assignee_id, a.name AS assignee_name "
            "FROM conversations c LEFT JOIN agents a ON a.id = c.assignee_id "
            "WHERE c.id = ANY($1::text[]) ORDER BY c.created_at, c.id",
            conversation_ids,
        )
    )
    messages = _dicts(
        await conn.fetch(
            "SELECT m.id, m.conversation_id, m.seq, m.author_role, m.author_id, "
            "ag.name AS agent_name, m.kind, m.body, m.created_at, m.event "
            "FROM messages m LEFT JOIN agents ag "
            "ON m.author_role = 'agent' AND ag.id = m.author_id "
            "WHERE m.conversation_id = ANY($1::text[]) ORDER BY m.conversation_id, m.seq",
            conversation_ids,
        )
    )
    sessions = _dicts(
        await conn.fetch(
            "SELECT id, visitor_id, ip, ip_truncated_at, user_agent, device_class, browser, "
            "os, page_url, page_title, referrer, locale, started_at, last_seen_at, ended_at "
            "FROM visitor_sessions WHERE visitor_id = ANY($1::text[]) ORDER BY started_at, id",
            vids,
        )
    )
    consents = _dicts(
        await conn.fetch(
            "SELECT c.policy_version, p.url AS policy_url, c.accepted_at, c.visitor_id "
            "FROM consents c LEFT JOIN policy_versions p ON p.version = c.policy_version "
            "WHERE c.visitor_id = ANY($1::text[]) OR (c.account_id IS NOT NULL "
            "AND c.account_id = $2) ORDER BY c.accepted_at, c.id",
            vids,
            subject.id,
        )
    )
    rectifications = _dicts(
        await conn.fetch(
            f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE account_id = $1 "
            "ORDER BY requested_at, id",
            subject.id,
        )
    )
    ratings = _dicts(
        await conn.fetch(
            "SELECT r.conversation_id, r.score, r.comment, r.created_at, r.agent_id, "
            "a.name AS agent_name FROM ratings r LEFT JOIN agents a ON a.id = r.agent_id "
            "WHERE r.conversation_id = ANY($1::text[])",
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
        "attachments": await export_attachment_rows(
            conn, tuple(conversation_ids), subject.visitor_ids
        ),
        "ratings": ratings,
    }


async def _apply_field(
    conn: asyncpg.Connection, account_id: str, field: str, value: str | None, now: int
) -> None:
    if field not in PROFILE_FIELDS:  # the column name comes from this fixed list only
        raise ValueError(field)
    await conn.execute(
        f"UPDATE accounts SET {field} = $1, updated_at = $2 WHERE id = $3", value, now, account_id
    )


class PgPrivacy(PrivacyReads):
    """Privacy operations of ``PostgresStore``: it provides ``writer``, ``_rows``,
    ``_pool`` (reads on a connection of their own) and ``_connect`` (a new connection)."""

    writer: PgWriter
    _pool: asyncpg.Pool | None
    # Tables waiting for the VACUUM that erasure and retention ask for, and its task.
    _vacuum_pending: set[str] | None = None
    _vacuum_task: asyncio.Task[None] | None = None

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def _connect(self) -> asyncpg.Connection:
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

        async def op(conn: asyncpg.Connection, tx: PgTx) -> tuple[Account, int]:
            given = {f: getattr(claims, f) for f in PROFILE_FIELDS if getattr(claims, f)}
            row, inserted = None, False
            for _ in range(2):
                # A link of the same ``sub`` on another node at the same time waits here
                # for that one, then finds its account.
                inserted = (
                    affected(
                        await conn.execute(
                            "INSERT INTO accounts (id, sub, name, email, phone, pid_hash, "
                            "verified_by, verified_at, verified_fields, created_at, updated_at) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $8) "
                            "ON CONFLICT (sub) DO NOTHING",
                            new_account_id,
                            claims.sub,
                            claims.name,
                            claims.email,
                            claims.phone,
                            claims.pid_hash,
                            claims.idp,
                            now,
                            json.dumps(sorted(given)),
                        )
                    )
                    > 0
                )
                row = await conn.fetchrow(
                    f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sub = $1 FOR NO KEY UPDATE",
                    claims.sub,
                )
                if row is not None:
                    break
                # Erased on another node while this waited for its lock: as SQLite would,
                # link after the erasure, to a new account.
            if row is None:
                raise Conflict("this identity is being erased; try again")
            account = _account(row)
            account_id = account.id
            if not inserted:
                # What the identity provider says wins over earlier values of
                # the same fields: it is what was verified just now.
                fields = sorted(set(account.verified_fields) | set(given))
                await conn.execute(
                    "UPDATE accounts SET name = coalesce($1, name), email = coalesce($2, email), "
                    "phone = coalesce($3, phone), pid_hash = coalesce($4, pid_hash), "
                    "verified_by = coalesce($5, verified_by), verified_at = $6, "
                    "verified_fields = $7, updated_at = $6 WHERE id = $8",
                    given.get("name"),
                    given.get("email"),
                    given.get("phone"),
                    claims.pid_hash,
                    claims.idp,
                    now,
                    json.dumps(fields),
                    account_id,
                )
            linked = await conn.fetchrow(
                "SELECT account_id FROM visitors WHERE id = $1 FOR NO KEY UPDATE", visitor_id
            )
            if linked is None:
                raise NotFound("no such visitor")
            if linked[0] not in (None, account_id):
                raise Conflict("this visitor belongs to another account")
            await conn.execute(
                "UPDATE visitors SET account_id = $1 WHERE id = $2", account_id, visitor_id
            )
            merged = sorted(
                row[0]
                for row in await conn.fetch(
                    "UPDATE conversations SET account_id = $1 WHERE visitor_id = $2 "
                    "AND account_id IS NULL RETURNING id",
                    account_id,
                    visitor_id,
                )
            )
            await conn.execute(
                "UPDATE consents SET account_id = $1 WHERE visitor_id = $2 AND account_id IS NULL",
                account_id,
                visitor_id,
            )
            account_row = await conn.fetchrow(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id
            )
            linked_account = _account(account_row)
            line = timeline.verified(linked_account.verified_by, linked_account.name)
            events = [await append_event(conn, tx, cid, line, now) for cid in merged]
            return msgspec.structs.replace(linked_account, events=tuple(events)), len(merged)

        return await self.writer.run(op)

    async def account_conversation_ids(self, account_id: str) -> list[str]:
        rows = await self._rows(
            "SELECT id FROM conversations WHERE account_id = $1 ORDER BY created_at, id",
            (account_id,),
        )
        return [row[0] for row in rows]

    # ------------------------------------------------------------ subjects

    async def subject(self, subject_id: str) -> Subject | None:
        return await _subject(self._rows, subject_id)

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

        async def op(conn: asyncpg.Connection, tx: PgTx) -> list[Subject]:
            ids: list[str] = []
            if sub is not None:
                ids += [
                    r[0] for r in await conn.fetch("SELECT id FROM accounts WHERE sub = $1", sub)
                ]
            if email is not None:
                ids += [
                    r[0]
                    for r in await conn.fetch(
                        "SELECT id FROM accounts WHERE lower(email) = lower($1::text)", email
                    )
                ]
                ids += [
                    r[0]
                    for r in await conn.fetch(
                        "SELECT DISTINCT v.id FROM conversations c "
                        "JOIN visitors v ON v.id = c.visitor_id "
                        "WHERE lower(c.contact_email) = lower($1::text) AND v.account_id IS NULL",
                        email,
                    )
                ]
            if pid_hash is not None:
                ids += [
                    r[0]
                    for r in await conn.fetch(
                        "SELECT id FROM accounts WHERE pid_hash = $1", pid_hash
                    )
                ]
            found = []
            for subject_id in dict.fromkeys(ids):
                subject = await _subject(_on(conn), subject_id)
                if subject is not None:
                    found.append(subject)
            if audit is not None:
                await append_audit(
                    conn,
                    amend(audit, details={**audit.details, "found": [s.id for s in found]}),
                )
            return found

        return await self.writer.run(op)

    async def export_rows(self, subject_id: str) -> dict[str, Any] | None:
        """Everything stored about one subject, read in one REPEATABLE READ, read-only
        transaction on a pooled connection: one consistent snapshot however long it takes,
        and the writer is not held up."""
        pool = self._pool
        if pool is None:
            raise Unavailable("the store is closed")
        try:
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await _export_rows(conn, subject_id)
        except ChatError:
            raise
        except Exception as exc:
            if is_connection_error(exc) or isinstance(exc, asyncpg.PostgresError):
                raise Unavailable(f"store read failed: {exc}") from None
            raise

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

        async def op(
            conn: asyncpg.Connection, tx: PgTx
        ) -> tuple[Tombstone, bool, Subject | None, list[str], list[str]]:
            # A second erasure of this person (another node, a retry) waits for this one,
            # then finds the tombstone. The rows are locked before they are read: a link,
            # a hold or a new thread of the person on another node commits before this
            # reads them, or waits until they are gone.
            await conn.execute(_ERASE_LOCK, subject_id)
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", subject_id)
            await conn.execute(
                "SELECT 1 FROM visitors WHERE id = $1 OR account_id = $1 ORDER BY id FOR UPDATE",
                subject_id,
            )
            subject = await _subject(_on(conn), subject_id)
            if subject is None:
                row = await conn.fetchrow(
                    "SELECT id, erased_at, ordered_by, counts FROM tombstones "
                    "WHERE subject_ref = $1",
                    subject_ref,
                )
                if row is None:
                    raise NotFound("no such subject")
                return (
                    Tombstone(row[0], row[1], row[2], json.loads(row[3])),
                    False,
                    None,
                    [],
                    [],
                )
            vids = list(subject.visitor_ids)
            conversations = await _conversation_ids(conn, subject, lock=True)
            conversation_ids = [cid for cid, _ in conversations]
            if subject.legal_hold or any(held for _, held in conversations):
                # Art. 17(3)(e): data kept for legal claims is not erased until released.
                raise Conflict("this person or a conversation of theirs is on legal hold")
            counts: dict[str, int] = {
                "conversations": len(conversation_ids),
                "messages": await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE conversation_id = ANY($1::text[])",
                    conversation_ids,
                ),
                "sessions": await conn.fetchval(
                    "SELECT count(*) FROM visitor_sessions WHERE visitor_id = ANY($1::text[])",
                    vids,
                ),
                "visitors": len(vids),
            }
            consent_filter = (
                "visitor_id = ANY($1::text[]) OR (account_id IS NOT NULL AND account_id = $2)"
            )
            proof = [
                {"version": r[0], "accepted_at": r[1]}
                for r in await conn.fetch(
                    f"SELECT DISTINCT policy_version, accepted_at FROM consents "
                    f"WHERE {consent_filter} ORDER BY accepted_at, policy_version",
                    vids,
                    subject.id,
                )
            ]
            counts["consents"] = len(proof)
            counts["rectifications"] = await conn.fetchval(
                "SELECT count(*) FROM rectifications WHERE account_id = $1", subject.id
            )
            # Ratings go with their conversations (ON DELETE CASCADE).
            counts["ratings"] = await conn.fetchval(
                "SELECT count(*) FROM ratings WHERE conversation_id = ANY($1::text[])",
                conversation_ids,
            )
            owners = [subject.id, *vids]
            files = [
                r[0]
                for r in await conn.fetch(
                    "SELECT path FROM export_files WHERE subject_id = ANY($1::text[]) "
                    "ORDER BY created_at, id",
                    owners,
                )
            ]
            counts["export_files"] = len(files)
            counts = {k: int(v) for k, v in counts.items()}
            # Messages go with their conversations (ON DELETE CASCADE), their search
            # words with them (a generated column), sessions with visitors.
            await conn.execute(
                "DELETE FROM conversations WHERE id = ANY($1::text[])", conversation_ids
            )
            await conn.execute(f"DELETE FROM consents WHERE {consent_filter}", vids, subject.id)
            # Files in the conversations went with them; these are the uploads no
            # conversation holds yet. The trigger queues all of them for deletion from disk.
            await erase_unsent_attachments(conn, subject.visitor_ids)
            await conn.execute("DELETE FROM visitors WHERE id = ANY($1::text[])", vids)
            await conn.execute(
                "DELETE FROM export_files WHERE subject_id = ANY($1::text[])", owners
            )
            if subject.kind == "account":
                await conn.execute("DELETE FROM accounts WHERE id = $1", subject.id)
                counts["accounts"] = 1
            await conn.execute(
                "INSERT INTO tombstones (id, erased_at, ordered_by, subject_ref, counts, "
                "consent_proof) VALUES ($1, $2, $3, $4, $5, $6)",
                tombstone_id,
                now,
                ordered_by,
                subject_ref,
                json.dumps(counts),
                json.dumps(proof),
            )
            await append_audit(
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
                conversation_ids,
                files,
            )

        return await self.writer.run(op)

    async def purge_search_index(self) -> None:
        """After an erasure or retention: VACUUM the messages, so that deleted rows and
        their search words (the GIN index) leave the pages. In the background, on a
        connection of its own; ``vacuumed`` waits for it."""
        self._vacuum_later(("messages",))

    async def wipe_free_space(self) -> None:
        """After an erasure or retention: VACUUM every table they delete personal rows
        from (in the background, like ``purge_search_index``)."""
        self._vacuum_later(ERASED_TABLES)

    async def vacuumed(self) -> None:
        """Wait until the VACUUM asked for so far is done (tests; before closing)."""
        while self._vacuum_task is not None and not self._vacuum_task.done():
            await asyncio.shield(self._vacuum_task)

    def _vacuum_later(self, tables: tuple[str, ...]) -> None:
        if self._vacuum_pending is None:
            self._vacuum_pending = set()
        self._vacuum_pending.update(tables)
        if self._vacuum_task is None or self._vacuum_task.done():
            self._vacuum_task = asyncio.get_running_loop().create_task(
                self._vacuum_all(), name="postgres vacuum"
            )

    async def _vacuum_all(self) -> None:
        # What is asked for while a VACUUM runs is done right after it, once.
        while self._vacuum_pending:
            tables = sorted(self._vacuum_pending)
            self._vacuum_pending.clear()
            try:
                conn = await self._connect()
                try:
                    # Not in a transaction: VACUUM refuses to run inside one.
                    await conn.execute("VACUUM " + ", ".join(tables))
                finally:
                    await conn.close()
            except Exception:
                log.warning("VACUUM after an erasure or retention failed", exc_info=True)

    # ------------------------------------------------------------ legal hold

    async def set_legal_hold(
        self, *, subject_id: str | None, conversation_id: str | None, hold: bool, audit: AuditRecord
    ) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            record = audit
            if conversation_id is not None:
                owner = await conn.fetchrow(
                    "UPDATE conversations SET legal_hold = $1 WHERE id = $2 "
                    "RETURNING coalesce(account_id, visitor_id)",
                    int(hold),
                    conversation_id,
                )
                if owner is None:
                    raise NotFound("no such conversation")
                # Filed under the person, so their audit trail shows it.
                record = msgspec.structs.replace(audit, subject_id=owner[0])
            else:
                subject = await _subject(_on(conn), subject_id or "")
                if subject is None:
                    raise NotFound("no such subject")
                table = "accounts" if subject.kind == "account" else "visitors"
                await conn.execute(
                    f"UPDATE {table} SET legal_hold = $1 WHERE id = $2", int(hold), subject.id
                )
            await append_audit(conn, record)

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

        async def op(conn: asyncpg.Connection, tx: PgTx) -> Rectification:
            row = await conn.fetchrow(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
                account_id,
            )
            if row is None:
                raise NotFound("no such subject, or it has no profile to correct")
            account = _account(row)
            old = getattr(account, field)
            needs_approval = field in account.verified_fields
            status = "pending" if needs_approval else "applied"
            inserted = await conn.fetchrow(
                f"INSERT INTO rectifications ({RECTIFICATION_COLUMNS}) "
                f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                f"RETURNING {RECTIFICATION_COLUMNS}",
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
            )
            if not needs_approval:
                await _apply_field(conn, account_id, field, value, now)
            await append_audit(
                conn,
                amend(
                    audit,
                    subject_id=account_id,
                    details={"rectification": rectification_id, "field": field, "status": status},
                ),
            )
            return _rectification(inserted)

        return await self.writer.run(op)

    async def decide_rectification(
        self, rectification_id: str, *, approve: bool, by: str, now: int, audit: AuditRecord
    ) -> Rectification:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> Rectification:
            # Locked: a decision on another node at the same time waits, then sees this one.
            row = await conn.fetchrow(
                f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE id = $1 FOR UPDATE",
                rectification_id,
            )
            if row is None:
                raise NotFound("no such rectification")
            current = _rectification(row)
            if current.status != "pending":
                raise Conflict(f"this rectification is {current.status} already")
            status = "applied" if approve else "rejected"
            await conn.execute(
                "UPDATE rectifications SET status = $1, decided_at = $2, decided_by = $3 "
                "WHERE id = $4",
                status,
                now,
                by,
                rectification_id,
            )
            if approve:
                fields = json.loads(
                    await conn.fetchval(
                        "SELECT verified_fields FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
                        current.account_id,
                    )
                )
                await _apply_field(conn, current.account_id, current.field, current.new_value, now)
                # A corrected field no longer claims to be what the eID said.
                await conn.execute(
                    "UPDATE accounts SET verified_fields = $1 WHERE id = $2",
                    json.dumps([f for f in fields if f != current.field]),
                    current.account_id,
                )
            await append_audit(
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
            f"SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE id = $1",
            (rectification_id,),
        )
        return _rectification(rows[0]) if rows else None

    # ------------------------------------------------------------ audit

    async def append_audit(self, record: AuditRecord) -> AuditEntry:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> AuditEntry:
            return await append_audit(conn, record)

        return await self.writer.run(op)

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
            numbered(
                f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} "
                "ORDER BY seq LIMIT ?"
            ),
            (*params, limit),
        )
        return [_audit_entry(r) for r in rows]

    # ------------------------------------------------------------ retention

    async def retention_count(
        self, category: str, cutoff: int, *, earlier: dict[str, int] | None = None
    ) -> dict[str, int]:
        """What a run would remove in ``category`` now: the dry run's answer (the
        queries are ``SQLitePrivacy.retention_count``'s)."""
        counts: dict[str, int] = {}
        for keys, sql, params in retention_count_queries(category, cutoff, earlier or {}):
            row = (await self._rows(numbered(sql), params))[0]
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

        async def op(conn: asyncpg.Connection, tx: PgTx) -> tuple[dict[str, int], list[str]]:
            return await _retention_batch(conn, category, cutoff, now, limit)

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
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "INSERT INTO retention_runs (id, started_at, finished_at, dry_run, ordered_by, "
                "counts) VALUES ($1, $2, $3, $4, $5, $6)",
                run_id,
                started_at,
                finished_at,
                int(dry_run),
                ordered_by,
                json.dumps(counts),
            )
            await append_audit(conn, audit)

        await self.writer.run(op)

    async def retention_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT id, started_at, finished_at, dry_run, ordered_by, counts FROM retention_runs "
            "ORDER BY started_at DESC, id DESC LIMIT $1",
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
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            await conn.execute(
                "INSERT INTO export_files (id, subject_id, path, created_at) "
                "VALUES ($1, $2, $3, $4)",
                file_id,
                subject_id,
                path,
                now,
            )

        await self.writer.run(op)

    # ------------------------------------------------------------ singleton jobs

    async def claim_job(self, name: str, holder: str, now: int, lease_us: int) -> bool:
        """Take or renew the lease on background job ``name`` until ``now + lease_us``.

        True when ``holder`` holds it now: it was free, it had expired, or it was
        ``holder``'s already. Two nodes claiming at once: the upsert of one waits for
        the other's, then finds the lease taken.
        """

        async def op(conn: asyncpg.Connection, tx: PgTx) -> bool:
            status = await conn.execute(numbered(CLAIM_JOB_SQL), name, holder, now + lease_us, now)
            return affected(status) > 0

        return await self.writer.run(op)


async def _retention_batch(
    conn: asyncpg.Connection, category: str, cutoff: int, now: int, limit: int
) -> tuple[dict[str, int], list[str]]:
    if category in _EXPIRED_CONVERSATIONS:
        where = numbered(_EXPIRED_CONVERSATIONS[category])
        # Locked until the commit: a message arriving in one of them on another node
        # waits, and then finds the conversation gone (as it would after this batch).
        ids = [
            r[0] for r in await conn.fetch(f"SELECT c.id {where} LIMIT 20 FOR UPDATE OF c", cutoff)
        ]
        budget, conversations, messages = limit, 0, 0
        started = time.perf_counter()
        for cid in ids:
            # A long conversation goes over several batches: the messages first,
            # oldest first, then the emptied conversation. The batch ends at
            # ``limit`` rows or after BATCH_SECONDS, whichever comes first: live
            # messages of this node wait for this transaction, so it must stay short.
            while budget > 0 and time.perf_counter() - started < BATCH_SECONDS:
                step = min(budget, DELETE_STATEMENT_ROWS)
                removed = affected(
                    await conn.execute(
                        "DELETE FROM messages WHERE n IN (SELECT n FROM messages "
                        "WHERE conversation_id = $1 ORDER BY seq LIMIT $2)",
                        cid,
                        step,
                    )
                )
                messages += removed
                budget -= removed
                if removed < step:
                    break
            else:
                break
            if await conn.fetchval(
                "SELECT 1 FROM messages WHERE conversation_id = $1 LIMIT 1", cid
            ):
                break
            conversations += affected(
                await conn.execute("DELETE FROM conversations WHERE id = $1", cid)
            )
            budget -= 1
            if budget <= 0 or time.perf_counter() - started >= BATCH_SECONDS:
                break
        return {"conversations": conversations, "messages": messages}, []
    if category == "sessions":
        sessions = affected(
            await conn.execute(
                "DELETE FROM visitor_sessions WHERE id IN (SELECT s.id FROM visitor_sessions s "
                "WHERE s.last_seen_at < $1 AND " + _SESSION_NOT_HELD + " LIMIT $2)",
                cutoff,
                limit,
            )
        )
        visitors = 0
        if sessions < limit:
            visitors = affected(
                await conn.execute(
                    numbered(
                        f"DELETE FROM visitors WHERE id IN (SELECT v.id {_ORPHAN_VISITORS_FROM} "
                        "LIMIT ?)"
                    ),
                    cutoff,
                    cutoff,
                    limit - sessions,
                )
            )
        return {"sessions": sessions, "visitors": visitors}, []
    if category == "ip":
        rows = await conn.fetch(
            "SELECT s.id, s.ip FROM visitor_sessions s WHERE s.ip_truncated_at IS NULL "
            "AND s.ip IS NOT NULL AND s.started_at < $1 AND " + _SESSION_NOT_HELD + " LIMIT $2",
            cutoff,
            limit,
        )
        await conn.executemany(
            "UPDATE visitor_sessions SET ip = $1, ip_truncated_at = $2 WHERE id = $3",
            [(truncate_ip(r[1]), now, r[0]) for r in rows],
        )
        return {"ip_addresses": len(rows)}, []
    if category == "exports":
        rows = await conn.fetch(
            "DELETE FROM export_files WHERE id IN (SELECT id FROM export_files "
            "WHERE created_at < $1 LIMIT $2) RETURNING path",
            cutoff,
            limit,
        )
        return {"export_files": len(rows)}, [r[0] for r in rows]
    if category == "audit":
        # Under the chain's lock: an append on another node reads the newest entry or
        # the anchor either before this or after it, never between.
        await conn.execute(_AUDIT_LOCK)
        rows = await conn.fetch(
            "SELECT seq, hash FROM audit_log WHERE at < $1 ORDER BY seq LIMIT $2", cutoff, limit
        )
        if rows:
            await conn.execute("DELETE FROM audit_log WHERE seq <= $1", rows[-1][0])
            await conn.execute(
                "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                rows[-1][0],
                rows[-1][1],
            )
        return {"audit_entries": len(rows)}, []
    if category == "webhooks":
        # The delivery log, and deliveries still pending that long (given up).
        removed = affected(
            await conn.execute(
                "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
                "WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                cutoff,
                limit,
            )
        )
        return {"webhook_deliveries": removed}, []
    if category == "invitations":
        removed = affected(
            await conn.execute(
                "DELETE FROM agent_invitations WHERE id IN (SELECT id FROM agent_invitations "
                "WHERE coalesce(used_at, revoked_at, expires_at) < $1 LIMIT $2)",
                cutoff,
                limit,
            )
        )
        return {"invitations": removed}, []
    raise ValueError(f"no retention category {category!r}")
