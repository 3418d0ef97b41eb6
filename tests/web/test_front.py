"""The front door: ``/``, the favicon, and the API documentation at ``/api/docs``."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import Server, make_settings, running_server


async def test_the_front_page_links_everything_and_loads_nothing_from_elsewhere(
    server: Server,
) -> None:
    async with server.http() as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "http" not in csp  # no other origin, not even a CDN
    html = response.text
    links = set(re.findall(r'href="([^"]+)"', html))
    assert {"/console", "/api/docs", "/api/v1/openapi.json", "/healthz", "/readyz"} <= links
    assert {"/metrics", "/favicon.svg"} <= links
    assert "/demo" not in links  # not a demo server
    assert not re.search(r'(src|href)="(https?:)?//', html)
    # Every link on the page answers.
    async with server.http() as http:
        for link in links:
            assert (await http.get(link)).status_code == 200, link


async def test_a_demo_server_links_its_demo(tmp_path: Path) -> None:
    async with running_server(make_settings(tmp_path), demo=True) as server, server.http() as http:
        html = (await http.get("/")).text
        demo = await http.get("/demo")
    assert 'href="/demo"' in html
    assert 'rel="icon" href="/favicon.svg"' in demo.text


async def test_the_favicons(server: Server) -> None:
    async with server.http() as http:
        svg = await http.get("/favicon.svg")
        ico = await http.get("/favicon.ico")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    assert ico.status_code == 200
    assert ico.headers["content-type"] == "image/vnd.microsoft.icon"
    # An icon directory of one image, which is a PNG.
    assert ico.content[:6] == b"\x00\x00\x01\x00\x01\x00"
    assert ico.content[22:30] == b"\x89PNG\r\n\x1a\n"


async def test_the_api_documentation_is_swagger_ui_served_here(server: Server) -> None:
    async with server.http() as http:
        page = await http.get("/api/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'data-url="/api/v1/openapi.json"' in page.text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert (await http.get(source)).status_code == 200, source
        bundle = await http.get("/api/docs/swagger-ui-bundle.js")
        css = await http.get("/api/docs/swagger-ui.css")
        init = await http.get("/api/docs/init.js")
        # Only the files the page uses: not the package's example page nor its maps.
        for name in ("index.html", "swagger-initializer.js", "swagger-ui-bundle.js.map", "x"):
            assert (await http.get(f"/api/docs/{name}")).status_code == 404, name
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle.text
    assert css.headers["content-type"].startswith("text/css")
    assert "SwaggerUIBundle(" in init.text
