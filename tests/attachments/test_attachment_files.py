"""The parts of attachments that need no server: deciding a type from bytes, safe names,
the local storage, streaming a multipart body to disk, and the data map's word on them."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatserver.attachments.names import clean_name, content_disposition, zip_name
from chatserver.attachments.sniff import TextGuard, sniff
from chatserver.attachments.storage import LocalStorage
from chatserver.attachments.upload import receive_file
from chatserver.errors import BadRequest, TooLarge, UnsupportedType
from chatserver.privacy.data_map import DATA_MAP
from chatserver.privacy.export import shape_export
from chatserver.privacy.export_files import _safe_name, _unique
from chatserver.store.models import AuditRecord
from chatserver.store.sqlite import SQLiteStore
from tests.web.test_attachments import PDF, png

ALLOWED = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (png(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (PDF, "application/pdf"),
        ("Hei på deg\r\n\tøæå ✓".encode(), "text/plain"),
        (b"\xef\xbb\xbfwith a BOM", "text/plain"),
        (b"a < b and c > d, <3", "text/plain"),
        (b"<!DOCTYPE html><title>x</title>", "text/html"),
        (b"\n\n  <HTML>", "text/html"),
        (b"<script>alert(1)</script>", "text/html"),
        (b"<b>bold</b>", "text/html"),
        (b"<!-- comment -->", "text/html"),
        (b"notes\n<iframe src=x>", "text/html"),
        (b"<svg onload=alert(1)>", "image/svg+xml"),
        (b'<?xml version="1.0"?><svg/>', "image/svg+xml"),
        (b'<?xml version="1.0"?><note/>', "application/xml"),
        (b"\xef\xbb\xbf<svg>", "image/svg+xml"),
        (b"PK\x03\x04zip", "application/octet-stream"),
        (b"\x00\x01\x02", "application/octet-stream"),
        (b"caf\xe9 au lait", "application/octet-stream"),  # Latin-1, not UTF-8
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "application/octet-stream"),
    ],
)
def test_the_type_comes_from_the_bytes(head: bytes, expected: str) -> None:
    """Magic numbers name images and PDFs; UTF-8 without controls is text unless it is
    HTML, SVG or XML by the WHATWG signatures or carries their markup."""
    assert sniff(head) == expected


def test_a_utf8_character_cut_at_the_sniffing_window_is_still_text() -> None:
    """The first kilobyte may end inside a multi-byte character: that is still text."""
    text = ("ø" * 600).encode()
    assert sniff(text[:1023]) == "text/plain"


def test_text_guard_follows_the_whole_file() -> None:
    """Markup split across two chunks, binary after a clean start and a broken UTF-8 end are
    each caught; clean text in many small pieces is not."""
    guard = TextGuard()
    for piece in ("Hei ", "på ", "deg ✓\n" * 50):
        guard.feed(piece.encode())
    guard.feed(b"", final=True)

    split = TextGuard()
    split.feed(b"fine text ... <scr")
    with pytest.raises(UnsupportedType):
        split.feed(b"ipt>alert(1)</script>")
    with pytest.raises(UnsupportedType):
        TextGuard().feed(b"clean\x00then binary")
    cut = TextGuard()
    cut.feed("ø".encode()[:1])
    with pytest.raises(UnsupportedType):
        cut.feed(b"", final=True)


@pytest.mark.parametrize(
    ("raw", "mime", "expected"),
    [
        ("photo.png", "image/png", "photo.png"),
        ("PHOTO.PNG", "image/png", "PHOTO.PNG"),
        ("bilde.jpeg", "image/jpeg", "bilde.jpeg"),
        ("invoice.html", "text/plain", "invoice.html.txt"),
        ("scan", "application/pdf", "scan.pdf"),
        ("C:\\Users\\kari\\Desktop\\kvittering.pdf", "application/pdf", "kvittering.pdf"),
        ("../../etc/passwd", "text/plain", "passwd.txt"),
        ("gpj\u202e.exe", "image/png", "gpj_.exe.png"),
        ("  .hidden. ", "text/plain", "hidden.txt"),
        ("", "image/gif", "file.gif"),
        (None, "image/webp", "file.webp"),
        (b"r\xc3\xb8d.png", "image/png", "rød.png"),
        (b"bad\xff.png", "image/png", "bad\ufffd.png"),
        ("a\tb\nc.txt", "text/plain", "a b c.txt"),
    ],
)
def test_names_are_made_safe(raw: str | bytes | None, mime: str, expected: str) -> None:
    """No path, controls or direction overrides; the extension agrees with the type."""
    assert clean_name(raw, mime) == expected


def test_long_names_keep_their_extension() -> None:
    """A name is at most 200 characters and keeps (or gains) the right extension."""
    name = clean_name("x" * 500 + ".pdf", "application/pdf")
    assert len(name) == 200 and name.endswith(".pdf")
    name = clean_name("y" * 500, "image/png")
    assert len(name) == 200 and name.endswith(".png")


def test_content_disposition_carries_any_name_safely() -> None:
    """An ASCII fallback without quotes or backslashes, and the exact name in UTF-8."""
    header = content_disposition('søk "nå"\\.pdf', inline=False)
    # Letters without an ASCII form drop out of the fallback; the quote and backslash go.
    assert header.startswith('attachment; filename="sk na_.pdf"; ')
    assert "filename*=UTF-8''s%C3%B8k%20%22n%C3%A5%22%5C.pdf" in header
    assert content_disposition("a.png", inline=True).startswith('inline; filename="a.png"')


def test_zip_names_are_what_the_zip_writer_makes_of_them() -> None:
    """The export JSON names each file before the ZIP is written: the writer must not
    change that name (the id keeps it unique)."""
    for name in ("a.png", "con.txt", "x" * 300 + ".pdf", "ø/../..pdf", ".env.txt"):
        member = zip_name("0190b2c4-7a3e-7000-8000-000000000001", name)
        assert _safe_name(member) == member
        assert _unique(member, set()) == member


# ---------------------------------------------------------------- storage and streaming


async def test_local_storage_writes_only_on_commit_and_shreds_on_delete(tmp_path: Path) -> None:
    """A file is visible under its key only after commit, readable back in chunks, private
    to this user, and gone (overwritten first) after delete; discarding leaves nothing."""
    storage = LocalStorage(tmp_path / "attachments")
    key = storage.new_key()
    writer = await storage.create(key)
    await writer.write(b"abc" * 200_000)
    assert not storage.path(key).exists()
    await writer.commit()
    path = storage.path(key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"".join([c async for c in await storage.open(key)]) == b"abc" * 200_000
    await storage.delete(key)
    await storage.delete(key)  # idempotent
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        await storage.open(key)

    other = storage.new_key()
    writer = await storage.create(other)
    await writer.write(b"half")
    await writer.discard()
    assert [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()] == []
    with pytest.raises(ValueError):
        storage.path("../../etc/passwd")


async def _multipart(body: AsyncIterator[bytes], boundary: bytes = b"b") -> AsyncIterator[bytes]:
    yield (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
    )
    async for chunk in body:
        yield chunk
    yield b"\r\n--" + boundary + b"--\r\n"


async def test_a_big_upload_streams_through_without_being_held_in_memory(tmp_path: Path) -> None:
    """Eight MiB arrive in 64 KiB chunks; while they are parsed, sniffed, hashed and written,
    Python's memory never holds more than a small part of them."""
    storage = LocalStorage(tmp_path / "attachments")
    size = 8 * 1024 * 1024
    block = (PDF + b"x" * 65536)[:65536]

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block
            await asyncio.sleep(0)

    tracemalloc.start()
    try:
        received = await receive_file(
            _multipart(body()),
            content_type="multipart/form-data; boundary=b",
            content_length=None,
            storage=storage,
            max_bytes=size,
            allowed=ALLOWED,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.size == size and received.type == "application/pdf"
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    assert storage.path(received.key).stat().st_size == size


async def test_refused_streams_leave_no_file(tmp_path: Path) -> None:
    """A stream that passes the limit half-way, or turns to HTML after its first kilobyte,
    raises and leaves no file, not even a temporary one."""
    storage = LocalStorage(tmp_path / "attachments")

    async def too_much() -> AsyncIterator[bytes]:
        yield PDF
        for _ in range(20):
            yield b"x" * 1000

    with pytest.raises(TooLarge):
        await receive_file(
            _multipart(too_much()),
            content_type="multipart/form-data; boundary=b",
            content_length=None,
            storage=storage,
            max_bytes=10_000,
            allowed=ALLOWED,
        )

    async def turns_html() -> AsyncIterator[bytes]:
        yield b"plain words " * 200
        yield b"<html><script>alert(1)</script>"

    with pytest.raises(UnsupportedType):
        await receive_file(
            _multipart(turns_html()),
            content_type="multipart/form-data; boundary=b",
            content_length=None,
            storage=storage,
            max_bytes=10_000_000,
            allowed=ALLOWED,
        )
    with pytest.raises(BadRequest):
        await receive_file(
            _multipart(turns_html()),
            content_type="multipart/form-data; boundary=b",
            content_length="nine",
            storage=storage,
            max_bytes=10_000_000,
            allowed=ALLOWED,
        )
    assert [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------- the data map's word


async def test_the_data_map_says_what_export_and_erasure_do_with_attachments(
    tmp_path: Path,
) -> None:
    """The export lists every attachment column the map says it does, and an erasure
    leaves none of them, the map's word for each; the trash then names the files to delete."""
    store = SQLiteStore(tmp_path / "chat.db")
    await store.open()

    def seed(conn: object, tx: object) -> None:
        run = conn.execute  # type: ignore[attr-defined]
        run(
            "INSERT INTO visitors (id, token_hash, created_at, last_seen_at) "
            "VALUES ('vis-1', 'th', 1, 1)"
        )
        run(
            "INSERT INTO conversations (id, visitor_id, created_at, updated_at, last_seq) "
            "VALUES ('conv-1', 'vis-1', 1, 1, 1)"
        )
        run(
            "INSERT INTO messages (id, conversation_id, seq, author_role, author_id, kind, body, "
            "created_at) VALUES ('msg-1', 'conv-1', 1, 'visitor', 'vis-1', 'text', '', 2)"
        )
        for aid, cid, mid, key, name in (
            ("att-SENT", "conv-1", "msg-1", "a" * 32, "name-SENT.png"),
            ("att-LOOSE", None, None, "b" * 32, "loose-SENT.png"),
        ):
            run(
                "INSERT INTO attachments (id, conversation_id, message_id, uploader_role, "
                "uploader_id, name, size, type, sha256, storage_key, created_at) "
                "VALUES (?, ?, ?, 'visitor', 'vis-1', ?, 777, 'image/png', ?, ?, 3)",
                (aid, cid, mid, name, "f" * 64, key),
            )

    try:
        await store.writer.run(seed)
        rows = await store.export_rows("vis-1")
        assert rows is not None
        document = json.dumps(shape_export(rows, include_notes=True, now=0))
        for column, text in (
            ("id", "att-SENT"),
            ("name", "name-SENT.png"),
            ("sha256", "f" * 64),
            ("storage_key", "a" * 32),
            ("uploader_id", None),
        ):
            said = DATA_MAP["attachments"][column].export
            if text is not None:
                assert (text in document) == (not said.startswith("not exported")), column
        assert "loose-SENT.png" in document  # the upload never sent is the person's too
        await store.erase_subject(
            "vis-1",
            tombstone_id="t",
            subject_ref="r",
            ordered_by="compliance:x",
            now=9,
            audit=AuditRecord(id="au", at=9, action="subject.erasure", subject_id="vis-1"),
        )
        assert await store.attachment("att-SENT") is None
        assert await store.attachment("att-LOOSE") is None
        assert sorted(await store.trashed_attachment_keys(10)) == ["a" * 32, "b" * 32]
        for column in DATA_MAP["attachments"].values():
            assert column.erasure.startswith("deleted")
    finally:
        await store.close()
