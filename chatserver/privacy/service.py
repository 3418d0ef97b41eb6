"""The privacy operations, one object used alike by the API, the CLI and the sweeper.

Every operation that reads or changes a person's data names who asked for it
(an ``Actor``) and leaves an audit entry written in the same transaction as
the change itself, so there is no change without its entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from chatserver.attachments import lifecycle as attachment_files
from chatserver.attachments.service import storage_for
from chatserver.clock import Clock, format_ts, uuid7
from chatserver.config import Settings
from chatserver.errors import BadRequest, Conflict, Forbidden, NotFound
from chatserver.privacy import export_files, retention
from chatserver.privacy.audit import ChainReport, verify_chain
from chatserver.privacy.export import shape_export
from chatserver.privacy.identity import Identity, IdentityVerifier, pid_hash
from chatserver.privacy.retention import RetentionReport
from chatserver.store.base import Store
from chatserver.store.models import (
    Account,
    AuditEntry,
    AuditRecord,
    IdentityClaims,
    Policy,
    Rectification,
    Subject,
    Tombstone,
    Visitor,
)
from chatserver.store.sqlite_privacy import PROFILE_FIELDS

log = logging.getLogger(__name__)

AUDIT_PAGE = 1000

# This server process, as the holder of singleton jobs' leases (``Store.claim_job``):
# with several nodes on one database, the one holding ``retention`` sweeps.
NODE_ID = uuid.uuid4().hex
RETENTION_JOB = "retention"


class Actor(msgspec.Struct, frozen=True):
    """Who asked: an agent (``agent``/``admin``/``compliance``), the person themself
    (``subject``), an operator at the command line (``operator``) or the server (``system``)."""

    role: str
    id: str | None


SYSTEM = Actor("system", None)

# Called with (visitor ids, conversation ids) after an erasure: close their sockets.
ErasedHook = Callable[[tuple[str, ...], tuple[str, ...]], None]


class Privacy:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        secret_key: bytes,
        verifier: IdentityVerifier | None = None,
        on_erased: ErasedHook | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        node_id: str = NODE_ID,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.settings = settings
        self.clock = clock
        self.secret_key = secret_key
        self.verifier = verifier or IdentityVerifier.from_settings(settings)
        self.on_erased = on_erased
        # Business events (``subject.erased``) for webhooks and the like.
        self.on_event = on_event
        self.exports_dir = Path(settings.data_dir) / "exports"
        # Opaque references of everyone erased, one per line, outside the database:
        # after a backup is restored, ``reapply_erasures`` erases them again.
        self.ledger = Path(settings.data_dir) / "erasure-ledger"
        # Attachments' bytes: in a person's export ZIP, and deleted with their rows.
        self.attachment_storage = storage_for(settings)
        self._sweeping = asyncio.Lock()

    # ------------------------------------------------------------ helpers

    def _audit(
        self, actor: Actor, action: str, subject_id: str | None = None, **details: Any
    ) -> AuditRecord:
        now = self.clock.now_us()
        return AuditRecord(
            id=uuid7(now),
            at=now,
            action=action,
            actor_role=actor.role,
            actor_id=actor.id,
            subject_id=subject_id,
            details=details,
        )

    async def record(
        self, actor: Actor, action: str, subject_id: str | None = None, **details: Any
    ) -> None:
        """Audit a read of personal data that changes nothing (P14)."""
        await self.store.append_audit(self._audit(actor, action, subject_id, **details))

    def subject_ref(self, subject_id: str) -> str:
        """An opaque, keyed reference to an erased subject: idempotency without identity."""
        return hmac.new(self.secret_key, b"tombstone:" + subject_id.encode(), "sha256").hexdigest()

    async def _subject(self, subject_id: str) -> Subject:
        subject = await self.store.subject(subject_id)
        if subject is None:
            raise NotFound("no such subject")
        return subject

    # ------------------------------------------------------------ identity (P2, P3)

    async def verify(self, token: str) -> Identity:
        return await self.verifier.verify(token)

    async def link(self, visitor: Visitor, identity: Identity) -> tuple[Account, int]:
        """Link ``visitor`` to the identity's account, merging their anonymous threads."""
        claims = IdentityClaims(
            sub=identity.sub,
            name=identity.name,
            email=identity.email,
            phone=identity.phone,
            idp=identity.idp,
            pid_hash=identity.pid_hash,
        )
        now = self.clock.now_us()
        result: tuple[Account, int] = await self.store.link_identity(
            visitor.id, claims, new_account_id=uuid7(now), now=now
        )
        return result

    async def account_for(self, identity: Identity) -> Account | None:
        account: Account | None = await self.store.account_by_sub(identity.sub)
        return account

    # ------------------------------------------------------------ subjects

    async def find(
        self,
        actor: Actor,
        *,
        account_id: str | None = None,
        email: str | None = None,
        pid: str | None = None,
    ) -> list[Subject]:
        if account_id is None and email is None and pid is None:
            raise BadRequest("give account_id, email or pid")
        hashed = None
        if pid is not None:
            if not self.settings.pid_pepper:
                raise BadRequest("lookup by national id needs CHATSERVER_PID_PEPPER set")
            hashed = pid_hash(pid, self.settings.pid_pepper)
        # The audit entry names what kind of key was used, never the key itself.
        audit = self._audit(
            actor,
            "subject.search",
            by=[k for k, v in (("account_id", account_id), ("email", email), ("pid", pid)) if v],
        )
        found: list[Subject] = await self.store.find_subjects(
            sub=account_id, email=email, pid_hash=hashed, audit=audit
        )
        return found

    # ------------------------------------------------------------ export (P5)

    async def export(self, actor: Actor, subject_id: str) -> dict[str, Any]:
        rows = await self.store.export_rows(subject_id)
        if rows is None:
            raise NotFound("no such subject")
        document: dict[str, Any] = await asyncio.to_thread(
            shape_export,
            rows,
            include_notes=bool(self.settings.export_notes),
            now=self.clock.now_us(),
        )
        counts = {
            "conversations": len(document["conversations"]),
            "messages": sum(len(c["messages"]) for c in document["conversations"]),
        }
        await self.store.append_audit(self._audit(actor, "subject.export", subject_id, **counts))
        return document

    async def export_zip(self, actor: Actor, subject_id: str, *, locale: str = "en") -> Path:
        """Write the export as a ZIP in the exports folder (kept until retention removes it)."""
        document = await self.export(actor, subject_id)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        now = self.clock.now_us()
        file_id = uuid7(now)
        path = self.exports_dir / f"{file_id}.zip"
        # Registered before it is written, and checked after: an erasure that ran
        # meanwhile removed the row, and then the file must go too.
        await self.store.add_export_file(file_id, subject_id, str(path), now)
        files = await attachment_files.export_files(self.store, self.attachment_storage, document)
        try:
            await asyncio.to_thread(_write_zip_file, path, document, locale, files)
        except FileNotFoundError:
            # An attachment's file went while it was copied: its conversation was erased
            # (then the subject is gone, below) or removed by retention meanwhile.
            if await self.store.export_file_exists(file_id):
                raise Conflict("data changed while the export was written: try again") from None
        if not await self.store.export_file_exists(file_id):
            await asyncio.to_thread(path.unlink, True)
            raise NotFound("no such subject: erased while the export was written")
        return path

    async def export_json(self, actor: Actor, subject_id: str) -> bytes:
        document = await self.export(actor, subject_id)
        return await asyncio.to_thread(export_files.export_json, document)

    async def self_subject(self, token: str) -> str:
        """The subject id of the person an identity token names (self-service)."""
        identity = await self.verify(token)
        account = await self.account_for(identity)
        if account is None:
            raise NotFound("there is no data about you here")
        return account.id

    # ------------------------------------------------------------ erasure (P7)

    async def erase(self, actor: Actor, subject_id: str) -> dict[str, Any]:
        ref = self.subject_ref(subject_id)
        now = self.clock.now_us()
        tombstone, erased, subject, conversation_ids, files = await self.store.erase_subject(
            subject_id,
            tombstone_id=uuid7(now),
            subject_ref=ref,
            ordered_by=f"{actor.role}:{actor.id}" if actor.id else actor.role,
            now=now,
            audit=self._audit(actor, "subject.erasure", subject_id),
        )
        if erased:
            assert subject is not None
            if self.on_erased is not None:
                self.on_erased(subject.visitor_ids, tuple(conversation_ids))
            if self.on_event is not None:
                # The ids connected systems may know the person by, so they can erase too:
                # ``account_id`` is the platform's ``sub`` of a verified person.
                self.on_event(
                    "subject.erased",
                    {
                        "subject_id": subject_id,
                        "tombstone": tombstone,
                        "kind": subject.kind,
                        "account_id": subject.account_id,
                        "visitor_ids": subject.visitor_ids,
                        "conversation_ids": tuple(conversation_ids),
                    },
                )
            await asyncio.to_thread(self._note_in_ledger, ref)
            remove = retention.remove_export_file(self.exports_dir)
            for path in files:
                remove(path)
            await attachment_files.purge(self.store, self.attachment_storage)
            # The deleted rows are zeroed in place; what remains is the search
            # index's old segments and the WAL's older page copies.
            await self.store.purge_search_index()
            await self.store.wipe_free_space()
        return erasure_json(tombstone, already_erased=not erased)

    def _note_in_ledger(self, ref: str) -> None:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ledger, "a", encoding="ascii") as fh:
            fh.write(ref + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def reapply_erasures(self, actor: Actor, ledger: Path | None = None) -> list[str]:
        """Erase again everyone erased before: after restoring a backup taken before their
        erasure, the ledger (kept outside the database) still knows them. Answers the
        subject ids erased now."""
        path = ledger or self.ledger
        refs = set(await self.store.tombstone_refs())
        if path.exists():
            text = await asyncio.to_thread(path.read_text, "ascii")
            refs.update(line.strip() for line in text.splitlines() if line.strip())
        again = [s for s in await self.store.subject_ids() if self.subject_ref(s) in refs]
        for subject_id in again:
            await self.erase(actor, subject_id)
        return again

    # ------------------------------------------------------------ legal hold

    async def legal_hold(self, actor: Actor, subject_id: str, hold: bool) -> None:
        await self.store.set_legal_hold(
            subject_id=subject_id,
            conversation_id=None,
            hold=hold,
            audit=self._audit(actor, "subject.legal_hold", subject_id, hold=hold),
        )

    async def conversation_hold(self, actor: Actor, conversation_id: str, hold: bool) -> None:
        await self.store.set_legal_hold(
            subject_id=None,
            conversation_id=conversation_id,
            hold=hold,
            audit=self._audit(
                actor, "conversation.legal_hold", conversation=conversation_id, hold=hold
            ),
        )

    # ------------------------------------------------------------ rectification (P6)

    async def rectify(
        self, actor: Actor, subject_id: str, field: str, value: str | None
    ) -> Rectification:
        if field not in PROFILE_FIELDS:
            raise BadRequest(f"field must be one of {', '.join(PROFILE_FIELDS)}")
        subject = await self._subject(subject_id)
        if subject.kind != "account":
            raise Conflict("this person was never verified and has no profile to correct")
        now = self.clock.now_us()
        rectification: Rectification = await self.store.request_rectification(
            rectification_id=uuid7(now),
            account_id=subject.id,
            field=field,
            value=value,
            requested_by=f"{actor.role}:{actor.id}" if actor.id else actor.role,
            now=now,
            audit=self._audit(actor, "rectification.request", subject.id),
        )
        return rectification

    async def decide(self, actor: Actor, rectification_id: str, *, approve: bool) -> Rectification:
        pending = await self.store.rectification(rectification_id)
        if pending is None:
            raise NotFound("no such rectification")
        by = f"{actor.role}:{actor.id}" if actor.id else actor.role
        if pending.requested_by == by:
            # Four eyes: a verified field is changed only when a second person agrees.
            raise Forbidden("a rectification is decided by someone other than who asked for it")
        action = "rectification.approve" if approve else "rectification.reject"
        decided: Rectification = await self.store.decide_rectification(
            rectification_id,
            approve=approve,
            by=by,
            now=self.clock.now_us(),
            audit=self._audit(actor, action, pending.account_id),
        )
        return decided

    async def rectifications(self, actor: Actor, subject_id: str) -> list[Rectification]:
        subject = await self._subject(subject_id)
        items: list[Rectification] = await self.store.rectifications(subject.id)
        # Old and new values are the person's data: a read on the record.
        await self.record(actor, "rectification.list", subject.id, count=len(items))
        return items

    # ------------------------------------------------------------ consent (P9)

    async def publish_policy(self, actor: Actor, version: str, url: str | None) -> Policy:
        policy: Policy = await self.store.publish_policy(
            version,
            url,
            self.clock.now_us(),
            audit=self._audit(actor, "policy.publish", version=version),
        )
        return policy

    # ------------------------------------------------------------ retention (P8)

    async def retention(self, actor: Actor, *, dry_run: bool) -> retention.RetentionReport:
        async with self._sweeping:  # one run at a time in this process
            started = self.clock.now_us()
            results = await retention.sweep(
                self.store,
                self.settings,
                now_us=started,
                dry_run=dry_run,
                remove_file=retention.remove_export_file(self.exports_dir),
            )
            if not dry_run:
                # Files of attachments that went with their conversations, uploads never
                # sent, and files a crash left without a row.
                await attachment_files.tidy(self.store, self.attachment_storage, started)
            finished = self.clock.now_us()
            run_id = uuid7(finished)
            counts = {category: c for category, (_, _, c) in results.items()}
            await self.store.record_retention_run(
                run_id=run_id,
                started_at=started,
                finished_at=finished,
                dry_run=dry_run,
                ordered_by=f"{actor.role}:{actor.id}" if actor.id else actor.role,
                counts=counts,
                audit=self._audit(
                    actor, "retention.run", run=run_id, dry_run=dry_run, counts=counts
                ),
            )
            if not dry_run and any(
                v for category in ("anonymous", "resolved") for v in counts[category].values()
            ):
                await self.store.purge_search_index()
            if not dry_run and any(v for c in counts.values() for v in c.values()):
                await self.store.wipe_free_space()
            return retention.RetentionReport(
                id=run_id,
                dry_run=dry_run,
                started_at=format_ts(started),
                finished_at=format_ts(finished),
                categories=[
                    retention.CategoryReport(
                        category=category,
                        keep_seconds=keep,
                        cutoff=format_ts(cutoff) if cutoff is not None else None,
                        counts=c,
                    )
                    for category, (keep, cutoff, c) in results.items()
                ],
            )

    async def sweeper(self) -> None:
        """The server's background sweeper: a real run every ``retention_interval``, by
        whichever node holds the ``retention`` lease."""
        interval = int(self.settings.retention_interval)
        if interval <= 0:
            return
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention run failed; the next one tries again")
            await asyncio.sleep(interval)

    async def sweep_once(self) -> RetentionReport | None:
        """One of the sweeper's runs, made only if this node holds (or now takes) the
        ``retention`` lease; None when another node does.

        The lease lasts two intervals and the holder renews it at each run, so one node
        sweeps while it lives, and another takes over two intervals after it stops.
        """
        lease_us = 2 * max(int(self.settings.retention_interval), 1) * 1_000_000
        now = self.clock.now_us()
        if not await self.store.claim_job(RETENTION_JOB, self.node_id, now, lease_us):
            return None
        return await self.retention(SYSTEM, dry_run=False)

    # ------------------------------------------------------------ audit (P14)

    async def audit_page(
        self,
        *,
        after_seq: int,
        limit: int,
        subject_id: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        entries: list[AuditEntry] = await self.store.audit_page(
            after_seq=after_seq, limit=limit, subject_id=subject_id, action=action
        )
        return entries

    async def verify_audit(self) -> ChainReport:
        anchor = await self.store.audit_anchor()
        entries: list[AuditEntry] = []
        after = 0
        while True:
            page = await self.store.audit_page(after_seq=after, limit=AUDIT_PAGE)
            entries.extend(page)
            if len(page) < AUDIT_PAGE:
                break
            after = page[-1].seq
        return verify_chain(entries, anchor)


def erasure_json(tombstone: Tombstone, *, already_erased: bool) -> dict[str, Any]:
    return {
        "tombstone_id": tombstone.id,
        "erased_at": format_ts(tombstone.erased_at),
        "already_erased": already_erased,
        "erased": tombstone.counts,
    }


def _write_zip_file(
    path: Path, document: dict[str, Any], locale: str, files: list[tuple[str, Path]]
) -> None:
    tmp = path.with_suffix(".part")
    try:
        with open(tmp, "wb") as out:
            export_files.write_zip(document, out, locale=locale, files=files)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
