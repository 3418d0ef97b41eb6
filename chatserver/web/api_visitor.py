"""``/api/v1/conversations/{id}/visitor``: who the agent is talking to (the visitor panel).

Device, browser, OS, pages and the visitor's other conversations are for every
agent; the IP address only for admins and compliance officers (P4).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver.auth import may
from chatserver.clock import format_ts
from chatserver.errors import Forbidden, NotFound
from chatserver.privacy.service import Actor
from chatserver.store.models import SessionInfo
from chatserver.web.api import conversation_json, state_of
from chatserver.web.principal import authenticate

SESSIONS_SHOWN = 20


def session_json(s: SessionInfo, *, with_ip: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": s.id,
        "started_at": format_ts(s.started_at),
        "ended_at": format_ts(s.ended_at) if s.ended_at else None,
        "device_class": s.device_class,
        "browser": s.browser,
        "os": s.os,
        "page_url": s.page_url,
        "page_title": s.page_title,
        "referrer": s.referrer,
        "locale": s.locale,
    }
    if with_ip:
        item["ip"] = s.ip
    return item


async def conversation_visitor(request: Request) -> Response:
    state = state_of(request)
    caller = await authenticate(request)
    if not (may(caller.role, "agent") or may(caller.role, "compliance")):
        raise Forbidden("this needs the agent or compliance role")
    conversation = await state.store.conversation(request.path_params["id"])
    if conversation is None:
        raise NotFound("no such conversation")
    if conversation.visitor_id is None:
        raise NotFound("this conversation has no visitor any more")
    with_ip = caller.role in ("admin", "compliance")
    if with_ip:
        # IPs are shown to these roles only, and each look is on the record.
        await state.privacy.record(
            Actor(caller.role, caller.id),
            "visitor.view",
            conversation.account_id or conversation.visitor_id,
            conversation=conversation.id,
        )
    sessions = await state.store.sessions_of(conversation.visitor_id)
    others = await state.store.visitor_conversations(conversation.visitor_id)
    account = (
        await state.store.account(conversation.account_id) if conversation.account_id else None
    )
    return JSONResponse(
        {
            "visitor_id": conversation.visitor_id,
            "account": None
            if account is None
            else {
                "id": account.id,
                "name": account.name,
                "email": account.email,
                "phone": account.phone,
                "verified_by": account.verified_by,
                "verified_at": format_ts(account.verified_at) if account.verified_at else None,
            },
            # Newest first: the live session is the one an agent looks at.
            "sessions": [
                session_json(s, with_ip=with_ip) for s in reversed(sessions[-SESSIONS_SHOWN:])
            ],
            "conversations": [
                conversation_json(c) for c in reversed(others) if c.id != conversation.id
            ],
        }
    )


routes = [Route("/conversations/{id}/visitor", conversation_visitor, methods=["GET"])]
