"""The link in a transcript confirmation email: ``/mail/confirm``.

Opening the link (GET) shows a page with one button; the transcript is sent when
the button is pressed (POST). Mail systems and virus scanners open links in
incoming mail by themselves, and a GET that sent the transcript would send it to
a mistyped address that nobody there ever asked for.

Answers are HTML pages in the language of the request: 200 (the button, or
"on its way"), 404 (unknown link), 410 (expired), 409 (already used). The page's
``<main data-state>`` says which: ``ask``, ``sent``, ``invalid``, ``expired``,
``used``.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from chatserver.mail.render import Renderer, pick_locale
from chatserver.mail.service import LinkRefused, Mail

PATH = "/mail/confirm"
MAX_FORM_BYTES = 4096
STATUS = {"ask": 200, "sent": 200, "invalid": 404, "expired": 410, "used": 409}
# The token is in the address: no referrer, no cache, no robots; the page loads nothing.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_fallback = Renderer()


def _mail(request: Request) -> Mail | None:
    return request.app.state.chat.hub.mail  # type: ignore[no-any-return]


def _page(request: Request, state: str, locale: str | None, **context: str) -> Response:
    if locale is None:
        # An unknown link has no language of its own: the browser's first choice.
        first = request.headers.get("accept-language", "").split(",")[0].split(";")[0]
        locale = pick_locale(first)
    mail = _mail(request)
    renderer = mail.renderer if mail is not None else _fallback
    html = renderer.page(locale, state=state, action=PATH, **context)
    return HTMLResponse(html, status_code=STATUS[state], headers=HEADERS)


async def _form_token(request: Request) -> str:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return ""
    try:
        values = parse_qs(body.decode("ascii"), max_num_fields=5)
    except (UnicodeDecodeError, ValueError):
        return ""
    tokens = values.get("token", [])
    return tokens[0] if len(tokens) == 1 else ""


async def confirm_page(request: Request) -> Response:
    mail = _mail(request)
    token = request.query_params.get("token", "")
    if mail is None:
        return _page(request, "invalid", None)
    try:
        c = await mail.check_link(token)
    except LinkRefused as refused:
        return _page(request, refused.state, refused.locale)
    return _page(request, "ask", c.locale, token=token)


async def confirm(request: Request) -> Response:
    mail = _mail(request)
    token = await _form_token(request)
    if mail is None:
        return _page(request, "invalid", None)
    try:
        c = await mail.confirm(token)
    except LinkRefused as refused:
        return _page(request, refused.state, refused.locale)
    return _page(request, "sent", c.locale)


routes = [
    Route(PATH, confirm_page, methods=["GET"]),
    Route(PATH, confirm, methods=["POST"]),
]
