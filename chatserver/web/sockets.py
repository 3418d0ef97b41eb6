"""The two socket endpoints: check the upgrade, then pump frames between socket and session."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from chatserver.errors import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    BadFrame,
    BadRequest,
    ChatError,
    Forbidden,
)
from chatserver.hub.hub import error_frame
from chatserver.hub.peer import Peer
from chatserver.hub.session import AgentSession, VisitorSession, _Session
from chatserver.web.errors import error_response
from chatserver.web.principal import require
from chatserver.web.state import AppState


async def _refuse(ws: WebSocket, error: ChatError) -> None:
    """Refuse the upgrade with an HTTP error body (falls back to a bare 403)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error_response(error))
    else:
        await ws.close(code=CLOSE_POLICY)


async def visitor_socket(ws: WebSocket) -> None:
    state: AppState = ws.app.state.chat
    origin = ws.headers.get("origin")
    if origin is None or origin not in state.allowed_origins:
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
    await _pump(ws, session, hello_timeout=state.settings.hello_timeout)


async def agent_socket(ws: WebSocket) -> None:
    state: AppState = ws.app.state.chat
    try:
        agent = await require(ws, "agent", socket=True)
    except ChatError as exc:
        await _refuse(ws, exc)
        return
    await ws.accept()
    await _pump(ws, AgentSession(state.hub, state.settings, agent), hello_timeout=None)


async def _pump(ws: WebSocket, session: _Session, *, hello_timeout: float | None) -> None:
    peer = session.peer
    writer = asyncio.create_task(_write(ws, peer))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hello_timeout if hello_timeout is not None else None
    try:
        while peer.closing is None:
            receive = ws.receive()
            if deadline is not None and not getattr(session, "ready", True):
                try:
                    message = await asyncio.wait_for(receive, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    peer.send(error_frame(BadRequest(f"send hello within {hello_timeout:g} s")))
                    peer.close(CLOSE_POLICY, "no hello")
                    break
            else:
                message = await receive
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                # Binary frames are not part of the protocol; answer like any bad frame.
                await session.handle_bad(BadFrame("frames are JSON text, not binary"))
                continue
            await session.handle(text)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away mid-receive
    finally:
        session.closed()
        peer.close(CLOSE_NORMAL, "bye")
        with contextlib.suppress(Exception):
            await writer


async def _write(ws: WebSocket, peer: Peer) -> None:
    try:
        while True:
            frames = await peer.next_frames()
            if not frames:
                break
            for frame in frames:
                await ws.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    if peer.closing is not None:
        code, reason = peer.closing
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=reason)
