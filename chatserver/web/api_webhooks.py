"""Admin endpoints for webhooks: register, change, remove, test, and read the delivery log.

The secret is generated here and shown once, in the answer that creates the
endpoint (or rotates its secret); no other answer carries it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.clock import format_ts
from chatserver.errors import BadRequest, Unavailable
from chatserver.web.api import int_param, json_body
from chatserver.web.principal import require
from chatserver.webhooks.events import EVENT_TYPES
from chatserver.webhooks.service import Webhooks
from chatserver.webhooks.store import STATUSES, Delivery, Endpoint
from chatserver.webhooks.urls import MAX_URL_CHARS

EventType = Literal[
    "conversation.created",
    "message.created",
    "conversation.resolved",
    "subject.erased",
    "rating.created",
]
assert EventType.__args__ == EVENT_TYPES  # type: ignore[attr-defined]

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS)]
Events = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=20)]
Description = Annotated[str, msgspec.Meta(max_length=200)]


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    events: Events
    description: Description = ""
    include_message_body: bool = False
    include_notes: bool = False
    active: bool = True


class WebhookChange(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: Events | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    include_message_body: bool | msgspec.UnsetType = msgspec.UNSET
    include_notes: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    rotate_secret: bool = False


def webhook_json(e: Endpoint, *, secret: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": e.id,
        "url": e.url,
        "events": list(e.events),
        "description": e.description,
        "include_message_body": e.include_message_body,
        "include_notes": e.include_notes,
        "active": e.active,
        "created_at": format_ts(e.created_at),
        "updated_at": format_ts(e.updated_at),
    }
    if secret:
        shown["secret"] = e.secret
    return shown


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": format_ts(d.created_at),
        "next_attempt_at": (
            format_ts(d.next_attempt_at)
            if d.status == "pending" and d.next_attempt_at is not None
            else None
        ),
        "finished_at": format_ts(d.finished_at) if d.finished_at is not None else None,
        "log": [
            {
                "at": format_ts(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in d.log
        ],
    }


def webhooks_of(request: Request) -> Webhooks:
    found = getattr(request.app.state, "webhooks", None)
    if found is None:
        raise Unavailable("webhooks need the SQLite store")
    return found  # type: ignore[no-any-return]


async def list_webhooks(request: Request) -> Response:
    await require(request, "admin")
    items = await webhooks_of(request).endpoints()
    return JSONResponse({"items": [webhook_json(e) for e in items], "next_cursor": None})


async def add_webhook(request: Request) -> Response:
    agent = await require(request, "admin")
    body: WebhookIn = await json_body(request, WebhookIn)
    endpoint = await webhooks_of(request).create(
        url=body.url,
        events=list(body.events),
        description=body.description.strip(),
        include_message_body=body.include_message_body,
        include_notes=body.include_notes,
        active=body.active,
        actor=(agent.role, agent.id),
    )
    return JSONResponse(webhook_json(endpoint, secret=True), status_code=201)


async def get_webhook(request: Request) -> Response:
    await require(request, "admin")
    endpoint = await webhooks_of(request).endpoint(request.path_params["id"])
    return JSONResponse(webhook_json(endpoint))


async def change_webhook(request: Request) -> Response:
    agent = await require(request, "admin")
    body: WebhookChange = await json_body(request, WebhookChange)
    changes = {
        field: getattr(body, field)
        for field in body.__struct_fields__
        if field != "rotate_secret" and getattr(body, field) is not msgspec.UNSET
    }
    if not changes and not body.rotate_secret:
        raise BadRequest("nothing to change: give at least one field")
    if "description" in changes:
        changes["description"] = changes["description"].strip()
    endpoint = await webhooks_of(request).change(
        request.path_params["id"],
        changes,
        actor=(agent.role, agent.id),
        rotate_secret=body.rotate_secret,
    )
    return JSONResponse(webhook_json(endpoint, secret=body.rotate_secret))


async def delete_webhook(request: Request) -> Response:
    agent = await require(request, "admin")
    await webhooks_of(request).delete(request.path_params["id"], actor=(agent.role, agent.id))
    return Response(status_code=204)


async def send_test_delivery(request: Request) -> Response:
    await require(request, "admin")
    delivery_id = await webhooks_of(request).send_test(request.path_params["id"])
    return JSONResponse({"delivery_id": delivery_id}, status_code=202)


async def list_deliveries(request: Request) -> Response:
    await require(request, "admin")
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        raise BadRequest("cursor is not one this server made")
    items, next_cursor = await webhooks_of(request).deliveries(
        request.path_params["id"],
        status=status,
        cursor=cursor,
        limit=int_param(request, "limit", 50, 1, 200),
    )
    return JSONResponse({"items": [delivery_json(d) for d in items], "next_cursor": next_cursor})


routes = [
    Route("/webhooks", list_webhooks, methods=["GET"]),
    Route("/webhooks", add_webhook, methods=["POST"]),
    Route("/webhooks/{id}", get_webhook, methods=["GET"]),
    Route("/webhooks/{id}", change_webhook, methods=["PATCH"]),
    Route("/webhooks/{id}", delete_webhook, methods=["DELETE"]),
    Route("/webhooks/{id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/webhooks/{id}/test", send_test_delivery, methods=["POST"]),
]
