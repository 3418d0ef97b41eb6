"""The two socket endpoints: check the upgrade, then pump frames between socket and session.

The endpoints are plain ASGI callables (not Starlette function endpoints) so
that outgoing frames go straight to the server's ``send``: this is the path
every message takes, twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver.errors import CLOSE_NORMAL, CLOSE_POLICY, BadFrame, BadRequest, ChatError, Forbidden
from chatserver.hub.hub import error_frame
from chatserver.hub.session import AgentSession, VisitorSession, _Session
from chatserver.web.errors import error_response
from chatserver.web.principal import require
from chatserver.web.state import AppState


class _SocketTransport:
    """Writes a peer's frames to one accepted socket."""

    __slots__ = ("_send", "_ws")

    def __init__(self, ws: WebSocket, send: Send) -> None:
        self._ws = ws
        self._send = send

    async def send_frames(self, frames: list[str]) -> None:
        send = self._send
        for frame in frames:
            await send({"type": "websocket.send", "text": frame})

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close(code=code, reason=reason)


async def _refuse(ws: WebSocket, error: ChatError) -> None:
    """Refuse the upgrade with an HTTP error body (falls back to a bare 403)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error_response(error))
    else:
        await ws.close(code=CLOSE_POLICY)


class VisitorEndpoint:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        state: AppState = ws.app.state.chat
        origin = ws.headers.get("origin")
        if not state.hub.origins.allows(origin):
            await _refuse(ws, Forbidden(f"origin {origin!r} may not open the visitor socket"))
            return
        await ws.accept()
        client = ws.client
        session = VisitorSession(
            state.hub,
            state.settings,
            ip=client.host if client else None,
            user_agent=ws.headers.get("user-agent", ""),
        )
        await _pump(receive, send, ws, session, hello_timeout=state.settings.hello_timeout)


class AgentEndpoint:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        state: AppState = ws.app.state.chat
        try:
            agent = await require(ws, "agent", socket=True)
        except ChatError as exc:
            await _refuse(ws, exc)
            return
        await ws.accept()
        session = AgentSession(state.hub, state.settings, agent)
        await _pump(receive, send, ws, session, hello_timeout=None)


async def _pump(
    receive: Receive,
    send: Send,
    ws: WebSocket,
    session: _Session,
    *,
    hello_timeout: float | None,
) -> None:
    """Hand each received frame to the session until either side ends the socket.

    Frames are read with the server's own ``receive`` (the socket is accepted
    and only this loop reads it), skipping Starlette's per-call state checks.
    """
    peer = session.peer
    peer.connect(_SocketTransport(ws, send))
    try:
        if hello_timeout is not None and not await _until_hello(receive, session, hello_timeout):
            return
        while peer.closing is None:
            if not await _one(receive, session):
                break
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-receive
    finally:
        session.closed()
        peer.close(CLOSE_NORMAL, "bye")
        await peer.finished()


async def _until_hello(receive: Receive, session: _Session, seconds: float) -> bool:
    """Handle frames until the session said hello; False if time ran out or the client left."""
    peer = session.peer
    try:
        async with asyncio.timeout(seconds):
            while not getattr(session, "ready", True) and peer.closing is None:
                if not await _one(receive, session):
                    return False
    except TimeoutError:
        peer.send(error_frame(BadRequest(f"send hello within {seconds:g} s")))
        peer.close(CLOSE_POLICY, "no hello")
        return False
    return True


async def _one(receive: Receive, session: _Session) -> bool:
    """Receive and handle one frame; False when the client has gone."""
    message: dict[str, Any] = await receive()  # type: ignore[assignment]
    if message["type"] == "websocket.disconnect":
        return False
    text = message.get("text")
    if text is None:
        # Binary frames are not part of the protocol; answer like any bad frame.
        await session.handle_bad(BadFrame("frames are JSON text, not binary"))
    else:
        await session.handle(text)
    return True
