"""Compliance endpoints (P5–P8, P14): find a person, export, erase, correct, hold, audit,
retention; and the person's own export with their identity token.

Thin: each handler checks the caller's role, parses its input and calls
``chatserver.privacy.service.Privacy``, which audits what it does.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from chatserver.clock import format_ts
from chatserver.errors import BadRequest, Forbidden, Unauthorized
from chatserver.privacy.service import Actor, Privacy
from chatserver.store.models import AuditEntry, Rectification, Subject
from chatserver.web.api import int_param, json_body, state_of
from chatserver.web.principal import authenticate, require

MAX_KEY_CHARS = 320


def privacy_of(request: Request) -> Privacy:
    return state_of(request).privacy


async def compliance(request: Request) -> Actor:
    agent = await require(request, "compliance")
    return Actor(agent.role, agent.id)


def subject_json(s: Subject) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind,
        "account_id": s.account_id,
        "created_at": format_ts(s.created_at),
        "legal_hold": s.legal_hold,
        "visitor_ids": list(s.visitor_ids),
    }


def rectification_json(r: Rectification) -> dict[str, Any]:
    return {
        "id": r.id,
        "subject_id": r.account_id,
        "field": r.field,
        "old_value": r.old_value,
        "new_value": r.new_value,
        "status": r.status,
        "requested_at": format_ts(r.requested_at),
        "requested_by": r.requested_by,
        "decided_at": format_ts(r.decided_at) if r.decided_at is not None else None,
        "decided_by": r.decided_by,
    }


def audit_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "id": e.id,
        "at": format_ts(e.at),
        "actor": {"role": e.actor_role, "id": e.actor_id},
        "action": e.action,
        "subject_id": e.subject_id,
        "details": msgspec.json.decode(e.details),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def _key(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_KEY_CHARS:
        raise BadRequest(f"{name} must be 1 to {MAX_KEY_CHARS} characters")
    return value


async def find_subjects(request: Request) -> Response:
    actor = await compliance(request)
    found = await privacy_of(request).find(
        actor,
        account_id=_key(request, "account_id"),
        email=_key(request, "email"),
        pid=_key(request, "pid"),
    )
    return JSONResponse({"items": [subject_json(s) for s in found], "next_cursor": None})


def _format(request: Request) -> str:
    value = request.query_params.get("format", "json")
    if value not in ("json", "zip"):
        raise BadRequest("format must be json or zip")
    return value


def _locale(request: Request) -> str:
    value = request.query_params.get("locale", "en")
    if value not in ("en", "nb"):
        raise BadRequest("locale must be en or nb")
    return value


async def _export(request: Request, actor: Actor, subject_id: str) -> Response:
    privacy = privacy_of(request)
    locale = _locale(request)
    if _format(request) == "json":
        body = await privacy.export_json(actor, subject_id)
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="export.json"'},
        )
    path = await privacy.export_zip(actor, subject_id, locale=locale)
    # The archive stays on disk until retention's export rule removes it (or an
    # erasure of the person, whichever comes first).
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"export-{subject_id}.zip",
    )


async def export_subject(request: Request) -> Response:
    actor = await compliance(request)
    return await _export(request, actor, request.path_params["id"])


async def export_me(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "identity" or not token.strip():
        raise Unauthorized("send Authorization: Identity <identity token>")
    privacy = privacy_of(request)
    subject_id = await privacy.self_subject(token.strip())
    return await _export(request, Actor("subject", subject_id), subject_id)


async def erase_subject(request: Request) -> Response:
    actor = await compliance(request)
    result = await privacy_of(request).erase(actor, request.path_params["id"])
    return JSONResponse(result)


class RectificationIn(msgspec.Struct, forbid_unknown_fields=True):
    field: str
    value: Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)] | None


async def request_rectification(request: Request) -> Response:
    actor = await compliance(request)
    body: RectificationIn = await json_body(request, RectificationIn)
    value = body.value.strip() if body.value is not None else None
    rectification = await privacy_of(request).rectify(
        actor, request.path_params["id"], body.field, value or None
    )
    return JSONResponse(rectification_json(rectification), status_code=201)


async def list_rectifications(request: Request) -> Response:
    actor = await compliance(request)
    items = await privacy_of(request).rectifications(actor, request.path_params["id"])
    return JSONResponse({"items": [rectification_json(r) for r in items], "next_cursor": None})


async def _approver(request: Request) -> Actor:
    agent = await authenticate(request)
    if agent.role not in ("admin", "compliance"):
        raise Forbidden("this needs the admin or compliance role")
    return Actor(agent.role, agent.id)


async def approve_rectification(request: Request) -> Response:
    actor = await _approver(request)
    decided = await privacy_of(request).decide(actor, request.path_params["id"], approve=True)
    return JSONResponse(rectification_json(decided))


async def reject_rectification(request: Request) -> Response:
    actor = await _approver(request)
    decided = await privacy_of(request).decide(actor, request.path_params["id"], approve=False)
    return JSONResponse(rectification_json(decided))


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    hold: bool


async def subject_hold(request: Request) -> Response:
    actor = await compliance(request)
    body: HoldIn = await json_body(request, HoldIn)
    await privacy_of(request).legal_hold(actor, request.path_params["id"], body.hold)
    return JSONResponse({"subject_id": request.path_params["id"], "legal_hold": body.hold})


async def conversation_hold(request: Request) -> Response:
    actor = await compliance(request)
    body: HoldIn = await json_body(request, HoldIn)
    await privacy_of(request).conversation_hold(actor, request.path_params["id"], body.hold)
    return JSONResponse({"conversation_id": request.path_params["id"], "legal_hold": body.hold})


async def audit_log(request: Request) -> Response:
    await compliance(request)
    cursor = request.query_params.get("cursor") or "0"
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadRequest("cursor is not one this server made")
    limit = int_param(request, "limit", 100, 1, 1000)
    entries = await privacy_of(request).audit_page(
        after_seq=int(cursor),
        limit=limit,
        subject_id=_key(request, "subject_id"),
        action=_key(request, "action"),
    )
    next_cursor = str(entries[-1].seq) if len(entries) == limit else None
    return JSONResponse({"items": [audit_json(e) for e in entries], "next_cursor": next_cursor})


async def verify_audit(request: Request) -> Response:
    await compliance(request)
    report = await privacy_of(request).verify_audit()
    return JSONResponse(msgspec.to_builtins(report))


class RetentionIn(msgspec.Struct, forbid_unknown_fields=True):
    dry_run: bool = True


async def run_retention(request: Request) -> Response:
    actor = await compliance(request)
    body: RetentionIn = await json_body(request, RetentionIn)
    report = await privacy_of(request).retention(actor, dry_run=body.dry_run)
    return JSONResponse(msgspec.to_builtins(report), status_code=201)


async def list_retention_runs(request: Request) -> Response:
    await compliance(request)
    runs = await state_of(request).store.retention_runs()
    for run in runs:
        run["started_at"] = format_ts(run["started_at"])
        run["finished_at"] = format_ts(run["finished_at"])
    return JSONResponse({"items": runs, "next_cursor": None})


routes = [
    Route("/subjects", find_subjects, methods=["GET"]),
    Route("/subjects/{id}/export", export_subject, methods=["GET"]),
    Route("/subjects/{id}/erasure", erase_subject, methods=["POST"]),
    Route("/subjects/{id}/rectifications", request_rectification, methods=["POST"]),
    Route("/subjects/{id}/rectifications", list_rectifications, methods=["GET"]),
    Route("/subjects/{id}/legal-hold", subject_hold, methods=["PUT"]),
    Route("/conversations/{id}/legal-hold", conversation_hold, methods=["PUT"]),
    Route("/rectifications/{id}/approve", approve_rectification, methods=["POST"]),
    Route("/rectifications/{id}/reject", reject_rectification, methods=["POST"]),
    Route("/me/export", export_me, methods=["GET"]),
    Route("/audit", audit_log, methods=["GET"]),
    Route("/audit/verify", verify_audit, methods=["GET"]),
    Route("/retention/runs", run_retention, methods=["POST"]),
    Route("/retention/runs", list_retention_runs, methods=["GET"]),
]
