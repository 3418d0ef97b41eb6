"""The widget script, the agent console and the demo host page.

They ship inside the package (``chatserver/web/static/``) and are found with
``importlib.resources``, so an installed wheel serves them as a checkout does.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from chatserver.web import compressed

STATIC: Traversable = files("chatserver.web") / "static"
WIDGET_DIR = STATIC / "widget"
CONSOLE_DIR = STATIC / "console"


def directory(resource: Traversable) -> Path:
    """A resource folder as a path on disk (what StaticFiles and FileResponse need).

    Every way this package is installed (wheel, sdist, editable) unpacks it on
    disk; a zipped install would have to be extracted first, and is refused here.
    """
    if not isinstance(resource, Path) or not resource.is_dir():
        raise RuntimeError(f"chatserver's static files are not on disk: {resource}")
    return resource

DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatserver demo: a customer's web page</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem;
         margin: 3rem auto; padding: 0 1rem; }
  code { background: #f2f2f2; padding: 0 .25rem; }
</style>
</head>
<body>
<h1>Example Company</h1>
<p>This is a plain host page with the chat widget embedded exactly as a customer would:</p>
<pre><code>&lt;script src="/widget.js" data-site="{site}" async&gt;&lt;/script&gt;</code></pre>
<p>Open the chat with the button in the corner. Agents answer in the
<a href="/console">console</a>.</p>
<h2>Logged in on the platform</h2>
<p>A real platform's backend signs an identity token for its logged-in user (verified
with BankID, say) and the page hands it to the widget. Here the demo server signs one
for a made-up person; chats you had before signing in are merged into the account.</p>
<p><button type="button" id="demo-sign-in">Sign in as Kari Nordmann (demo BankID)</button>
<button type="button" id="demo-sign-out">Sign out</button>
<span id="demo-who" role="status"></span></p>
<script>
  document.getElementById("demo-sign-in").onclick = async function () {
    const r = await fetch("/demo/identity", { method: "POST" });
    const { token, name } = await r.json();
    window.ChatWidget.identify(token);
    document.getElementById("demo-who").textContent = "Signed in as " + name;
  };
  document.getElementById("demo-sign-out").onclick = function () {
    window.ChatWidget.logout();
    document.getElementById("demo-who").textContent = "Signed out";
  };
</script>
<script src="/widget.js" data-site="{site}" async></script>
</body>
</html>
"""


# /widget.js is what customers embed: short-cached, so a new release reaches their pages
# within minutes. /widget.<hash>.js names one version and never changes.
WIDGET_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
SHORT_CACHE = "public, max-age=300"
IMMUTABLE = "public, max-age=31536000, immutable"


def widget() -> compressed.Asset:
    """The widget script, compressed (once per process, again only if the file changed)."""
    return compressed.load(directory(WIDGET_DIR) / "widget.js")


def widget_url() -> str:
    """The versioned address of the widget: ``/widget.<hash>.js``."""
    return f"/widget.{widget().short_hash}.js"


def routes(*, demo: bool) -> list[Any]:
    script = widget()  # compressed now, at start-up, not on the first request
    console = directory(CONSOLE_DIR)
    index = compressed.load(console / "index.html")

    async def widget_js(request: Request) -> Response:
        return script.response(request, {**WIDGET_HEADERS, "Cache-Control": SHORT_CACHE})

    async def versioned_widget_js(request: Request) -> Response:
        if request.path_params["digest"] != script.short_hash:
            # An older (or unknown) version: the current one, not a broken page.
            return RedirectResponse("/widget.js", status_code=307, headers=WIDGET_HEADERS)
        return script.response(request, {**WIDGET_HEADERS, "Cache-Control": IMMUTABLE})

    async def console_page(request: Request) -> Response:
        return index.response(request, {"Cache-Control": "no-cache"})

    result: list[Any] = [
        Route("/widget.js", widget_js, methods=["GET"]),
        Route("/widget.{digest}.js", versioned_widget_js, methods=["GET"]),
        Route("/console", console_page, methods=["GET"]),
        Mount("/console/static", app=compressed.Folder(console / "static"), name="console"),
    ]
    if demo:
        result.append(Route("/demo", _demo, methods=["GET"]))
        result.append(Route("/demo/privacy", _demo_privacy, methods=["GET"]))
        result.append(Route("/demo/identity", _demo_identity, methods=["POST"]))
    return result


DEMO_PRIVACY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Privacy notice (demo)</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml"></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto">
<h1>Privacy notice, version 2019-06-01 (demo)</h1>
<p>This stands in for the operator's own privacy statement. The chat keeps the
time and text of each message, the parties' names and contact details, and
technical data about your visit (IP address, device, browser, pages), for as
long as the retention rules allow. You can ask for a copy of your data, have
it corrected, or have it erased.</p>
</body></html>
"""


async def _demo_privacy(request: Request) -> Response:
    return HTMLResponse(DEMO_PRIVACY)


async def _demo(request: Request) -> Response:
    site = request.app.state.chat.settings.site_id
    return HTMLResponse(DEMO_PAGE.replace("{site}", site))


DEMO_PERSON = {
    "sub": "demo-kari",
    "name": "Kari Nordmann",
    "email": "kari.nordmann@example.com",
    "phone": "+47 400 00 000",
    "idp": "bankid-demo",
}


async def _demo_identity(request: Request) -> Response:
    """What the operator's platform backend does for its logged-in user, for the demo only."""
    import time

    import jwt

    settings = request.app.state.chat.settings
    if not settings.identity_secret:
        return JSONResponse(
            {"error": {"code": "unavailable", "message": "no identity_secret set"}},
            status_code=503,
        )
    now = int(time.time())
    claims = {**DEMO_PERSON, "aud": settings.site_id, "iat": now, "exp": now + 600}
    token = jwt.encode(claims, settings.identity_secret, algorithm="HS256")
    return JSONResponse({"token": token, "name": DEMO_PERSON["name"]})
