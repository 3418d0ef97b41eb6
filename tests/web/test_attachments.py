"""Attachments over HTTP and the sockets: upload by visitors and agents, downloads for the
right people only, files refused by their bytes, attachment ids in `send`, and the files'
place in export, erasure and retention."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatserver.clock import Clock
from chatserver.web.openapi import DOCUMENT
from tests.helpers import ORIGIN, Client, Server, identity_token, make_settings, msg_id
from tests.helpers import running_server as _running_server
from tests.web.test_openapi import assert_conforms


def png(width: int = 2, height: int = 2, seed: int = 0) -> bytes:
    """A real PNG image (browsers draw it), different for each ``seed``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00" + bytes((seed * 40 + x * 60) % 256 for x in range(width * 3)) for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


class ShiftedClock(Clock):
    """Real time plus an offset the test moves forward (retention needs old data)."""

    def __init__(self) -> None:
        self.offset_us = 0

    def now_us(self) -> int:
        return super().now_us() + self.offset_us


def running_server(tmp_path: Path, clock: Clock | None = None, **overrides: Any) -> Any:
    options = {"clock": clock} if clock is not None else {}
    return _running_server(make_settings(tmp_path, **overrides), **options)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as srv:
        yield srv


def files_on_disk(data_dir: Path) -> list[Path]:
    root = data_dir / "attachments"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def visitor_http(server: Server, token: str) -> httpx.AsyncClient:
    client = server.http()
    client.headers["Authorization"] = f"Visitor {token}"
    return client


async def upload(
    http: httpx.AsyncClient,
    conversation_id: str | None,
    data: bytes,
    name: str = "photo.png",
    content_type: str = "image/png",
) -> httpx.Response:
    url = (
        f"/api/v1/conversations/{conversation_id}/attachments"
        if conversation_id
        else ("/api/v1/attachments")
    )
    return await http.post(url, files={"file": (name, data, content_type)})


async def send(
    client: Client,
    body: str,
    conversation_id: str | None = None,
    attachments: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Send a message; answers the ack, or the error frame that refused it."""
    frame: dict[str, Any] = {"type": "send", "client_msg_id": msg_id(), "body": body, **extra}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    if attachments is not None:
        frame["attachments"] = attachments
    await client.send(**frame)
    while True:
        answer = await client.recv()
        if (
            answer["type"] in ("ack", "error")
            and answer.get("client_msg_id", answer.get("ref")) == (frame["client_msg_id"])
        ):
            return answer


async def start_chat(server: Server, **hello: Any) -> tuple[str, str]:
    """A visitor who wrote once: answers (visitor token, conversation id)."""
    async with server.visitor(hello=hello or None) as (visitor, welcome):
        ack = await send(visitor, "hello, a file follows")
        return welcome["visitor_token"], ack["conversation_id"]


# ---------------------------------------------------------------- upload, send, download


async def test_a_visitors_file_reaches_the_agent_with_the_same_bytes(server: Server) -> None:
    """A visitor uploads an image to their conversation and sends it; the watching agent's
    `message` frame and the HTTP listing carry it, and the agent downloads the same bytes,
    served inline with nosniff, a sandboxing CSP and no caching."""
    agent_token = await server.token("agent")
    image = png(seed=1)
    async with server.visitor() as (visitor, welcome):
        token = welcome["visitor_token"]
        conv = (await send(visitor, "here is a photo of the damage"))["conversation_id"]
        async with visitor_http(server, token) as http:
            r = await upload(http, conv, image, "skade.png")
        assert r.status_code == 201, r.text
        ref = r.json()
        assert ref == {
            "id": ref["id"],
            "name": "skade.png",
            "size": len(image),
            "type": "image/png",
        }
        async with server.agent(agent_token) as agent:
            await agent.send(type="watch", conversation_id=conv)
            await agent.until("watching")
            ack = await send(visitor, "", conv, [ref["id"]])
            assert ack["type"] == "ack", ack
            frame = await agent.until("message", seq=ack["seq"])
    assert frame["attachments"] == [ref]
    assert frame["body"] == ""

    async with server.http(agent_token) as http:
        listed = (await http.get(f"/api/v1/conversations/{conv}/messages")).json()["items"]
        assert [m["attachments"] for m in listed] == [[], [ref]]
        r = await http.get(f"/api/v1/attachments/{ref['id']}")
    assert r.status_code == 200
    assert r.content == image
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(len(image))
    assert r.headers["content-disposition"].startswith("inline;")
    assert "skade.png" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert r.headers["cache-control"] == "private, no-store"
    async with server.http(agent_token) as http:
        forced = await http.get(f"/api/v1/attachments/{ref['id']}?download=1")
    assert forced.headers["content-disposition"].startswith("attachment;")

    # The visitor who sent it downloads it too.
    async with visitor_http(server, token) as http:
        mine = await http.get(f"/api/v1/attachments/{ref['id']}")
    assert mine.status_code == 200 and mine.content == image


async def test_a_visitors_first_message_can_carry_a_file(server: Server) -> None:
    """Before any conversation exists, a visitor uploads to POST /attachments and sends the
    id with their first message (no text needed): that message starts the conversation and
    carries the file; the agent finds both."""
    agent_token = await server.token("agent")
    async with server.visitor() as (visitor, welcome):
        async with visitor_http(server, welcome["visitor_token"]) as http:
            r = await upload(http, None, PDF, "kvittering.pdf", "application/pdf")
        assert r.status_code == 201, r.text
        ref = r.json()
        assert ref["type"] == "application/pdf" and ref["name"] == "kvittering.pdf"
        ack = await send(visitor, "", attachments=[ref["id"]])
        assert ack["type"] == "ack", ack
        assert ack["seq"] == 1
    async with server.http(agent_token) as http:
        items = (await http.get(f"/api/v1/conversations/{ack['conversation_id']}/messages")).json()
        assert items["items"][0]["attachments"] == [ref]
        r = await http.get(f"/api/v1/attachments/{ref['id']}")
    assert r.content == PDF
    # Anything that is not a raster image is a download, never shown in the page.
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-type"] == "application/pdf"


async def test_an_agents_file_reaches_the_visitor(server: Server) -> None:
    """An agent uploads a PDF and a text file with a bearer token and sends them on the
    socket and over HTTP; the visitor's `message` frames carry them and the visitor downloads
    the same bytes with their visitor token. Text is served as UTF-8, as a download."""
    agent_token = await server.token("agent", name="Agnes")
    text = "Kvittering: 3 × kaffe\nTakk for handelen!\n".encode()
    token, conv = await start_chat(server)
    async with server.http(agent_token) as http:
        pdf = (await upload(http, conv, PDF, "faktura.pdf", "application/pdf")).json()
        txt = (await upload(http, conv, text, "notes", "application/octet-stream")).json()
    assert txt["type"] == "text/plain" and txt["name"] == "notes.txt"
    async with server.visitor(hello={"visitor_token": token}) as (visitor, _):
        async with server.agent(agent_token) as agent:
            ack = await send(agent, "the invoice", conv, [pdf["id"]])
            assert ack["type"] == "ack", ack
            frame = await visitor.until("message", seq=ack["seq"])
            assert frame["attachments"] == [pdf]
            assert frame["author"]["name"] == "Agnes"
        async with server.http(agent_token) as http:
            r = await http.post(
                f"/api/v1/conversations/{conv}/messages",
                json={"client_msg_id": msg_id(), "body": "", "attachments": [txt["id"]]},
            )
            assert r.status_code == 201, r.text
        frame = await visitor.until("message", seq=r.json()["seq"])
        assert frame["attachments"] == [txt]
    async with visitor_http(server, token) as http:
        got_pdf = await http.get(f"/api/v1/attachments/{pdf['id']}")
        got_txt = await http.get(f"/api/v1/attachments/{txt['id']}")
    assert got_pdf.content == PDF
    assert got_txt.content == text
    assert got_txt.headers["content-type"] == "text/plain; charset=utf-8"
    assert got_txt.headers["content-disposition"].startswith("attachment;")


async def test_only_the_conversations_visitor_and_agents_may_download(server: Server) -> None:
    """Another visitor, a request without credentials or with wrong ones, and a compliance
    token all get 404, the same answer as for an id that does not exist. A file in an
    internal note is for agents only, and a file not sent yet for its uploader only."""
    agent_token = await server.token("agent")
    other_agent = await server.token("agent", name="Other Agent")
    compliance = await server.token("compliance")
    token, conv = await start_chat(server)
    stranger_token, _ = await start_chat(server)
    async with visitor_http(server, token) as http:
        sent = (await upload(http, conv, png(seed=2))).json()
        unsent = (await upload(http, conv, png(seed=3))).json()
    async with server.http(agent_token) as http:
        note_file = (await upload(http, conv, PDF, "internal.pdf")).json()
        agent_unsent = (await upload(http, conv, PDF, "draft.pdf")).json()
        r = await http.post(
            f"/api/v1/conversations/{conv}/messages",
            json={
                "client_msg_id": msg_id(),
                "body": "fraud?",
                "kind": "note",
                "attachments": [note_file["id"]],
            },
        )
        assert r.status_code == 201, r.text
    async with server.visitor(hello={"visitor_token": token}) as (visitor, _):
        assert (await send(visitor, "photo", conv, [sent["id"]]))["type"] == "ack"

    def url(ref: dict[str, Any]) -> str:
        return f"/api/v1/attachments/{ref['id']}"

    async def status(client: httpx.AsyncClient, ref: dict[str, Any]) -> int:
        r = await client.get(url(ref))
        if r.status_code == 404:
            assert r.json() == {"error": {"code": "not_found", "message": "no such attachment"}}
        return r.status_code

    async with (
        visitor_http(server, token) as owner,
        visitor_http(server, stranger_token) as stranger,
        server.http() as nobody,
        server.http(agent_token) as agent,
        server.http(other_agent) as colleague,
        server.http(compliance) as officer,
        server.http("cs_not-a-token") as forged,
    ):
        assert await status(owner, sent) == 200
        assert await status(owner, unsent) == 200  # its uploader
        assert await status(owner, note_file) == 404  # an internal note's
        assert await status(owner, agent_unsent) == 404
        assert await status(agent, sent) == 200
        assert await status(colleague, sent) == 200
        assert await status(colleague, note_file) == 200
        assert await status(agent, unsent) == 404  # not sent yet: the visitor's alone
        assert await status(agent, agent_unsent) == 200
        assert await status(colleague, agent_unsent) == 404
        for outsider in (stranger, nobody, officer, forged):
            for ref in (sent, unsent, note_file):
                assert await status(outsider, ref) == 404
        nobody.headers["Authorization"] = "Visitor vt_not-a-token"
        assert await status(nobody, sent) == 404
        nobody.headers["Authorization"] = "Visitor " + "x" * 9000
        assert await status(nobody, sent) == 404
        assert (await agent.get("/api/v1/attachments/" + "x" * 100)).status_code == 404
        assert (await agent.get("/api/v1/attachments/no-such-id")).status_code == 404


# ---------------------------------------------------------------- what is refused


SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
XML_SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
LATE_SCRIPT = b"harmless notes\n" * 400 + b"<ScRiPt>alert(1)</script>\n"


@pytest.mark.parametrize(
    ("data", "name", "content_type", "code"),
    [
        (HTML, "invoice.png", "image/png", "unsupported_type"),
        (HTML, "invoice.txt", "text/plain", "unsupported_type"),
        (b"  \n<p>hi</p>", "note.txt", "text/plain", "unsupported_type"),
        (SVG_WITH_SCRIPT, "logo.png", "image/png", "unsupported_type"),
        (XML_SVG, "logo.svg", "image/svg+xml", "unsupported_type"),
        (LATE_SCRIPT, "log.txt", "text/plain", "unsupported_type"),
        (b"PK\x03\x04" + b"\x00" * 100, "archive.pdf", "application/pdf", "unsupported_type"),
        (b"MZ\x90\x00" + bytes(range(256)), "setup.txt", "text/plain", "unsupported_type"),
        ("blåbærsyltetøy".encode("latin-1"), "latin1.txt", "text/plain", "unsupported_type"),
        (b"text, then\x00binary" * 200, "mixed.txt", "text/plain", "unsupported_type"),
        (b"", "empty.png", "image/png", "bad_request"),
    ],
    ids=[
        "html-named-png",
        "html-named-txt",
        "html-after-whitespace",
        "svg-with-script-named-png",
        "xml-svg",
        "script-after-the-first-kilobyte",
        "zip-named-pdf",
        "executable",
        "not-utf8-text",
        "binary-inside-text",
        "empty",
    ],
)
async def test_files_are_judged_by_their_bytes(
    server: Server, tmp_path: Path, data: bytes, name: str, content_type: str, code: str
) -> None:
    """HTML and SVG are refused however they are named or labelled, as is any type not on the
    list and text that is not plain UTF-8; an empty file is a bad request. Nothing of a
    refused file stays on disk, and the answers match the OpenAPI document."""
    token, conv = await start_chat(server)
    async with visitor_http(server, token) as http:
        r = await upload(http, conv, data, name, content_type)
    assert r.json()["error"]["code"] == code, r.text
    assert r.status_code == (415 if code == "unsupported_type" else 400)
    assert_conforms("post", "/conversations/{id}/attachments", r.status_code, r.json())
    assert files_on_disk(tmp_path) == []


async def test_the_type_list_and_size_limit_come_from_the_settings(tmp_path: Path) -> None:
    """With only PNG allowed, a PDF is refused (415); a file over `attachment_max_bytes` is
    refused with 413 `too_large`, whether its size is declared up front or only found while
    it streams; one exactly at the limit is taken."""
    async with running_server(
        tmp_path, attachment_types="image/png", attachment_max_bytes=4096
    ) as server:
        token, conv = await start_chat(server)
        async with visitor_http(server, token) as http:
            r = await upload(http, conv, PDF, "a.pdf", "application/pdf")
            assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_type")
            assert "image/png" in r.json()["error"]["message"]

            exact = png(seed=4)
            exact += b"\x00" * (4096 - len(exact))  # trailing bytes after IEND: still a PNG
            assert (await upload(http, conv, exact)).status_code == 201

            big = exact + b"\x00"
            r = await upload(http, conv, big)
            assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")

            async def streamed() -> AsyncIterator[bytes]:
                # No Content-Length: the limit is found while the bytes arrive.
                yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
                yield png(seed=5)
                for _ in range(10):
                    yield b"\x00" * 1000
                yield b"\r\n--b--\r\n"

            r = await http.post(
                f"/api/v1/conversations/{conv}/attachments",
                content=streamed(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")

            r = await http.post(
                f"/api/v1/conversations/{conv}/attachments",
                content=b"x" * 200_000,
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")
        assert len(files_on_disk(tmp_path)) == 1

    async with running_server(tmp_path / "off", attachment_types="") as server:
        token, conv = await start_chat(server)
        async with visitor_http(server, token) as http:
            r = await upload(http, conv, png())
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


async def test_a_file_over_ten_mebibytes_is_refused_while_it_streams(
    server: Server, tmp_path: Path
) -> None:
    """With the default limit (10 MiB), a PNG one byte over it is refused with 413 and the
    client reads that answer, declared length or not; nothing stays on disk."""
    token, conv = await start_chat(server)
    limit = server.state.settings.attachment_max_bytes
    assert limit == 10 * 1024 * 1024
    image = png()
    big = image + b"\x00" * (limit + 1 - len(image))
    async with visitor_http(server, token) as http:
        r = await upload(http, conv, big)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]
            yield b"\r\n--b--\r\n"

        r = await http.post(
            f"/api/v1/conversations/{conv}/attachments",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")
        # The connection is still good for the next request.
        assert (await upload(http, conv, image)).status_code == 201
    assert len(files_on_disk(tmp_path)) == 1


async def test_malformed_uploads_are_bad_requests(server: Server, tmp_path: Path) -> None:
    """A JSON body, a form without a `file` field, two files, a body cut short and a
    missing boundary are each `bad_request`, and leave nothing on disk."""
    token, conv = await start_chat(server)
    url = f"/api/v1/conversations/{conv}/attachments"
    async with visitor_http(server, token) as http:
        cases = [
            await http.post(url, json={"file": "aGVsbG8="}),
            await http.post(url, files={"upload": ("a.png", png(), "image/png")}),
            await http.post(url, data={"file": "just a text field"}),
            await http.post(
                url,
                files=[
                    ("file", ("a.png", png(), "image/png")),
                    ("file", ("b.png", png(seed=1), "image/png")),
                ],
            ),
            await http.post(
                url,
                content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
                + png(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            ),
            await http.post(url, content=png(), headers={"Content-Type": "multipart/form-data"}),
            await http.post(url, content=png(), headers={"Content-Type": "image/png"}),
            await http.post(
                url,
                content=b"--b\r\nX-Nothing: 1\r\n\r\nzzz\r\n--b--\r\n",
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            ),
        ]
    for r in cases:
        assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_request"), r.text
    # The form's text field is not a file, so no field named `file` was found.
    assert "file" in cases[2].json()["error"]["message"]
    assert "one file" in cases[3].json()["error"]["message"]
    assert files_on_disk(tmp_path) == []


async def test_who_may_upload_where(tmp_path: Path) -> None:
    """Uploads need credentials (401), the agent role (403 for compliance), a conversation
    the caller may write to (404 for someone else's or none), and for visitors an accepted
    privacy notice (403). Agents attach to conversations only."""
    async with running_server(tmp_path) as server:
        agent = await server.token("agent")
        compliance = await server.token("compliance")
        admin = await server.token("admin")
        token, conv = await start_chat(server)
        stranger, stranger_conv = await start_chat(server)
        async with server.http() as nobody:
            r = await upload(nobody, conv, png())
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
            nobody.headers["Authorization"] = "Visitor vt_unknown"
            r = await upload(nobody, conv, png())
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
        async with server.http(compliance) as http:
            r = await upload(http, conv, png())
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        async with server.http(agent) as http:
            assert (await upload(http, "no-such-conversation", png())).status_code == 404
            r = await upload(http, None, png())
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
            assert (await upload(http, stranger_conv, png())).status_code == 201
        async with visitor_http(server, token) as http:
            r = await upload(http, stranger_conv, png())
            assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
            assert (await upload(http, conv, png())).status_code == 201
        async with server.http(admin) as http:
            r = await http.post("/api/v1/policies", json={"version": "v2", "url": "/p"})
            assert r.status_code == 201
        async with visitor_http(server, token) as http:
            r = await upload(http, conv, png())
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
            assert "v2" in r.json()["error"]["message"]
        async with server.visitor(hello={"visitor_token": token, "consent": {"version": "v2"}}):
            pass
        async with visitor_http(server, token) as http:
            assert (await upload(http, conv, png())).status_code == 201


async def test_too_many_unsent_uploads_are_refused(server: Server) -> None:
    """A visitor may keep 20 uploads waiting for a message; the next is `rate_limited`
    until some are sent."""
    token, conv = await start_chat(server)
    async with visitor_http(server, token) as http:
        ids = [(await upload(http, conv, png(seed=i))).json()["id"] for i in range(20)]
        r = await upload(http, conv, png(seed=99))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
        async with server.visitor(hello={"visitor_token": token}) as (visitor, _):
            assert (await send(visitor, "", conv, ids[:10]))["type"] == "ack"
        assert (await upload(http, conv, png(seed=99))).status_code == 201


# ---------------------------------------------------------------- ids in `send`


async def test_attachment_ids_in_send_are_checked(server: Server) -> None:
    """A `send` may carry only the sender's own unsent uploads for that conversation: one
    from another conversation is `bad_request`, someone else's or an unknown id `not_found`,
    one sent before `conflict`, the same id twice `bad_request`, more than ten `bad_frame`.
    Nothing is stored then; a resend with the same client_msg_id is acked again, not refused."""
    agent_token = await server.token("agent")
    async with server.visitor() as (visitor, welcome):
        token = welcome["visitor_token"]
        first = (await send(visitor, "first thread"))["conversation_id"]
        async with server.http(agent_token) as http:
            await http.patch(f"/api/v1/conversations/{first}", json={"status": "resolved"})
        await visitor.until("conversation", status="resolved")
        other_token, other_conv = await start_chat(server)
        async with visitor_http(server, token) as http:
            in_first = (await upload(http, first, png(seed=1))).json()["id"]
            loose = (await upload(http, None, png(seed=2))).json()["id"]
        async with visitor_http(server, other_token) as http:
            theirs = (await upload(http, other_conv, png(seed=3))).json()["id"]
        async with server.http(agent_token) as http:
            agents = (await upload(http, first, PDF)).json()["id"]

        second = (await send(visitor, "a new thread")).get("conversation_id")
        assert second and second != first
        refused = [
            (await send(visitor, "x", second, [in_first]), "bad_request"),
            (await send(visitor, "x", second, [theirs]), "not_found"),
            (await send(visitor, "x", second, [agents]), "not_found"),
            (await send(visitor, "x", second, ["no-such-file"]), "not_found"),
            (await send(visitor, "x", second, [loose, loose]), "bad_request"),
            (await send(visitor, "x", second, [f"id{i}" for i in range(11)]), "bad_frame"),
            (await send(visitor, "x", second, [""]), "bad_frame"),
            (await send(visitor, "x", second, "not-a-list"), "bad_frame"),  # type: ignore[arg-type]
        ]
        for answer, code in refused:
            assert (answer["type"], answer["code"]) == ("error", code), answer

        frame = {"type": "send", "client_msg_id": msg_id(), "body": "", "conversation_id": second}
        await visitor.send(**frame, attachments=[loose])
        acked = await visitor.until("ack", client_msg_id=frame["client_msg_id"])
        await visitor.send(**frame, attachments=[loose])  # a retry: the same message again
        again = await visitor.until("ack", client_msg_id=frame["client_msg_id"])
        assert again["message_id"] == acked["message_id"]
        used = await send(visitor, "again", second, [loose])
        assert (used["type"], used["code"]) == ("error", "conflict"), used
        empty = await send(visitor, "  ", second)
        assert (empty["type"], empty["code"]) == ("error", "bad_request")

    async with server.agent(agent_token) as agent:
        wrong = await send(agent, "x", second, [loose])
        assert (wrong["type"], wrong["code"]) == ("error", "not_found")
        ok = await send(agent, "", first, [agents])
        assert ok["type"] == "ack"
    async with server.http(agent_token) as http:
        items = (await http.get(f"/api/v1/conversations/{second}/messages")).json()["items"]
        r = await http.post(
            f"/api/v1/conversations/{second}/messages",
            json={"client_msg_id": msg_id(), "body": "", "attachments": [theirs]},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
        r = await http.post(
            f"/api/v1/conversations/{second}/messages",
            json={"client_msg_id": msg_id(), "body": "", "attachments": "x"},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_request")
    # Two messages stored in the new thread, and only the one file linked.
    assert [m["body"] for m in items] == ["a new thread", ""]
    assert [len(m["attachments"]) for m in items] == [0, 1]


async def test_two_sends_racing_for_one_file_link_it_once(server: Server) -> None:
    """Two sends carrying the same upload, sent back to back (so usually written in one group
    commit), cannot both have it: one is acked with it, the other refused with `conflict`."""
    token, conv = await start_chat(server)
    async with visitor_http(server, token) as http:
        ref = (await upload(http, conv, png())).json()
    async with server.visitor(hello={"visitor_token": token}) as (visitor, _):
        a, b = msg_id(), msg_id()
        for cmid in (a, b):
            await visitor.send(
                type="send",
                client_msg_id=cmid,
                body="",
                conversation_id=conv,
                attachments=[ref["id"]],
            )
        answers = {}
        while len(answers) < 2:
            f = await visitor.recv()
            if f["type"] in ("ack", "error"):
                answers[f.get("client_msg_id") or f.get("ref")] = f
    assert sorted(f["type"] for f in answers.values()) == ["ack", "error"]
    assert [f["code"] for f in answers.values() if f["type"] == "error"] == ["conflict"]


# ---------------------------------------------------------------- export, erasure, retention


async def test_export_zip_holds_the_files_and_erasure_removes_them(tmp_path: Path) -> None:
    """A verified person's export lists each file under its message (and uploads never
    sent), and the ZIP holds them under files/ with the same bytes and the manifest's
    digests; an internal note's file stays out when notes are not exported. Erasing the
    person deletes every file of theirs from disk and leaves a stranger's alone."""
    async with running_server(tmp_path, export_notes=False) as server:
        agent_token = await server.token("agent")
        compliance = await server.token("compliance")
        hello = {"identity": identity_token("platform-7", name="Kari")}
        image, unsent_image = png(seed=7), png(seed=8)
        async with server.visitor(hello=hello) as (visitor, welcome):
            subject = welcome["account"]["id"]
            token = welcome["visitor_token"]
            async with visitor_http(server, token) as http:
                first = (await upload(http, None, image, "bilde.png")).json()
                loose = (await upload(http, None, unsent_image, "bilde.png")).json()
            ack = await send(visitor, "see attached", attachments=[first["id"]])
            conv = ack["conversation_id"]
        async with server.http(agent_token) as http:
            reply = (await upload(http, conv, PDF, "svar.pdf")).json()
            note = (await upload(http, conv, PDF + b"%note", "note.pdf")).json()
            for body, kind, ref in (("answer", "text", reply), ("hm", "note", note)):
                r = await http.post(
                    f"/api/v1/conversations/{conv}/messages",
                    json={
                        "client_msg_id": msg_id(),
                        "body": body,
                        "kind": kind,
                        "attachments": [ref["id"]],
                    },
                )
                assert r.status_code == 201
        stranger_token, stranger_conv = await start_chat(server)
        async with visitor_http(server, stranger_token) as http:
            assert (await upload(http, stranger_conv, png(seed=9))).status_code == 201
        assert len(files_on_disk(tmp_path)) == 5

        async with server.http(compliance) as http:
            document = (await http.get(f"/api/v1/subjects/{subject}/export")).json()
            assert_conforms("get", "/subjects/{id}/export", 200, document)
            r = await http.get(f"/api/v1/subjects/{subject}/export?format=zip")
            assert r.status_code == 200
        messages = document["conversations"][0]["messages"]
        listed = [a for m in messages for a in m["attachments"]]
        assert [(a["id"], a["name"], a["size"], a["type"]) for a in listed] == [
            (first["id"], "bilde.png", len(image), "image/png"),
            (reply["id"], "svar.pdf", len(PDF), "application/pdf"),
        ]
        assert [a["id"] for a in document["unsent_attachments"]] == [loose["id"]]
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        manifest = json.loads(archive.read("manifest.json"))
        digests = {f["name"]: f["sha256"] for f in manifest["files"]}
        exported = json.loads(archive.read("export.json"))
        for entry, data in (
            (exported["conversations"][0]["messages"][0]["attachments"][0], image),
            (exported["conversations"][0]["messages"][1]["attachments"][0], PDF),
            (exported["unsent_attachments"][0], unsent_image),
        ):
            assert entry["file"].startswith("files/") and entry["file"].endswith(entry["name"][-4:])
            assert archive.read(entry["file"]) == data
            assert digests[entry["file"]] == entry["sha256"] == hashlib.sha256(data).hexdigest()
        # The person's readable transcript links each file of a message.
        transcript = archive.read("transcript.html").decode()
        for entry in listed:
            assert f'href="{entry["file"]}"' in transcript
        assert "note.pdf" not in transcript and "note.pdf" not in json.dumps(exported)
        assert sorted(n for n in archive.namelist() if n.startswith("files/")) == sorted(
            a["file"] for a in (*listed, *document["unsent_attachments"])
        )

        async with server.http(compliance) as http:
            r = await http.post(f"/api/v1/subjects/{subject}/erasure")
            assert r.status_code == 200, r.text
        left = files_on_disk(tmp_path)
        assert len(left) == 1  # the stranger's
        assert left[0].read_bytes() == png(seed=9)
        async with server.http(agent_token) as http:
            for ref in (first, loose, reply, note):
                assert (await http.get(f"/api/v1/attachments/{ref['id']}")).status_code == 404
        # Nothing left waiting in the trash either.
        assert await server.state.store.trashed_attachment_keys(10) == []


async def test_retention_removes_files_with_their_conversation(tmp_path: Path) -> None:
    """When retention deletes an anonymous conversation, its files go from disk too; an
    upload never sent goes after a day; a file a crash left without a row goes after an
    hour, as does an upload cut off half-way. A dry run deletes nothing."""
    clock = ShiftedClock()
    async with running_server(tmp_path, clock=clock, retention_anonymous="30d") as server:
        old_token, old_conv = await start_chat(server)
        async with visitor_http(server, old_token) as http:
            old = (await upload(http, old_conv, png(seed=1))).json()
            old_unsent = (await upload(http, None, png(seed=2))).json()
        async with server.visitor(hello={"visitor_token": old_token}) as (visitor, _):
            assert (await send(visitor, "", old_conv, [old["id"]]))["type"] == "ack"

        clock.offset_us += 31 * 86400 * 1_000_000
        new_token, new_conv = await start_chat(server)
        async with visitor_http(server, new_token) as http:
            fresh = (await upload(http, new_conv, png(seed=3))).json()
        storage = server.state.privacy.attachment_storage
        orphan = storage.path("ab" * 16)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"left by a crash")
        half = storage.path("cd" * 16).with_suffix(".part")
        half.parent.mkdir(parents=True, exist_ok=True)
        half.write_bytes(b"cut off")
        two_hours_ago = time.time() - 7200
        os.utime(orphan, (two_hours_ago, two_hours_ago))
        os.utime(half, (two_hours_ago, two_hours_ago))
        assert len(files_on_disk(tmp_path)) == 5

        compliance = await server.token("compliance")
        async with server.http(compliance) as http:
            r = await http.post("/api/v1/retention/runs", json={"dry_run": True})
            assert r.status_code == 201
            assert len(files_on_disk(tmp_path)) == 5
            r = await http.post("/api/v1/retention/runs", json={"dry_run": False})
            assert r.status_code == 201, r.text
        remaining = files_on_disk(tmp_path)
        assert [p.read_bytes() for p in remaining] == [png(seed=3)]
        async with visitor_http(server, new_token) as http:
            assert (await http.get(f"/api/v1/attachments/{fresh['id']}")).status_code == 200
        async with visitor_http(server, old_token) as http:
            for ref in (old, old_unsent):
                assert (await http.get(f"/api/v1/attachments/{ref['id']}")).status_code == 404

        # A day later the fresh upload, never sent, goes too.
        clock.offset_us += 25 * 3600 * 1_000_000
        async with server.http(compliance) as http:
            r = await http.post("/api/v1/retention/runs", json={"dry_run": False})
            assert r.status_code == 201
        assert files_on_disk(tmp_path) == []


# ---------------------------------------------------------------- the widget's origin


async def test_cors_lets_the_widgets_origin_in_and_no_other(server: Server) -> None:
    """The widget runs on the operator's site: a preflight from an allowed origin is
    answered with that origin and the methods and headers the widget uses (no
    credentials), responses carry the origin and expose Content-Disposition; any other
    origin's preflight is refused and its responses carry no CORS header."""
    token, conv = await start_chat(server)
    path = f"/api/v1/conversations/{conv}/attachments"
    async with server.http() as http:
        ok = await http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in ok.headers
        bad = await http.options(
            path,
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers
    async with visitor_http(server, token) as http:
        http.headers["Origin"] = ORIGIN
        r = await upload(http, conv, png())
        assert r.headers["access-control-allow-origin"] == ORIGIN
        got = await http.get(f"/api/v1/attachments/{r.json()['id']}")
        assert got.headers["access-control-allow-origin"] == ORIGIN
        assert "Content-Disposition" in got.headers["access-control-expose-headers"]
        http.headers["Origin"] = "http://evil.example"
        got = await http.get(f"/api/v1/attachments/{r.json()['id']}")
        assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


async def test_attachment_answers_match_the_openapi_document(server: Server) -> None:
    """Every attachment operation's answers, good and bad, match the documented schemas."""
    agent_token = await server.token("agent")
    token, conv = await start_chat(server)
    path, first, one = "/conversations/{id}/attachments", "/attachments", "/attachments/{id}"
    async with visitor_http(server, token) as http:
        r = await upload(http, conv, png())
        assert_conforms("post", path, r.status_code, r.json())
        ref = r.json()
        r = await upload(http, None, png(seed=1))
        assert_conforms("post", first, r.status_code, r.json())
        r = await upload(http, conv, b"x" * 10, "a.bin")
        assert_conforms("post", path, r.status_code, r.json())
        r = await http.get(f"/api/v1/attachments/{ref['id']}")
        assert r.status_code == 200
        documented = DOCUMENT["paths"][one]["get"]["responses"]["200"]
        assert r.headers["content-type"] in documented["content"]
        assert set(documented["headers"]) <= {h.title() for h in r.headers} | {
            "X-Content-Type-Options",
            "Content-Security-Policy",
        }
    async with server.http(agent_token) as http:
        r = await upload(http, None, png())
        assert_conforms("post", first, r.status_code, r.json())
        r = await http.get("/api/v1/attachments/none")
        assert_conforms("get", one, r.status_code, r.json())
        r = await http.get(f"/api/v1/conversations/{conv}/messages")
        assert_conforms("get", "/conversations/{id}/messages", r.status_code, r.json())
