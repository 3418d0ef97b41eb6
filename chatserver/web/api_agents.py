"""``/api/v1/agents``: admins add, change and deactivate agents.

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

from chatserver.auth import hash_password
from chatserver.clock import uuid7
from chatserver.errors import Conflict, NotFound, Unauthorized
from chatserver.store.models import Agent
from chatserver.web.api import json_body, state_of
from chatserver.web.principal import require

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Role = Literal["agent", "admin", "compliance"]


class NewAgent(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Name
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
    role: Role = "agent"


class AgentChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


def agent_json(agent: Agent, online: bool) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role,
        "kind": agent.kind,
        "active": agent.active,
        "online": online,
    }


async def list_agents(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    online = set(state.hub.online_agents())
    agents = await state.store.list_agents()
    return JSONResponse(
        {"items": [agent_json(a, a.id in online) for a in agents], "next_cursor": None}
    )


async def add_agent(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    body: NewAgent = await json_body(request, NewAgent)
    agent = await state.store.add_agent(
        agent_id=uuid7(),
        email=body.email.strip().lower(),
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


routes = [
    Route("/agents", list_agents, methods=["GET"]),
    Route("/agents", add_agent, methods=["POST"]),
    Route("/agents/{id}", change_agent, methods=["PATCH"]),
]
