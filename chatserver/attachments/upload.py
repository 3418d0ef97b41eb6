"""One file received from a ``multipart/form-data`` body while it streams in.

The body is fed chunk by chunk to python-multipart's push parser; the part named
``file`` goes straight to the storage, so memory holds one chunk at a time however big
the file. The size limit is enforced as the bytes arrive, and the type is decided from
the first bytes (``sniff``) before anything is written: a refused file is refused
after its first kilobyte, not after all of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from chatserver.attachments.names import clean_name
from chatserver.attachments.sniff import SNIFF_BYTES, TextGuard, refuse, sniff
from chatserver.attachments.storage import Storage, StorageWriter
from chatserver.errors import BadRequest, TooLarge

FIELD = "file"
# Room for the multipart boundaries and part headers (and any small fields) around the file.
OVERHEAD = 64 * 1024
MAX_PARTS = 16


class Received(msgspec.Struct, frozen=True):
    key: str
    name: str
    size: int
    type: str
    sha256: str


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or ``BadRequest`` for any other kind of body."""
    kind, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise BadRequest(
            "send the file as multipart/form-data, in a field named "
            f"{FIELD!r} (Content-Type: multipart/form-data; boundary=...)"
        )
    return boundary


def declared_too_large(content_length: str | None, max_bytes: int) -> bool:
    """Whether the body's declared length already says the file is over the limit."""
    try:
        return content_length is not None and int(content_length) > max_bytes + OVERHEAD
    except ValueError:
        raise BadRequest("Content-Length is not a number") from None


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"the file is over the limit of {max_bytes} bytes")


class _Receiver:
    """Turns the parser's callbacks into one stored file; the callbacks only queue events,
    which ``drain`` then handles with the awaits that storage needs."""

    def __init__(self, storage: Storage, max_bytes: int, allowed: frozenset[str]) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.allowed = allowed
        self.events: list[tuple[str, bytes]] = []
        self.parts = 0
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._in_file = False
        self._seen_file = False
        self._filename: bytes | None = None
        self._head = b""
        self._type: str | None = None
        self._guard: TextGuard | None = None
        self._writer: StorageWriter | None = None
        self._key: str | None = None
        self._size = 0
        self._hash = hashlib.sha256()
        self._done = False

    def callbacks(self) -> Any:
        def data(kind: str) -> Any:
            return lambda buf, start, end: self.events.append((kind, bytes(buf[start:end])))

        def mark(kind: str) -> Any:
            return lambda: self.events.append((kind, b""))

        return {
            "on_part_begin": mark("begin"),
            "on_header_field": data("field"),
            "on_header_value": data("value"),
            "on_header_end": mark("header"),
            "on_headers_finished": mark("headers"),
            "on_part_data": data("data"),
            "on_part_end": mark("part_end"),
            "on_end": mark("end"),
        }

    async def drain(self) -> None:
        events, self.events = self.events, []
        for kind, value in events:
            if kind == "begin":
                self.parts += 1
                if self.parts > MAX_PARTS:
                    raise BadRequest("too many parts in the multipart body")
                self._headers, self._field, self._value = {}, b"", b""
            elif kind == "field":
                self._field += value
            elif kind == "value":
                self._value += value
            elif kind == "header":
                self._headers[self._field.strip().lower()] = self._value.strip()
                self._field, self._value = b"", b""
            elif kind == "headers":
                self._start_part()
            elif kind == "data":
                if self._in_file:
                    await self._data(value)
            elif kind == "part_end":
                if self._in_file:
                    await self._file_end()
            elif kind == "end":
                self.ended = True

    def _start_part(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data":
            raise BadRequest("each part needs Content-Disposition: form-data")
        self._in_file = params.get(b"name") == FIELD.encode()
        if self._in_file:
            if self._seen_file:
                raise BadRequest("send one file per request")
            self._seen_file = True
            self._filename = params.get(b"filename")

    async def _data(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_bytes:
            raise too_large(self.max_bytes)
        self._hash.update(data)
        if self._type is None:
            self._head += data
            if len(self._head) >= SNIFF_BYTES:
                await self._decide()
            return
        await self._store(data)

    async def _decide(self) -> None:
        head, self._head = self._head, b""
        self._type = sniff(head[:SNIFF_BYTES])
        refuse(self._type, self.allowed)
        if self._type == "text/plain":
            self._guard = TextGuard()
        self._key = self.storage.new_key()
        self._writer = await self.storage.create(self._key)
        await self._store(head)

    async def _store(self, data: bytes) -> None:
        if self._guard is not None:
            self._guard.feed(data)
        assert self._writer is not None
        await self._writer.write(data)

    async def _file_end(self) -> None:
        self._in_file = False
        if self._size == 0:
            raise BadRequest("the file is empty")
        if self._type is None:
            await self._decide()
        if self._guard is not None:
            self._guard.feed(b"", final=True)
        self._done = True

    async def finish(self) -> Received:
        if not self.ended:
            raise BadRequest("the multipart body ended before its closing boundary")
        if not self._seen_file:
            raise BadRequest(f"no field named {FIELD!r} in the multipart body")
        assert self._done and self._writer is not None and self._key and self._type
        await self._writer.commit()
        return Received(
            key=self._key,
            name=clean_name(self._filename, self._type),
            size=self._size,
            type=self._type,
            sha256=self._hash.hexdigest(),
        )

    async def abort(self) -> None:
        if self._writer is not None:
            await self._writer.discard()


async def receive_file(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: str | None,
    storage: Storage,
    max_bytes: int,
    allowed: frozenset[str],
) -> Received:
    """Stream the ``file`` part of a multipart body into ``storage``; answers what was stored.

    Raises ``BadRequest`` (not multipart, no ``file`` part, two of them, an empty file, a
    broken body), ``TooLarge`` or ``UnsupportedType``; nothing stays in the storage then.
    """
    boundary = boundary_of(content_type)
    if declared_too_large(content_length, max_bytes):
        raise too_large(max_bytes)
    receiver = _Receiver(storage, max_bytes, allowed)
    parser = MultipartParser(boundary, receiver.callbacks())
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > max_bytes + OVERHEAD:
                raise too_large(max_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise BadRequest(f"the multipart body is malformed ({exc})") from None
            await receiver.drain()
        return await receiver.finish()
    except BaseException:
        await receiver.abort()
        raise
