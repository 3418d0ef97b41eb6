"""The console's sign-in: ``/console/login``, ``/console/logout``, ``/console/me``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.auth import hash_password, verify_password
from chatserver.errors import BadRequest, Unauthorized
from chatserver.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    csrf_token,
    make_session,
)
from chatserver.store.models import Agent
from chatserver.web.principal import authenticate
from chatserver.web.state import AppState


class Login(msgspec.Struct):
    email: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


def agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "role": agent.role, "email": agent.email}


async def login(request: Request) -> Response:
    state: AppState = request.app.state.chat
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > 4096:
            raise BadRequest("the sign-in body is too large")
    try:
        body = msgspec.json.decode(raw, type=Login)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"send JSON {{email, password}}: {exc}") from None
    found = await state.store.agent_credentials(body.email.strip().lower())
    if found is None or not found[1]:
        # Hash anyway: the answer takes as long as for a known email, so emails
        # cannot be probed by timing.
        await hash_password(body.password)
        raise Unauthorized("wrong email or password")
    ok = await verify_password(found[1], body.password)
    if not ok or not found[0].active or found[0].kind != "human":
        raise Unauthorized("wrong email or password")
    agent = found[0]
    session = make_session(state.secret_key, agent.id)
    response = JSONResponse({"agent": agent_json(agent)})
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token(state.secret_key, session),
        max_age=SESSION_SECONDS,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    await authenticate(request)
    response = JSONResponse({"status": "signed out"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


async def me(request: Request) -> Response:
    return JSONResponse({"agent": agent_json(await authenticate(request))})


routes = [
    Route("/console/login", login, methods=["POST"]),
    Route("/console/logout", logout, methods=["POST"]),
    Route("/console/me", me, methods=["GET"]),
]
