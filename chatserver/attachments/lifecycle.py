"""Attachments in the privacy operations: deleting files whose rows are gone, expiring
uploads never sent, finding files no row knows, and the export ZIP's ``files/``.

Erasure and retention delete rows (a conversation's attachments go with it by cascade);
the store's trigger keeps each dropped file's key in ``attachment_trash`` in the same
transaction. ``purge`` then deletes those files and forgets their keys, so a crash in
between only delays the deletion until the next ``purge``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from chatserver.attachments.storage import Storage
from chatserver.store.base import Store

log = logging.getLogger(__name__)

PURGE_BATCH = 200
# Uploads no message carried within this time are deleted (a visitor who attached a file
# and then left without sending it).
UNSENT_SECONDS = 24 * 3600
# A file on disk without a row this old is left over from a crash (the row's insert never
# happened): deleted. Younger ones may be an upload whose row is being written now.
ORPHAN_SECONDS = 3600


async def purge(store: Store, storage: Storage) -> int:
    """Delete from disk every file whose row is gone; answers how many."""
    done = 0
    while True:
        keys = await store.trashed_attachment_keys(PURGE_BATCH)
        if not keys:
            return done
        for key in keys:
            await storage.delete(key)
        await store.forget_trashed_attachments(keys)
        done += len(keys)


async def expire_unsent(store: Store, now_us: int, seconds: int = UNSENT_SECONDS) -> int:
    cutoff = now_us - seconds * 1_000_000
    removed = 0
    while count := await store.expire_unsent_attachments(cutoff):
        removed += count
    return removed


async def sweep_orphans(store: Store, storage: Storage, seconds: float = ORPHAN_SECONDS) -> int:
    """Delete files no row (and no trash entry) knows, older than ``seconds``."""
    keys = await storage.keys_older_than(seconds)
    if not keys:
        return 0
    known = await store.known_storage_keys(keys)
    orphans = [k for k in keys if k not in known]
    for key in orphans:
        await storage.delete(key)
    if orphans:
        log.warning("deleted %d attachment files that no row referred to", len(orphans))
    return len(orphans)


async def tidy(store: Store, storage: Storage, now_us: int) -> dict[str, int]:
    """After a retention run: expire unsent uploads, delete trashed and orphaned files."""
    expired = await expire_unsent(store, now_us)
    purged = await purge(store, storage)
    orphans = await sweep_orphans(store, storage)
    return {"unsent": expired, "files": purged, "orphans": orphans}


def _entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        a
        for conversation in document.get("conversations", ())
        for message in conversation.get("messages", ())
        for a in message.get("attachments", ())
    ]
    return found + list(document.get("unsent_attachments", ()))


async def export_files(
    store: Store, storage: Storage, document: dict[str, Any]
) -> list[tuple[str, Path]]:
    """The (name in the ZIP, path on disk) of every file the export document lists."""
    entries = _entries(document)
    keys = await store.attachment_keys([a["id"] for a in entries])
    files: list[tuple[str, Path]] = []
    for entry in entries:
        key = keys.get(entry["id"])
        path = storage.local_path(key) if key else None
        if path is not None:
            files.append((entry["file"].removeprefix("files/"), path))
    return files
