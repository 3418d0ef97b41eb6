"""The widget script, the agent console and the demo host page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parent.parent.parent
WIDGET_DIR = ROOT / "widget"
CONSOLE_DIR = ROOT / "agent_console"

DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatserver demo: a customer's web page</title>
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


async def widget_js(request: Request) -> Response:
    return FileResponse(
        WIDGET_DIR / "widget.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


def routes(*, demo: bool) -> list[Any]:
    result: list[Any] = [
        Route("/widget.js", widget_js, methods=["GET"]),
        Route("/console", _console, methods=["GET"]),
        Mount("/console/static", app=StaticFiles(directory=CONSOLE_DIR / "static"), name="console"),
    ]
    if demo:
        result.append(Route("/demo", _demo, methods=["GET"]))
        result.append(Route("/demo/privacy", _demo_privacy, methods=["GET"]))
        result.append(Route("/demo/identity", _demo_identity, methods=["POST"]))
    return result


async def _console(request: Request) -> Response:
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html")


DEMO_PRIVACY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Privacy notice (demo)</title></head>
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
