"""The tamper-evident audit log (P14): each entry carries the hash of the one before.

An entry's hash covers its own fields and the previous entry's hash, so
changing any stored field, removing an entry from the middle, or reordering
entries breaks the chain at that point. Retention may remove the oldest
entries; it then records the last removed entry's seq and hash as the anchor,
so that removing more from the start is detected too.

Details never carry personal data (no names, emails or message text): they
name what happened by ids and counts, since the log outlives erasures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from chatserver.store.models import AuditEntry

GENESIS = "0" * 64

# What a compliance officer can find in the log, one name per kind of act.
ACTIONS = (
    "subject.search",
    "subject.export",
    "subject.erasure",
    "subject.legal_hold",
    "conversation.legal_hold",
    "rectification.request",
    "rectification.approve",
    "rectification.reject",
    "rectification.list",
    "retention.run",
    "policy.publish",
    "visitor.view",
    "webhook.create",
    "webhook.change",
    "webhook.delete",
)


def canonical(details: Mapping[str, Any]) -> str:
    """The one text form of ``details`` that is stored and hashed."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    prev_hash: str,
    *,
    entry_id: str,
    at: int,
    actor_role: str | None,
    actor_id: str | None,
    action: str,
    subject_id: str | None,
    details: str,
) -> str:
    # A JSON array, not a joined string: no field can bleed into the next.
    text = json.dumps(
        [prev_hash, entry_id, at, actor_role, actor_id, action, subject_id, details],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    return chain_hash(
        entry.prev_hash,
        entry_id=entry.id,
        at=entry.at,
        actor_role=entry.actor_role,
        actor_id=entry.actor_id,
        action=entry.action,
        subject_id=entry.subject_id,
        details=entry.details,
    )


class ChainReport(msgspec.Struct, frozen=True):
    ok: bool
    entries: int
    # The first entry (by seq) where the chain breaks, and why.
    broken_at: int | None = None
    problem: str | None = None


def verify_chain(entries: Iterable[AuditEntry], anchor: tuple[int, str] | None) -> ChainReport:
    """Walk the log in seq order from the anchor (or the start) and check every link."""
    expected_prev = anchor[1] if anchor else GENESIS
    last_seq = anchor[0] if anchor else 0
    count = 0
    for entry in entries:
        count += 1
        if entry.prev_hash != expected_prev:
            return ChainReport(
                ok=False,
                entries=count,
                broken_at=entry.seq,
                problem="an entry before this one was changed or removed",
            )
        if hash_of(entry) != entry.hash:
            return ChainReport(
                ok=False, entries=count, broken_at=entry.seq, problem="this entry was changed"
            )
        if entry.seq <= last_seq:
            return ChainReport(
                ok=False, entries=count, broken_at=entry.seq, problem="entries out of order"
            )
        expected_prev, last_seq = entry.hash, entry.seq
    return ChainReport(ok=True, entries=count)
