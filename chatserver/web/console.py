"""The console's sign-in: ``/console/login``, ``/console/logout``, ``/console/me``."""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.auth import hash_password, verify_password
from chatserver.errors import BadRequest, Forbidden, RateLimited, Unauthorized
from chatserver.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    csrf_token,
    make_session,
)
from chatserver.store.models import Agent
from chatserver.web.api import json_body, read_body
from chatserver.web.principal import authenticate
from chatserver.web.state import AppState


class Login(msgspec.Struct):
    email: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


def agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "role": agent.role, "email": agent.email}


async def login(request: Request) -> Response:
    state: AppState = request.app.state.chat
    raw = await read_body(request, 4096, BadRequest("the sign-in body is too large"))
    try:
        body = msgspec.json.decode(raw, type=Login)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"send JSON {{email, password}}: {exc}") from None
    email = body.email.strip().lower()
    wait = await state.lockout.wait_seconds(email)
    if wait > 0:
        raise RateLimited(
            f"too many failed sign-ins: try again in {ceil(wait)} s", retry_after=ceil(wait)
        )
    found = await state.store.agent_credentials(email)
    if found is None or not found[1]:
        # Hash anyway: the answer takes as long as for a known email, so emails
        # cannot be probed by timing.
        await hash_password(body.password)
        await state.lockout.failed(email)
        raise Unauthorized("wrong email or password")
    ok = await verify_password(found[1], body.password)
    if not ok or not found[0].active or found[0].kind != "human":
        await state.lockout.failed(email)
        raise Unauthorized("wrong email or password")
    await state.lockout.succeeded(email)
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


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    new: Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]


async def change_password(request: Request) -> Response:
    """A signed-in agent changes their own password, proving the current one."""
    state: AppState = request.app.state.chat
    agent = await authenticate(request)
    body: PasswordChange = await json_body(request, PasswordChange)
    found = await state.store.agent_credentials(agent.email or "")
    if found is None or not found[1] or not await verify_password(found[1], body.current):
        raise Forbidden("the current password is wrong")
    await state.store.update_agent(agent.id, password_hash=await hash_password(body.new))
    return Response(status_code=204)


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
    Route("/console/password", change_password, methods=["POST"]),
]
