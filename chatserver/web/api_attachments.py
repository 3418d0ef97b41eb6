"""``/api/v1`` attachments: upload (multipart, streamed), download, and CORS for the widget.

Agents authenticate as everywhere else (bearer token, or the console's cookie with its
CSRF token on uploads). A visitor sends ``Authorization: Visitor <visitor_token>``: the
token their ``welcome`` gave them. The widget runs on the operator's site, another
origin, so these paths answer CORS for the allowed origins (never with cookies).

Downloads are served so that no browser ever runs what is inside: the stored type
(found from the bytes) with ``nosniff``, a sandboxing CSP, and ``attachment``
disposition for everything but raster images.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatserver.attachments.names import content_disposition
from chatserver.attachments.service import Attachments, Party, owns
from chatserver.attachments.sniff import INLINE_TYPES
from chatserver.attachments.upload import OVERHEAD
from chatserver.auth import token_hash
from chatserver.errors import (
    ChatError,
    Forbidden,
    NotFound,
    Unauthorized,
    VerificationRequired,
)
from chatserver.store.models import AttachmentRef
from chatserver.web.api import state_of
from chatserver.web.principal import require
from chatserver.web.state import AppState

VISITOR_SCHEME = "visitor"
# The headers every download carries: nothing in a file is ever run or sniffed.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}


def service_of(request: Request) -> Attachments:
    return request.app.state.attachments  # type: ignore[no-any-return]


async def party_of(request: Request) -> Party:
    """The visitor behind ``Authorization: Visitor <token>``, or the agent (bearer, cookie)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == VISITOR_SCHEME:
        token = credentials.strip()
        store = state_of(request).store
        known = 0 < len(token) <= 8192
        visitor = await store.visitor_by_token_hash(token_hash(token)) if known else None
        if visitor is None:
            raise Unauthorized("unknown visitor token")
        return Party(role="visitor", id=visitor.id, account_id=visitor.account_id)
    agent = await require(request, "agent")
    return Party(role="agent", id=agent.id)


async def _visitor_may_store(state: AppState, party: Party) -> None:
    """A visitor's file is stored under the same conditions as their messages."""
    if state.settings.verified_only and party.account_id is None:
        raise VerificationRequired("this chat is for verified users: log in first")
    policy = await state.store.current_policy()
    if policy is not None and not await state.store.has_consent(
        policy.version, party.id, party.account_id
    ):
        # P9: nothing of the visitor's is stored before the current notice is accepted.
        raise Forbidden(f"accept privacy notice version {policy.version} first")


def _ref_json(ref: AttachmentRef) -> dict[str, Any]:
    return {"id": ref.id, "name": ref.name, "size": ref.size, "type": ref.type}


async def _drain(chunks: AsyncIterator[bytes], limit: int) -> None:
    """Read what is left of a refused upload (up to ``limit`` bytes) before answering:
    a client still sending when the connection closes may never read the answer."""
    read = 0
    try:
        async for chunk in chunks:
            read += len(chunk)
            if read > limit:
                return
    except Exception:  # the client went away: nobody is left to answer
        return


async def _upload(request: Request, conversation_id: str | None) -> Response:
    state = state_of(request)
    service = service_of(request)
    chunks = request.stream()
    try:
        party = await party_of(request)
        if conversation_id is None:
            if party.role != "visitor":
                raise Forbidden("agents attach files to a conversation: POST to its attachments")
        else:
            conversation = await state.store.conversation(conversation_id)
            if conversation is None or (party.role == "visitor" and not owns(party, conversation)):
                raise NotFound("no such conversation")
        if party.role == "visitor":
            await _visitor_may_store(state, party)
        ref = await service.upload(
            party,
            conversation_id,
            chunks,
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
        )
    except ChatError:
        # Up to twice the largest upload: a client sending a little too much still reads
        # its 413; one sending far too much has the connection closed on it instead.
        await _drain(chunks, 2 * (int(state.settings.attachment_max_bytes) + OVERHEAD))
        raise
    return JSONResponse(_ref_json(ref), status_code=201)


async def upload_to_conversation(request: Request) -> Response:
    return await _upload(request, request.path_params["id"])


async def upload_first(request: Request) -> Response:
    """A visitor's file for the message that will start their conversation."""
    return await _upload(request, None)


async def download(request: Request) -> Response:
    service = service_of(request)
    try:
        party = await party_of(request)
    except ChatError:
        # Whoever may not see it learns nothing, not even that it exists.
        raise NotFound("no such attachment") from None
    attachment = await service.for_download(party, request.path_params["id"])
    chunks = await service.open(attachment)
    inline = attachment.type in INLINE_TYPES and "download" not in request.query_params
    return StreamingResponse(
        chunks,
        media_type=attachment.type,
        headers={
            **DOWNLOAD_HEADERS,
            "Content-Length": str(attachment.size),
            "Content-Disposition": content_disposition(attachment.name, inline=inline),
        },
    )


routes = [
    Route("/conversations/{id}/attachments", upload_to_conversation, methods=["POST"]),
    Route("/attachments", upload_first, methods=["POST"]),
    Route("/attachments/{id}", download, methods=["GET"]),
]


_CORS_PATHS = re.compile(r"^/api/v1/(?:attachments(?:/[^/]+)?|conversations/[^/]+/attachments)$")


class AttachmentCors:
    """CORS for the attachment paths, for the widget on the operator's pages.

    Only origins allowed to open the visitor socket get an answer a browser accepts, and
    never with credentials: cookies stay same-origin, visitors use their token header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _CORS_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and _allows(scope, origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if not allowed:
                refused = JSONResponse(
                    {"error": {"code": "forbidden", "message": "origin not allowed"}},
                    status_code=403,
                )
                await refused(scope, receive, send)
                return
            assert origin is not None
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
            await preflight(scope, receive, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return
        assert origin is not None

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Expose-Headers"] = "Content-Disposition, Content-Length"
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _allows(scope: Scope, origin: str) -> bool:
    state = getattr(scope["app"].state, "chat", None)
    return state is not None and state.hub.origins.allows(origin)
