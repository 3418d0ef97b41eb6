"""The widget and the console's files as a CDN would serve them: brotli or gzip by
``Accept-Encoding`` (compressed once, at start-up), strong ETags and 304s, a versioned
``/widget.<hash>.js`` cached for a year, and ``/widget.js`` itself for five minutes."""

from __future__ import annotations

import gzip
import hashlib

import brotli
import httpx

from chatserver.web import assets, compressed
from tests.helpers import Server

WIDGET = (assets.directory(assets.WIDGET_DIR) / "widget.js").read_bytes()
HASH = hashlib.sha256(WIDGET).hexdigest()[:12]


async def get(server: Server, path: str, **headers: str) -> httpx.Response:
    # httpx would decode and ask for its own encodings; this test looks at the bytes sent.
    async with httpx.AsyncClient(base_url=server.url) as http:
        request = http.build_request("GET", path, headers={"Accept-Encoding": "", **headers})
        return await http.send(request, stream=True)


async def body(response: httpx.Response) -> bytes:
    return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_the_widget_is_sent_as_the_client_accepts(server: Server) -> None:
    plain = await get(server, "/widget.js")
    br = await get(server, "/widget.js", **{"Accept-Encoding": "gzip, deflate, br"})
    gz = await get(server, "/widget.js", **{"Accept-Encoding": "gzip"})
    not_br = await get(server, "/widget.js", **{"Accept-Encoding": "br;q=0, gzip;q=0.5"})
    for response in (plain, br, gz, not_br):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["access-control-allow-origin"] == "*"
    assert "content-encoding" not in plain.headers
    assert await body(plain) == WIDGET
    assert br.headers["content-encoding"] == "br"
    br_bytes = await body(br)
    assert brotli.decompress(br_bytes) == WIDGET
    assert int(br.headers["content-length"]) == len(br_bytes) < len(WIDGET) // 3
    assert gz.headers["content-encoding"] == "gzip"
    assert gzip.decompress(await body(gz)) == WIDGET
    assert not_br.headers["content-encoding"] == "gzip"
    # One strong ETag per encoding (different bytes), none of them weak.
    tags = {r.headers["etag"] for r in (plain, br, gz)}
    assert len(tags) == 3
    assert all(t.startswith('"') and t.endswith('"') for t in tags)


async def test_compressed_once_not_per_request(server: Server) -> None:
    first = compressed.load(assets.directory(assets.WIDGET_DIR) / "widget.js")
    await get(server, "/widget.js", **{"Accept-Encoding": "br"})
    assert compressed.load(assets.directory(assets.WIDGET_DIR) / "widget.js") is first
    assert assets.widget() is first


async def test_a_current_copy_is_answered_with_304(server: Server) -> None:
    first = await get(server, "/widget.js", **{"Accept-Encoding": "br"})
    tag = first.headers["etag"]
    again = await get(server, "/widget.js", **{"Accept-Encoding": "br", "If-None-Match": tag})
    assert again.status_code == 304
    assert await body(again) == b""
    assert again.headers["etag"] == tag
    assert again.headers["cache-control"] == "public, max-age=300"
    # A copy of the same bytes in another encoding is current too; a weak match counts.
    other = await get(server, "/widget.js", **{"If-None-Match": f"W/{tag}"})
    assert other.status_code == 304
    stale = await get(server, "/widget.js", **{"If-None-Match": '"0123456789abcdef"'})
    assert stale.status_code == 200
    assert await body(stale) == WIDGET


async def test_the_versioned_widget_is_immutable_and_the_plain_one_short_lived(
    server: Server,
) -> None:
    plain = await get(server, "/widget.js")
    assert plain.headers["cache-control"] == "public, max-age=300"
    versioned = await get(server, f"/widget.{HASH}.js", **{"Accept-Encoding": "br"})
    assert versioned.status_code == 200
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert brotli.decompress(await body(versioned)) == WIDGET
    assert versioned.headers["access-control-allow-origin"] == "*"
    assert assets.widget_url() == f"/widget.{HASH}.js"
    # The front page names this release's address.
    front = await get(server, "/")
    assert f'href="/widget.{HASH}.js"' in (await body(front)).decode()
    # An old version's address leads to the current widget, not to a broken page.
    old = await get(server, "/widget.000000000000.js")
    assert old.status_code == 307
    assert old.headers["location"] == "/widget.js"


async def test_the_console_files_are_compressed_and_revalidated(server: Server) -> None:
    for path, kind in (
        ("/console", "text/html"),
        ("/console/static/console.js", "text/javascript"),
        ("/console/static/console.css", "text/css"),
        ("/console/static/i18n/nb.js", "text/javascript"),
        ("/console/static/favicon.svg", "image/svg+xml"),
    ):
        response = await get(server, path, **{"Accept-Encoding": "gzip, br"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        assert response.headers["content-encoding"] == "br", path
        assert response.headers["cache-control"] == "no-cache", path
        raw = brotli.decompress(await body(response))
        assert raw
        again = await get(
            server, path, **{"Accept-Encoding": "gzip, br", "If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304, path
    for path in ("/console/static/nothing.js", "/console/static/../assets.py", "/console/static/"):
        assert (await get(server, path)).status_code == 404, path
