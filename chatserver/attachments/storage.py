"""Where attachment bytes live: a small interface, and a local directory behind it.

The store keeps each file's row; the storage keeps its bytes under a random key that
says nothing about the file or its owner. Writes stream (no file is ever held whole
in memory) into a temporary name and become visible only on ``commit``, after an
fsync, so a crash never leaves half a file under a real key.

All disk work runs in worker threads: the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024
_KEY = re.compile(r"^[0-9a-f]{32}$")
PART = ".part"


class StorageWriter(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def commit(self) -> None:
        """Make the file durable and visible under its key."""
        ...

    async def discard(self) -> None:
        """Forget what was written (safe to call after ``commit`` or twice)."""
        ...


class Storage(Protocol):
    def new_key(self) -> str: ...
    async def create(self, key: str) -> StorageWriter: ...
    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks; ``FileNotFoundError`` at once if it is not there."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A path on this machine to read the file from (the export ZIP), if there is one."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the file, overwriting its bytes first where the backend can. Idempotent."""
        ...

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Keys of files written more than ``seconds`` ago (finding orphans after a crash);
        also removes temporary files of uploads that never finished."""
        ...


class LocalStorage:
    """Files in ``root/<first two hex digits>/<key>``, readable by this user only."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_key(self) -> str:
        return secrets.token_hex(16)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("not a storage key")
        return self.root / key[:2] / key

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    async def create(self, key: str) -> _LocalWriter:
        path = self.path(key)
        fd = await asyncio.to_thread(_open_new, path.with_name(path.name + PART), self.root)
        return _LocalWriter(fd, path)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.path(key)
        await asyncio.to_thread(path.stat)  # FileNotFoundError now, not half-way through
        return _chunks(path)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(_shred, self.path(key))

    async def keys_older_than(self, seconds: float) -> list[str]:
        return await asyncio.to_thread(self._scan, time.time() - seconds)

    def _scan(self, before: float) -> list[str]:
        found: list[str] = []
        if not self.root.is_dir():
            return found
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                try:
                    old = entry.stat().st_mtime < before
                except FileNotFoundError:
                    continue
                if not old:
                    continue
                if entry.name.endswith(PART):
                    _shred(entry)  # an upload cut off by a crash
                elif _KEY.match(entry.name):
                    found.append(entry.name)
        return found


class _LocalWriter:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self._path = path
        self._part = path.with_name(path.name + PART)
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        # Many small parser slices become one write per CHUNK: few thread hand-offs.
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer and self._fd is not None:
            data, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(_write_all, self._fd, data)

    async def commit(self) -> None:
        await self._flush()
        fd, self._fd = self._fd, None
        assert fd is not None, "committed twice, or after discard"
        await asyncio.to_thread(_finish, fd, self._part, self._path)

    async def discard(self) -> None:
        self._buffer = bytearray()
        fd, self._fd = self._fd, None
        await asyncio.to_thread(_drop, fd, self._part)


def _open_new(part: Path, root: Path) -> int:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    part.parent.mkdir(mode=0o700, exist_ok=True)
    return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _finish(fd: int, part: Path, path: Path) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)
    # The rename itself must survive a power cut too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _drop(fd: int | None, part: Path) -> None:
    if fd is not None:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        part.unlink()


def _shred(path: Path) -> None:
    """Overwrite the file with zeros, then unlink it: on a plain file system the bytes are
    gone from the disk blocks, not only from the directory (P7). Copy-on-write file systems
    and SSD wear levelling may keep old blocks; encrypt the volume where that matters."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        zeros = bytes(min(CHUNK, size))
        done = 0
        while done < size:
            done += os.write(fd, zeros[: size - done])
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    # Each chunk opens, reads and closes the file in one thread hand-off: a response
    # dropped half-way (the client left) never leaves a file open behind it.
    offset = 0
    while chunk := await asyncio.to_thread(_read_at, path, offset):
        offset += len(chunk)
        yield chunk


def _read_at(path: Path, offset: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(CHUNK)
