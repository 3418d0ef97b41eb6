"""Admin endpoints: canned responses (agents read them), privacy policy versions (P9), and
the web origins allowed to embed the widget.

Publishing a policy version makes it the current one at once: every visitor's
next ``welcome`` says ``accepted: false`` until they accept it, so the widget
shows the notice again once.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.clock import format_ts, uuid7
from chatserver.errors import NotFound
from chatserver.origins import normalise_origin
from chatserver.privacy.service import Actor
from chatserver.store.models import CannedResponse, Policy
from chatserver.web.api import json_body, state_of
from chatserver.web.principal import require

Shortcut = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]


class CannedIn(msgspec.Struct, forbid_unknown_fields=True):
    shortcut: Shortcut
    body: Text


class PolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


def canned_json(c: CannedResponse) -> dict[str, Any]:
    return {
        "id": c.id,
        "shortcut": c.shortcut,
        "body": c.body,
        "updated_at": format_ts(c.updated_at),
    }


def policy_json(p: Policy, current: bool) -> dict[str, Any]:
    return {
        "version": p.version,
        "url": p.url,
        "published_at": format_ts(p.published_at),
        "current": current,
    }


async def list_canned(request: Request) -> Response:
    state = state_of(request)
    await require(request, "agent")
    items = await state.store.canned_responses()
    return JSONResponse({"items": [canned_json(c) for c in items], "next_cursor": None})


async def add_canned(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    body: CannedIn = await json_body(request, CannedIn)
    saved = await state.store.save_canned_response(
        uuid7(), body.shortcut, body.body, state.hub.clock.now_us(), create=True
    )
    return JSONResponse(canned_json(saved), status_code=201)


async def change_canned(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    body: CannedIn = await json_body(request, CannedIn)
    saved = await state.store.save_canned_response(
        request.path_params["id"], body.shortcut, body.body, state.hub.clock.now_us(), create=False
    )
    return JSONResponse(canned_json(saved))


async def delete_canned(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    await state.store.delete_canned_response(request.path_params["id"])
    return Response(status_code=204)


async def list_policies(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    items = await state.store.policies()
    return JSONResponse(
        {"items": [policy_json(p, i == 0) for i, p in enumerate(items)], "next_cursor": None}
    )


async def publish_policy(request: Request) -> Response:
    state = state_of(request)
    agent = await require(request, "admin")
    body: PolicyIn = await json_body(request, PolicyIn)
    policy = await state.privacy.publish_policy(Actor(agent.role, agent.id), body.version, body.url)
    return JSONResponse(policy_json(policy, True), status_code=201)


class OriginIn(msgspec.Struct, forbid_unknown_fields=True):
    origin: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


async def list_origins(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    origins = state.hub.origins
    items = [{"origin": o, "source": "settings"} for o in sorted(origins.fixed)]
    items += [{"origin": o, "source": "admin"} for o in await state.store.allowed_origins()]
    return JSONResponse({"items": items, "next_cursor": None})


async def add_origin(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    body: OriginIn = await json_body(request, OriginIn)
    origin = normalise_origin(body.origin)
    await state.store.allow_origin(origin, state.hub.clock.now_us())
    await state.hub.origins.reload(state.store)
    state.hub.origins_changed()
    return JSONResponse({"origin": origin, "source": "admin"}, status_code=201)


async def remove_origin(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    origin = normalise_origin(request.query_params.get("origin", ""))
    if not await state.store.disallow_origin(origin):
        raise NotFound("no such origin among the admins' (the settings' cannot be removed here)")
    await state.hub.origins.reload(state.store)
    state.hub.origins_changed()
    return Response(status_code=204)


routes = [
    Route("/origins", list_origins, methods=["GET"]),
    Route("/origins", add_origin, methods=["POST"]),
    Route("/origins", remove_origin, methods=["DELETE"]),
    Route("/canned-responses", list_canned, methods=["GET"]),
    Route("/canned-responses", add_canned, methods=["POST"]),
    Route("/canned-responses/{id}", change_canned, methods=["PUT"]),
    Route("/canned-responses/{id}", delete_canned, methods=["DELETE"]),
    Route("/policies", list_policies, methods=["GET"]),
    Route("/policies", publish_policy, methods=["POST"]),
]
