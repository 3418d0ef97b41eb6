"""Who is calling: an agent from a bearer token, or from the console's session cookie.

Cookie-authenticated writes must carry the CSRF token; cookie-authenticated
sockets must come from this server's own origin (no cross-site socket hijack).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from chatserver.auth import may, token_hash
from chatserver.errors import Forbidden, Unauthorized
from chatserver.sessions import CSRF_HEADER, SESSION_COOKIE, csrf_ok, read_session
from chatserver.store.models import Agent
from chatserver.web.state import AppState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_of(conn: HTTPConnection) -> str | None:
    value = conn.headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def same_origin(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() == conn.headers.get("host", "").lower()


async def authenticate(conn: HTTPConnection, *, socket: bool = False) -> Agent:
    """The active agent behind the bearer token or session cookie, or ``Unauthorized``."""
    state: AppState = conn.app.state.chat
    token = bearer_of(conn)
    if token is not None:
        found = await state.store.token(token_hash(token)) if len(token) <= 512 else None
        if found is None or not found.agent.active:
            raise Unauthorized("unknown or revoked token")
        return found.agent
    cookie = conn.cookies.get(SESSION_COOKIE)
    agent_id = read_session(state.secret_key, cookie)
    if agent_id is None or cookie is None:
        raise Unauthorized("sign in, or send an Authorization: Bearer <api token> header")
    if socket and not same_origin(conn):
        raise Forbidden("the console's socket must come from the console's own origin")
    writes = not socket and conn.scope.get("method") not in SAFE_METHODS
    if writes and not csrf_ok(state.secret_key, cookie, conn.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or wrong X-CSRF-Token header")
    agent = await state.store.agent(agent_id)
    if agent is None or not agent.active:
        raise Unauthorized("this agent is no longer active")
    return agent


async def require(conn: HTTPConnection, role: str, *, socket: bool = False) -> Agent:
    """The caller, if their role grants ``role``; else ``Unauthorized`` or ``Forbidden``."""
    agent = await authenticate(conn, socket=socket)
    if not may(agent.role, role):
        raise Forbidden(f"this needs the {role} role")
    return agent
