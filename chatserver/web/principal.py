"""Who is calling: an agent (or bot) from ``Authorization: Bearer <api token>``."""

from __future__ import annotations

from starlette.datastructures import Headers

from chatserver.auth import may, token_hash
from chatserver.errors import Forbidden, Unauthorized
from chatserver.store.base import Store
from chatserver.store.models import Agent


def bearer_of(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def authenticate(store: Store, headers: Headers) -> Agent:
    """The active agent behind the request's bearer token, or ``Unauthorized``."""
    token = bearer_of(headers)
    if token is None:
        raise Unauthorized("an Authorization: Bearer <api token> header is required")
    if len(token) > 512:
        raise Unauthorized("unknown or revoked token")
    found = await store.token(token_hash(token))
    if found is None or not found.agent.active:
        raise Unauthorized("unknown or revoked token")
    return found.agent


async def require(store: Store, headers: Headers, role: str) -> Agent:
    """The caller, if their role grants ``role``; else ``Unauthorized`` or ``Forbidden``."""
    agent = await authenticate(store, headers)
    if not may(agent.role, role):
        raise Forbidden(f"this needs the {role} role")
    return agent
