"""The HTTP API under ``/api/v1``: parse, authorise, call the core, encode. Nothing else."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver import protocol as p
from chatserver.clock import format_ts, uuid7
from chatserver.errors import BadRequest, ChatError, NotFound, TooLarge
from chatserver.hub.hub import author_of
from chatserver.store.models import (
    Conversation,
    LastMessage,
    NewMessage,
    SearchMatch,
    StoredMessage,
)
from chatserver.validation import invalid_body
from chatserver.web.principal import require
from chatserver.web.state import AppState

MAX_JSON_BYTES = 1_000_000
STATUSES = ("open", "pending", "resolved")

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class PostMessage(msgspec.Struct, forbid_unknown_fields=True):
    client_msg_id: p.ClientMsgId
    body: p.Body
    kind: Literal["text", "note"] = "text"
    # Files this agent uploaded to the conversation; the body may then be empty.
    attachments: Annotated[tuple[p.Id, ...], msgspec.Meta(max_length=p.MAX_ATTACHMENTS)] = ()


class PatchConversation(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["open", "pending", "resolved"] | msgspec.UnsetType = msgspec.UNSET
    assignee_id: p.Id | msgspec.UnsetType | None = msgspec.UNSET
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "status": c.status,
        "assignee": {"id": c.assignee_id, "name": c.assignee_name} if c.assignee_id else None,
        "tags": c.tags,
        "visitor_id": c.visitor_id,
        "account_id": c.account_id,
        "contact_email": c.contact_email,
        "last_seq": c.last_seq,
        "created_at": format_ts(c.created_at),
        "updated_at": format_ts(c.updated_at),
        "last_message_at": format_ts(c.last_message_at) if c.last_message_at else None,
        "closed_at": format_ts(c.closed_at) if c.closed_at else None,
        "name": c.name,
        "verified_by": c.verified_by,
        **({} if c.last_message is msgspec.UNSET else {"last_message": _last(c.last_message)}),
        **({} if c.read_seq is None else {"unread": _unread(c, c.read_seq)}),
        **({} if c.match is msgspec.UNSET else {"match": _match(c.match)}),
    }


def _last(m: LastMessage | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "seq": m.seq,
        "kind": m.kind,
        "role": m.author_role,
        "preview": m.preview,
        "ts": format_ts(m.created_at),
        "attachments": m.attachments,
    }


def _unread(c: Conversation, read_seq: int) -> int:
    # Listings count (neither events nor the reader's own); else an upper bound.
    return c.unread if c.unread is not None else max(0, c.last_seq - read_seq)


def _match(m: SearchMatch | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "seq": m.seq,
        "message_id": m.message_id,
        "snippet": [{"text": part.text, "hit": part.hit} for part in m.snippet],
    }


def message_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "conversation_id": m.conversation_id,
        "message_id": m.id,
        "seq": m.seq,
        "ts": format_ts(m.created_at),
        "author": msgspec.to_builtins(author_of(m)),
        "body": m.body,
        "kind": m.kind,
        "attachments": [
            {"id": a.id, "name": a.name, "size": a.size, "type": a.type} for a in m.attachments
        ],
        # An event message's data (chatserver/timeline.py); null for every other message.
        "event": m.event,
    }


def state_of(request: Request) -> AppState:
    return request.app.state.chat  # type: ignore[no-any-return]


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", field=name, reason="type") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}", field=name, reason="range")
    return value


async def read_body(request: Request, limit: int, too_large: ChatError) -> bytes:
    """The request body, read as it streams in; ``too_large`` is raised past ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def json_body(request: Request, shape: type[Any]) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send a JSON body with Content-Type: application/json")
    body = await read_body(
        request, MAX_JSON_BYTES, TooLarge(f"request body over {MAX_JSON_BYTES} bytes")
    )
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        # Which field, why, and in words (never msgspec's regex or path syntax).
        raise invalid_body(exc, shape) from None
    except msgspec.DecodeError:
        raise BadRequest("the body is not valid JSON") from None


def status_param(request: Request) -> list[str]:
    """``status=open,pending`` (or the parameter repeated): the statuses asked for, once each."""
    raw = ",".join(v for v in request.query_params.getlist("status") if v)
    if not raw:
        return []
    statuses = [s.strip() for s in raw.split(",")]
    if any(s not in STATUSES for s in statuses):
        raise BadRequest(
            "status must be open, pending or resolved, or several of them separated by commas",
            field="status",
            reason="invalid",
        )
    return list(dict.fromkeys(statuses))


def tag_param(request: Request) -> str | None:
    tag = request.query_params.get("tag") or None
    if tag is not None and len(tag) > 50:
        raise BadRequest("tag is at most 50 characters", field="tag", reason="too_long")
    return tag


async def list_conversations(request: Request) -> Response:
    state = state_of(request)
    agent = await require(request, "agent")
    q = request.query_params
    status = status_param(request)
    assignee = q.get("assignee") or None
    if assignee is not None and len(assignee) > 64:
        raise BadRequest("assignee is me, none or an agent id", field="assignee", reason="too_long")
    search = q.get("q") or None
    if search is not None and len(search) > 200:
        raise BadRequest("q is at most 200 characters", field="q", reason="too_long")
    tag = tag_param(request)
    page = await state.store.list_conversations(
        status=status,
        assignee_id=agent.id if assignee == "me" else assignee,
        unassigned=assignee == "none",
        q=search,
        tag=tag,
        reader_id=agent.id,
        cursor=q.get("cursor") or None,
        limit=int_param(request, "limit", 50, 1, 200),
    )
    return JSONResponse(
        {"items": [conversation_json(c) for c in page.items], "next_cursor": page.next_cursor}
    )


async def conversation_counts(request: Request) -> Response:
    """The inbox's counters for the calling agent: cheap enough to poll."""
    state = state_of(request)
    agent = await require(request, "agent")
    counts = await state.store.conversation_counts(reader_id=agent.id, tag=tag_param(request))
    return JSONResponse(
        {
            "status": counts.status,
            "views": {"all": counts.all, "unassigned": counts.unassigned, "mine": counts.mine},
            "unread": counts.unread,
        }
    )


async def _conversation(state: AppState, request: Request) -> Conversation:
    conversation = await state.store.conversation(request.path_params["id"])
    if conversation is None:
        raise NotFound("no such conversation")
    return conversation


async def get_conversation(request: Request) -> Response:
    state = state_of(request)
    await require(request, "agent")
    conversation = await state.store.inbox_conversation(request.path_params["id"])
    if conversation is None:
        raise NotFound("no such conversation")
    # How far the visitor has read (their `read` frames), for the console's "Seen".
    seen = [
        seq for role, _, seq in await state.store.read_state(conversation.id) if role == "visitor"
    ]
    return JSONResponse(
        {**conversation_json(conversation), "visitor_read_seq": max(seen, default=0)}
    )


async def list_messages(request: Request) -> Response:
    state = state_of(request)
    await require(request, "agent")
    conversation = await _conversation(state, request)
    cursor = request.query_params.get("cursor")
    if cursor:
        if not cursor.isdigit() or len(cursor) > 16:
            raise BadRequest("cursor is not one this server made")
        after_seq = int(cursor)
    else:
        after_seq = int_param(request, "after_seq", 0, 0, 2**53)
    limit = int_param(request, "limit", 100, 1, 500)
    messages = await state.store.messages_after(conversation.id, after_seq, limit + 1)
    more = len(messages) > limit
    messages = messages[:limit]
    return JSONResponse(
        {
            "items": [message_json(m) for m in messages],
            "next_cursor": str(messages[-1].seq) if more else None,
        }
    )


async def post_message(request: Request) -> Response:
    state = state_of(request)
    agent = await require(request, "agent")
    body: PostMessage = await json_body(request, PostMessage)
    if not body.body.strip() and not body.attachments:
        raise BadRequest("body is empty")
    if len(body.body) > state.settings.max_body_chars:
        raise TooLarge(f"body over {state.settings.max_body_chars} characters")
    now = state.hub.clock.now_us()
    message = await state.hub.post_message(
        NewMessage(
            message_id=uuid7(now),
            author_role="agent",
            author_id=agent.id,
            kind=body.kind,
            body=body.body,
            created_at=now,
            client_msg_id=body.client_msg_id,
            conversation_id=request.path_params["id"],
            attachments=body.attachments,
        ),
        p.Author(role="agent", id=agent.id, name=agent.name),
    )
    return JSONResponse(
        {
            "client_msg_id": body.client_msg_id,
            "conversation_id": message.conversation_id,
            "message_id": message.id,
            "seq": message.seq,
            "ts": format_ts(message.created_at),
            "duplicate": message.duplicate,
        },
        status_code=200 if message.duplicate else 201,
    )


async def patch_conversation(request: Request) -> Response:
    state = state_of(request)
    agent = await require(request, "agent")
    body: PatchConversation = await json_body(request, PatchConversation)
    conversation = await state.hub.update_conversation(
        request.path_params["id"],
        status=None if body.status is msgspec.UNSET else body.status,
        assignee_id=body.assignee_id if isinstance(body.assignee_id, str) else None,
        unassign=body.assignee_id is None,
        tags=None if body.tags is msgspec.UNSET else list(dict.fromkeys(body.tags)),
        actor=agent,
    )
    return JSONResponse(conversation_json(conversation))


routes = [
    Route("/conversations", list_conversations, methods=["GET"]),
    # Before /conversations/{id}, which would take "counts" for an id.
    Route("/conversations/counts", conversation_counts, methods=["GET"]),
    Route("/conversations/{id}", get_conversation, methods=["GET"]),
    Route("/conversations/{id}", patch_conversation, methods=["PATCH"]),
    Route("/conversations/{id}/messages", list_messages, methods=["GET"]),
    Route("/conversations/{id}/messages", post_message, methods=["POST"]),
]
