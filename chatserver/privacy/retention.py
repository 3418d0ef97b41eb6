"""Retention (P8): data kept no longer than the operator's rules allow.

One rule per category of data, each a duration in the settings (``off`` keeps
that category). A run removes, per category, what is older than its rule, in
small batches so that live chat keeps its latency; a legal hold on a person or
a conversation keeps their data out of every category. A dry run counts what a
real run would remove and changes nothing. Every run is recorded and audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from chatserver.config import Settings
from chatserver.store.base import Store
from chatserver.store.sqlite_privacy import RETENTION_CATEGORIES

log = logging.getLogger(__name__)

MAX_REST_SECONDS = 0.05

# Which setting rules which category.
RULES = {
    "anonymous": "retention_anonymous",
    "resolved": "retention_resolved",
    "sessions": "retention_sessions",
    "ip": "retention_ip",
    "exports": "retention_exports",
    "audit": "retention_audit",
    "webhooks": "retention_webhook_log",
    "invitations": "retention_invitations",
}
assert tuple(RULES) == RETENTION_CATEGORIES


class CategoryReport(msgspec.Struct, frozen=True):
    category: str
    keep_seconds: int  # 0: kept forever, nothing removed
    cutoff: str | None  # RFC 3339: what is older than this goes
    counts: dict[str, int]


class RetentionReport(msgspec.Struct, frozen=True):
    id: str
    dry_run: bool
    started_at: str
    finished_at: str
    categories: list[CategoryReport]


async def sweep(
    store: Store,
    settings: Settings,
    *,
    now_us: int,
    dry_run: bool,
    remove_file: Callable[[str], None],
) -> dict[str, tuple[int, int | None, dict[str, int]]]:
    """Run every category; answers ``{category: (keep seconds, cutoff µs, counts)}``."""
    results: dict[str, tuple[int, int | None, dict[str, int]]] = {}
    batch = int(settings.retention_batch)
    for category, setting in RULES.items():
        keep = int(getattr(settings, setting))
        if keep <= 0:
            results[category] = (0, None, {})
            continue
        cutoff = now_us - keep * 1_000_000
        if dry_run:
            earlier = {c: r[1] for c, r in results.items() if r[1] is not None}
            counts = await store.retention_count(category, cutoff, earlier=earlier)
        else:
            counts = {}
            while True:
                began = time.perf_counter()
                removed, files = await store.retention_batch(
                    category, cutoff, now=now_us, limit=batch
                )
                took = time.perf_counter() - began
                for path in files:
                    remove_file(path)
                for key, value in removed.items():
                    counts[key] = counts.get(key, 0) + value
                if not any(removed.values()):
                    break
                # Rest as long as the batch took: live writes get the writer at
                # least half of the time, whatever the backlog (bench/README.md).
                await asyncio.sleep(min(took, MAX_REST_SECONDS))
        results[category] = (keep, cutoff, counts)
    return results


def remove_export_file(root: Path) -> Callable[[str], None]:
    """A remover that deletes only files inside ``root`` (the exports folder)."""
    root = root.resolve()

    def remove(path: str) -> None:
        target = Path(path).resolve()
        if target.parent != root:
            log.warning("not removing %s: outside the exports folder", path)
            return
        with contextlib.suppress(FileNotFoundError):
            target.unlink()

    return remove
