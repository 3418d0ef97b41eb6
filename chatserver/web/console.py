"""The console's sign-in: ``/console/login``, ``/console/logout``, ``/console/me``,
``/console/password``, and each agent's ``/console/preferences``."""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver import passwords, preferences
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
from chatserver.validation import invalid_body
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
    except msgspec.ValidationError as exc:
        raise invalid_body(exc, Login) from None
    except msgspec.DecodeError:
        raise BadRequest("send JSON {email, password}") from None
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
    return await signed_in(request, found[0])


async def signed_in(request: Request, agent: Agent) -> JSONResponse:
    """The answer of a sign-in: the agent and their preferences, with the session and
    CSRF cookies set (also after accepting an invitation)."""
    state: AppState = request.app.state.chat
    session = make_session(state.secret_key, agent.id)
    response = JSONResponse(await me_json(state, agent))
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
    # At least 10 characters and hard to guess (chatserver.passwords): weak_password else.
    new: Annotated[str, msgspec.Meta(max_length=1024)]


async def change_password(request: Request) -> Response:
    """A signed-in agent changes their own password, proving the current one."""
    state: AppState = request.app.state.chat
    agent = await authenticate(request)
    body: PasswordChange = await json_body(request, PasswordChange)
    found = await state.store.agent_credentials(agent.email or "")
    if found is None or not found[1] or not await verify_password(found[1], body.current):
        raise Forbidden("the current password is wrong")
    await passwords.check_async(body.new, email=agent.email, name=agent.name, field="new")
    await state.store.update_agent(agent.id, password_hash=await hash_password(body.new))
    return Response(status_code=204)


async def logout(request: Request) -> Response:
    await authenticate(request)
    response = JSONResponse({"status": "signed out"})
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


async def me_json(state: AppState, agent: Agent) -> dict[str, Any]:
    prefs = await preferences.load(state.store, agent.id)
    return {"agent": agent_json(agent), "preferences": preferences.preferences_json(prefs)}


async def me(request: Request) -> Response:
    state: AppState = request.app.state.chat
    return JSONResponse(await me_json(state, await authenticate(request)))


async def get_preferences(request: Request) -> Response:
    """The calling agent's own preferences (session or bearer token)."""
    state: AppState = request.app.state.chat
    agent = await authenticate(request)
    prefs = await preferences.load(state.store, agent.id)
    return JSONResponse(preferences.preferences_json(prefs))


async def put_preferences(request: Request) -> Response:
    """Replace the calling agent's preferences; fields left out take their defaults."""
    state: AppState = request.app.state.chat
    agent = await authenticate(request)
    body: preferences.Preferences = await json_body(request, preferences.Preferences)
    saved = await preferences.save(state.store, agent.id, body)
    return JSONResponse(preferences.preferences_json(saved))


routes = [
    Route("/console/login", login, methods=["POST"]),
    Route("/console/logout", logout, methods=["POST"]),
    Route("/console/me", me, methods=["GET"]),
    Route("/console/password", change_password, methods=["POST"]),
    Route("/console/preferences", get_preferences, methods=["GET"]),
    Route("/console/preferences", put_preferences, methods=["PUT"]),
]
