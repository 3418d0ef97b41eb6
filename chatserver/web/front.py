"""The front door: ``/`` (links to everything a visitor of the server itself may want),
the favicon, and the API documentation at ``/api/docs`` (Swagger UI, from the
``swagger-ui-bundle`` package's own folder: nothing from a CDN)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from chatserver import __version__
from chatserver.web.assets import STATIC, directory, widget_url

FAVICON_SVG = (STATIC / "favicon.svg").read_bytes()

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "li{margin:.25rem 0}code{background:#f2f2f2;padding:0 .25rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# The page loads nothing from elsewhere: only its own origin, and its one inline style.
FRONT_CSP = (
    f"default-src 'self'; style-src 'self' 'sha256-{_STYLE_HASH}'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Swagger UI draws with inline styles and data: images; its script is a file of ours.
DOCS_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

FRONT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatserver</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>{style}</style>
</head>
<body>
<h1>chatserver <small>{version}</small></h1>
<p>A self-hosted live support chat server.</p>
<ul>
{demo}<li><a href="/console">Agent console</a>: where agents answer chats</li>
<li>The widget: <code>&lt;script src="/widget.js" data-site="…" async&gt;&lt;/script&gt;</code>
(this release, cached for a year: <a href="{widget}"><code>{widget}</code></a>)</li>
<li><a href="/api/docs">API documentation</a> (the OpenAPI document:
<a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a>)</li>
<li><a href="/healthz"><code>/healthz</code></a>: the process answers</li>
<li><a href="/readyz"><code>/readyz</code></a>: the store and broker answer</li>
<li><a href="/metrics"><code>/metrics</code></a>: Prometheus metrics</li>
</ul>
</body>
</html>
"""
DEMO_LINK = '<li><a href="/demo">Demo</a>: a host page with the chat widget</li>\n'

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatserver API</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-url="/api/v1/openapi.json"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
"""
DOCS_INIT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
"""
# The few files of the package that the page above uses (not its example pages or maps).
SWAGGER_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}


def swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return directory(swagger_ui_path)


# /favicon.ico: what browsers fetch by themselves; the same speech bubble as a PNG in an
# .ico, drawn once and shipped as a file.
FAVICON_ICO = (STATIC / "favicon.ico").read_bytes()
_ICON_HEADERS = {"Cache-Control": "public, max-age=86400"}


async def _favicon_svg(request: Request) -> Response:
    return Response(FAVICON_SVG, media_type="image/svg+xml", headers=_ICON_HEADERS)


async def _favicon_ico(request: Request) -> Response:
    return Response(FAVICON_ICO, media_type="image/vnd.microsoft.icon", headers=_ICON_HEADERS)


async def _docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE, headers={"Content-Security-Policy": DOCS_CSP})


async def _docs_init(request: Request) -> Response:
    return Response(DOCS_INIT, media_type="text/javascript; charset=utf-8")


async def _docs_file(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = SWAGGER_FILES.get(name)
    if media_type is None:
        raise HTTPException(404)
    return FileResponse(
        swagger_ui_dir() / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )


def routes(*, demo: bool) -> list[Any]:
    # Made once: the widget's version is fixed for the life of the process (assets.routes).
    html = FRONT_PAGE.format(
        style=STYLE, version=__version__, demo=DEMO_LINK if demo else "", widget=widget_url()
    )

    async def front(request: Request) -> Response:
        return HTMLResponse(html, headers={"Content-Security-Policy": FRONT_CSP})

    return [
        Route("/", front, methods=["GET"]),
        Route("/favicon.svg", _favicon_svg, methods=["GET"]),
        Route("/favicon.ico", _favicon_ico, methods=["GET"]),
        Route("/api/docs", _docs, methods=["GET"]),
        Route("/api/docs/init.js", _docs_init, methods=["GET"]),
        Route("/api/docs/{name}", _docs_file, methods=["GET"]),
    ]
