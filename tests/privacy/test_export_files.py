"""The files of a data-access export: JSON, the HTML transcript and the ZIP with its manifest."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chatserver.privacy.export_files import LABELS, export_json, transcript_html, write_zip

XSS_BODY = "<script>alert(1)</script><img src=x onerror=alert(2)>"
ESCAPED_BODY = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
T0 = "2026-11-25T10:04:05.123456Z"


def make_export(
    *,
    bodies: list[str] | None = None,
    name: str = "Åse Ødegård",
    tags: list[str] | None = None,
    page_url: str = "https://shop.example/kasse?steg=2",
) -> dict[str, Any]:
    """A complete export of one account, in the shape the export builder produces."""
    bodies = bodies if bodies is not None else ["Hei! Jeg lurer på\nen ting 😊", "Svar kommer"]
    messages = [
        {
            "id": f"m{i}",
            "seq": i + 1,
            "ts": T0,
            "kind": "text",
            "author": {"role": "visitor", "id": "v1", "name": name},
            "body": body,
        }
        for i, body in enumerate(bodies)
    ]
    messages.append(
        {
            "id": "m-note",
            "seq": len(messages) + 1,
            "ts": "2026-11-25T10:05:00.000000Z",
            "kind": "note",
            "author": {"role": "agent", "id": "ag1", "name": "Kari Nordmann"},
            "body": "Kunden virker fornøyd",
        }
    )
    return {
        "format_version": 1,
        "generated_at": "2026-11-26T08:00:00.000001Z",
        "subject": {
            "id": "acc-1",
            "kind": "account",
            "account_id": "acc-1",
            "name": name,
            "email": "ase@example.no",
            "phone": "+47 400 00 000",
            "verification": {"idp": "bankid", "verified_at": T0},
            "legal_hold": False,
            "created_at": T0,
            "visitor_ids": ["v1", "v2"],
        },
        "conversations": [
            {
                "id": "c1",
                "status": "resolved",
                "created_at": T0,
                "closed_at": "2026-11-25T11:00:00.000000Z",
                "contact_email": "ase@example.no",
                "tags": tags if tags is not None else ["faktura", "levering"],
                "assignee": {"id": "ag1", "name": "Kari Nordmann"},
                "messages": messages,
            }
        ],
        "sessions": [
            {
                "id": "s1",
                "visitor_id": "v1",
                "ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                "device_class": "desktop",
                "browser": "Firefox",
                "os": "Linux",
                "page_url": page_url,
                "page_title": "Kasse – Butikken",
                "referrer": "https://search.example/?q=sko",
                "locale": "nb-NO",
                "started_at": T0,
                "last_seen_at": T0,
                "ended_at": None,
            }
        ],
        "consents": [
            {
                "policy_version": "2026-09",
                "policy_url": "https://shop.example/personvern",
                "accepted_at": T0,
            }
        ],
        "rectifications": [
            {
                "id": "r1",
                "field": "name",
                "old_value": "Ase Odegard",
                "new_value": name,
                "status": "applied",
                "requested_at": T0,
                "requested_by": "acc-1",
                "decided_at": T0,
                "decided_by": "ag1",
            }
        ],
    }


def all_null_export() -> dict[str, Any]:
    """Every field the shape allows to be null is null, down to the message authors."""
    return {
        "format_version": 1,
        "generated_at": None,
        "subject": {
            "id": None,
            "kind": None,
            "account_id": None,
            "name": None,
            "email": None,
            "phone": None,
            "verification": None,
            "legal_hold": None,
            "created_at": None,
            "visitor_ids": None,
        },
        "conversations": [
            {
                "id": None,
                "status": None,
                "created_at": None,
                "closed_at": None,
                "contact_email": None,
                "tags": None,
                "assignee": None,
                "messages": None,
            },
            {
                "id": "c2",
                "status": "open",
                "created_at": "not a time",
                "closed_at": None,
                "contact_email": None,
                "tags": [],
                "assignee": {"id": None, "name": None},
                "messages": [
                    {
                        "id": None,
                        "seq": None,
                        "ts": None,
                        "kind": None,
                        "author": None,
                        "body": None,
                    },
                    {
                        "id": "m2",
                        "seq": 2,
                        "ts": T0,
                        "kind": "event",
                        "author": {"role": None, "id": None, "name": None},
                        "body": "",
                    },
                ],
            },
        ],
        "sessions": [
            {
                key: None
                for key in [
                    "id",
                    "visitor_id",
                    "ip",
                    "user_agent",
                    "device_class",
                    "browser",
                    "os",
                    "page_url",
                    "page_title",
                    "referrer",
                    "locale",
                    "started_at",
                    "last_seen_at",
                    "ended_at",
                ]
            }
        ],
        "consents": [{"policy_version": None, "policy_url": None, "accepted_at": None}],
        "rectifications": [
            {
                key: None
                for key in [
                    "id",
                    "field",
                    "old_value",
                    "new_value",
                    "status",
                    "requested_at",
                    "requested_by",
                    "decided_at",
                    "decided_by",
                ]
            }
        ],
    }


def zip_bytes(export: dict[str, Any], **kwargs: Any) -> bytes:
    out = io.BytesIO()
    write_zip(export, out, **kwargs)
    return out.getvalue()


# export.json


def test_export_json_round_trips_non_ascii_text_unescaped() -> None:
    export = make_export()
    data = export_json(export)

    assert json.loads(data.decode("utf-8")) == export
    assert "Åse Ødegård".encode() in data
    assert "😊".encode() in data
    assert b"\\u" not in data
    assert data.startswith(b'{\n  "format_version": 1,\n  "generated_at": ')
    assert list(json.loads(data)) == list(export)
    assert list(json.loads(data)["subject"]) == list(export["subject"])


# The ZIP


def test_zip_holds_exactly_the_expected_members_with_manifest_last() -> None:
    export = make_export()
    out = io.BytesIO()
    digests = write_zip(export, out)

    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["export.json", "transcript.html", "manifest.json"]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        members = {name: archive.read(name) for name in archive.namelist()}

    manifest = json.loads(members["manifest.json"])
    assert manifest["format_version"] == 1
    assert manifest["generated_at"] == export["generated_at"]
    assert [f["name"] for f in manifest["files"]] == ["export.json", "transcript.html"]
    for entry in manifest["files"]:
        data = members[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert digests == {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}


def test_export_json_in_the_zip_equals_the_input() -> None:
    export = make_export()
    original = copy.deepcopy(export)
    with zipfile.ZipFile(io.BytesIO(zip_bytes(export))) as archive:
        assert json.loads(archive.read("export.json")) == export
        assert archive.read("export.json") == export_json(export)
        assert archive.read("transcript.html").decode("utf-8") == transcript_html(export)
    assert export == original  # not mutated on the way


def test_transcript_in_the_zip_follows_the_locale() -> None:
    with zipfile.ZipFile(io.BytesIO(zip_bytes(make_export(), locale="nb"))) as archive:
        html = archive.read("transcript.html").decode("utf-8")
    assert '<html lang="nb">' in html
    assert "Dine data fra chatten" in html


def test_same_export_gives_the_same_archive() -> None:
    export = make_export()
    assert zip_bytes(export) == zip_bytes(export)
    with zipfile.ZipFile(io.BytesIO(zip_bytes(export))) as archive:
        assert {i.date_time for i in archive.infolist()} == {(2026, 11, 26, 8, 0, 0)}


def test_extra_files_get_safe_unique_names_and_identical_bytes(tmp_path: Path) -> None:
    given = [
        "report.pdf",
        "Report.pdf",
        "report.pdf",
        "report-2.pdf",
        "../../etc/passwd",
        "..",
        "a/b\\c.txt",
        "notes\n.txt",
        "\u202etxt.exe",
        "CON.txt",
        "",
        "Kvittering – mars.pdf",
    ]
    files = []
    for i, name in enumerate(given):
        path = tmp_path / f"source-{i}.bin"
        path.write_bytes(f"file {i}: {name}".encode() + os.urandom(100))
        files.append((name, path))

    out = io.BytesIO()
    digests = write_zip(make_export(), out, files=files)

    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        names = archive.namelist()
        stored = [n for n in names if n.startswith("files/")]
        assert names == ["export.json", "transcript.html", *stored, "manifest.json"]
        assert stored == [
            "files/report.pdf",
            "files/Report-2.pdf",
            "files/report-3.pdf",
            "files/report-2-2.pdf",
            "files/_._etc_passwd",
            "files/file",
            "files/a_b_c.txt",
            "files/notes_.txt",
            "files/_txt.exe",
            "files/_CON.txt",
            "files/source-10.bin",  # no name given: the file's own
            "files/Kvittering – mars.pdf",
        ]
        for (_, path), name in zip(files, stored, strict=True):
            data = archive.read(name)
            assert data == path.read_bytes()
            assert digests[name] == hashlib.sha256(data).hexdigest()
        manifest = json.loads(archive.read("manifest.json"))

    assert [f["name"] for f in manifest["files"]] == names[:-1]
    for name in stored:
        leaf = name.removeprefix("files/")
        assert "/" not in leaf and "\\" not in leaf and ".." not in leaf
        assert not leaf.startswith(".")
    assert len({n.casefold() for n in stored}) == len(stored)


def test_a_large_file_is_streamed_not_read_whole(tmp_path: Path) -> None:
    size = 5 * 1024 * 1024
    source = tmp_path / "recording.bin"
    source.write_bytes(os.urandom(size))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "export.zip"

    tracemalloc.start()
    try:
        with target.open("wb") as out:
            digests = write_zip(make_export(), out, files=[("recording.bin", source)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Incompressible data written to disk: holding it whole would cost at least its size.
    assert peak < size // 2, peak
    assert digests["files/recording.bin"] == expected
    with zipfile.ZipFile(target) as archive:
        info = archive.getinfo("files/recording.bin")
        assert info.file_size == size
        assert hashlib.sha256(archive.read(info)).hexdigest() == expected
        manifest = json.loads(archive.read("manifest.json"))
    assert {"name": "files/recording.bin", "size": size, "sha256": expected} in manifest["files"]


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += b
        return len(b)


def test_an_unseekable_output_gets_a_valid_archive(tmp_path: Path) -> None:
    attachment = tmp_path / "a.txt"
    attachment.write_bytes(b"attached\n" * 1000)
    raw = _Unseekable()
    out = io.BufferedWriter(raw)  # as a pipe or socket file would come
    assert not out.seekable()

    digests = write_zip(make_export(), out, files=[("a.txt", attachment)])
    out.flush()

    with zipfile.ZipFile(io.BytesIO(bytes(raw.data))) as archive:
        assert archive.testzip() is None
        assert archive.read("files/a.txt") == attachment.read_bytes()
        for name, digest in digests.items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest


def test_a_missing_file_raises() -> None:
    with pytest.raises(FileNotFoundError):
        write_zip(make_export(), io.BytesIO(), files=[("gone.txt", Path("/nonexistent/gone"))])


# transcript.html


def test_transcript_escapes_every_message_body() -> None:
    bodies = [XSS_BODY, 'Tom & "Jerry" <b>bold</b>', "plain"]
    html = transcript_html(make_export(bodies=bodies, name="<i>Eve</i>", tags=["<u>x</u>"]))

    assert ESCAPED_BODY in html
    assert "Tom &amp; &#34;Jerry&#34; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;i&gt;Eve&lt;/i&gt;" in html
    assert "&lt;u&gt;x&lt;/u&gt;" in html
    for raw in ("<script", "<img", "<b>", "<i>", "<u>"):
        assert raw not in html
    assert html.count(ESCAPED_BODY) == 1


def test_transcript_is_standalone_and_locked_down() -> None:
    html = transcript_html(make_export(page_url="javascript:alert(1)"))

    assert html.startswith("<!DOCTYPE html>\n")
    assert '<meta charset="utf-8">' in html
    assert (
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    ) in html
    # charset and CSP come before anything the policy should govern.
    assert html.index("Content-Security-Policy") < html.index("<style>")
    assert '<html lang="en">' in html
    assert "<script" not in html
    assert "<link" not in html
    assert re.findall(r'\b(?:src|href|action|srcset)="(?!#)', html) == []
    assert "javascript:alert(1)" in html  # shown, as text only


def test_transcript_shows_everything_readably() -> None:
    html = transcript_html(make_export())

    for text in (
        "Your data from the chat",
        "Profile",
        "Åse Ødegård",
        "ase@example.no",
        "+47 400 00 000",
        "Verified by",
        "bankid",
        "Conversations",
        "Resolved",
        "faktura, levering",
        "Kari Nordmann",
        "Internal note",
        "Sessions",
        "203.0.113.7",
        "https://shop.example/kasse?steg=2",
        "Kasse – Butikken",
        "Computer",
        "Consents",
        "https://shop.example/personvern",
        "Corrections",
        "Ase Odegard",
        "Applied",
        "2026-11-25 10:04:05 UTC",
    ):
        assert text in html, text
    assert "white-space: pre-wrap" in html
    # The line break inside the body survives for pre-wrap to show.
    assert '<p class="body">Hei! Jeg lurer på\nen ting 😊</p>' in html
    assert '<li class="note">' in html
    assert re.search(r"<h2[^>]*>Sessions</h2>", html)
    assert '<ol class="messages">' in html
    assert '<dl class="fields">' in html


def test_transcript_in_norwegian() -> None:
    html = transcript_html(make_export(), locale="nb")

    assert '<html lang="nb">' in html
    for label in LABELS["nb"].values():
        assert isinstance(label, str) and label
    for text in (
        "Dine data fra chatten",
        "Profil",
        "Verifisert med",
        "Samtaler",
        "Økter",
        "Samtykker",
        "Rettelser",
        "Internt notat",
        "Løst",
        "Datamaskin",
        "Utført",
    ):
        assert text in html, text
    for english in ("Your data from the chat", "Conversations", "Internal note", "Sessions"):
        assert english not in html


@pytest.mark.parametrize("locale", ["de", "", "NB", "nb-NO", "../en"])
def test_other_locales_fall_back_to_english(locale: str) -> None:
    html = transcript_html(make_export(), locale=locale)
    assert '<html lang="en">' in html
    assert "Your data from the chat" in html


def test_both_languages_have_the_same_labels() -> None:
    assert LABELS["en"].keys() == LABELS["nb"].keys()


@pytest.mark.parametrize("locale", ["en", "nb"])
def test_null_fields_do_not_crash(locale: str) -> None:
    export = all_null_export()
    html = transcript_html(export, locale=locale)
    assert "None" not in html
    assert "not a time" in html  # an unparsable time is still shown as stored
    assert 'datetime="None"' not in html

    for bare in ({}, {"subject": None, "conversations": None, "sessions": None}):
        assert "<h1>" in transcript_html(bare, locale=locale)

    with zipfile.ZipFile(io.BytesIO(zip_bytes(export, locale=locale))) as archive:
        assert json.loads(archive.read("export.json")) == export
        assert json.loads(archive.read("manifest.json"))["generated_at"] is None


def test_ten_thousand_messages_render() -> None:
    bodies = [f"Message number {i}\nwith two lines <{i}>" for i in range(10_000)]
    html = transcript_html(make_export(bodies=bodies))

    assert html.count('<li class="text">') == 10_000
    assert "Message number 9999\nwith two lines &lt;9999&gt;" in html
    assert len(html) > 10_000 * 200
    with zipfile.ZipFile(io.BytesIO(zip_bytes(make_export(bodies=bodies)))) as archive:
        assert len(archive.read("transcript.html")) > 10_000 * 200
