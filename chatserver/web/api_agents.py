"""``/api/v1/agents`` and ``/api/v1/tokens``: admins add, change and deactivate agents,
and create and revoke API tokens (each token is a bot agent of its own).

Deactivating an agent closes every socket of theirs at once, on every node;
their bearer tokens and console session stop working on the next request,
since both look the agent up each time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver import passwords
from chatserver.auth import hash_password, new_token, token_hash
from chatserver.clock import format_ts, uuid7
from chatserver.errors import Conflict, NotFound, Unauthorized
from chatserver.store.models import Agent
from chatserver.web.api import json_body, state_of
from chatserver.web.principal import require

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Role = Literal["agent", "admin", "compliance"]


class NewAgent(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Name
    # At least 10 characters and hard to guess (chatserver.passwords): weak_password else.
    password: Annotated[str, msgspec.Meta(max_length=1024)]
    role: Role = "agent"


class AgentChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


def agent_json(agent: Agent, online: bool, *, with_email: bool = True) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email if with_email else None,
        "name": agent.name,
        "role": agent.role,
        "kind": agent.kind,
        "active": agent.active,
        "online": online,
    }


async def list_agents(request: Request) -> Response:
    """Everyone, for transfers and the online list; emails only for admins."""
    state = state_of(request)
    caller = await require(request, "agent")
    admin = caller.role == "admin"
    online = set(state.hub.online_agents())
    agents = await state.store.list_agents()
    return JSONResponse(
        {
            "items": [agent_json(a, a.id in online, with_email=admin) for a in agents],
            "next_cursor": None,
        }
    )


async def add_agent(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    body: NewAgent = await json_body(request, NewAgent)
    email = body.email.strip().lower()
    await passwords.check_async(body.password, email=email, name=body.name)
    agent = await state.store.add_agent(
        agent_id=uuid7(),
        email=email,
        name=body.name,
        role=body.role,
        password_hash=await hash_password(body.password),
        now=state.hub.clock.now_us(),
    )
    return JSONResponse(agent_json(agent, False), status_code=201)


async def change_agent(request: Request) -> Response:
    state = state_of(request)
    me = await require(request, "admin")
    body: AgentChange = await json_body(request, AgentChange)
    agent_id = request.path_params["id"]
    if agent_id == me.id and (body.active is False or body.role not in (msgspec.UNSET, "admin")):
        raise Conflict("an admin cannot deactivate or demote themselves")
    if await state.store.agent(agent_id) is None:
        raise NotFound("no such agent")
    agent = await state.store.update_agent(
        agent_id,
        name=None if body.name is msgspec.UNSET else body.name,
        role=None if body.role is msgspec.UNSET else body.role,
        active=None if body.active is msgspec.UNSET else body.active,
    )
    if not agent.active or agent.role == "compliance":
        # Cut off at once: an open socket would otherwise outlive the change.
        state.hub.disconnect_agent(agent.id, Unauthorized("this agent was deactivated"))
    return JSONResponse(agent_json(agent, agent.id in state.hub.online_agents()))


class NewToken(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    role: Role = "agent"


def token_json(
    token_id: str, created_at: int, revoked_at: int | None, agent: Agent
) -> dict[str, Any]:
    return {
        "id": token_id,
        "agent": {"id": agent.id, "name": agent.name, "role": agent.role, "kind": agent.kind},
        "created_at": format_ts(created_at),
        "revoked_at": format_ts(revoked_at) if revoked_at else None,
    }


async def list_tokens(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    items = [token_json(*t) for t in await state.store.tokens()]
    return JSONResponse({"items": items, "next_cursor": None})


async def create_token(request: Request) -> Response:
    """A bot agent of that name and role, and its bearer token, shown this once."""
    state = state_of(request)
    await require(request, "admin")
    body: NewToken = await json_body(request, NewToken)
    now = state.hub.clock.now_us()
    bot = await state.store.add_agent(
        agent_id=uuid7(),
        email=None,
        name=body.name,
        role=body.role,
        password_hash=None,
        now=now,
        kind="bot",
    )
    token, token_id = new_token("cs"), uuid7()
    await state.store.create_api_token(token_id, token_hash(token), bot.id, now)
    return JSONResponse({**token_json(token_id, now, None, bot), "token": token}, status_code=201)


async def revoke_token(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    agent = await state.store.revoke_token(request.path_params["id"], state.hub.clock.now_us())
    if agent.kind == "bot":
        # A bot is its token: revoked, it is cut off like a deactivated agent.
        await state.store.update_agent(agent.id, active=False)
        state.hub.disconnect_agent(agent.id, Unauthorized("this token was revoked"))
    return Response(status_code=204)


routes = [
    Route("/tokens", list_tokens, methods=["GET"]),
    Route("/tokens", create_token, methods=["POST"]),
    Route("/tokens/{id}", revoke_token, methods=["DELETE"]),
    Route("/agents", list_agents, methods=["GET"]),
    Route("/agents", add_agent, methods=["POST"]),
    Route("/agents/{id}", change_agent, methods=["PATCH"]),
]
