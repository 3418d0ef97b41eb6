"""Invitations (``chatserver.invitations``): ``/api/v1/invitations`` for admins, and the
two console routes the invitee's link uses, ``GET /console/invitations/{token}`` and
``POST /console/invitations/accept`` (no sign-in needed: the token is the proof).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatserver import invitations
from chatserver.web.api import json_body, state_of
from chatserver.web.console import signed_in
from chatserver.web.principal import require

# The token is in the path of the invitee's calls: nothing of them is kept on the way.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def create_invitation(request: Request) -> Response:
    state = state_of(request)
    admin = await require(request, "admin")
    body: invitations.InvitationIn = await json_body(request, invitations.InvitationIn)
    invitation = await invitations.invite(state, admin, body)
    return JSONResponse(invitations.invitation_json(invitation), status_code=201)


async def list_invitations(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    items = [invitations.invitation_json(i) for i in await invitations.pending(state)]
    return JSONResponse({"items": items, "next_cursor": None})


async def revoke_invitation(request: Request) -> Response:
    state = state_of(request)
    await require(request, "admin")
    await invitations.revoke(state, request.path_params["id"])
    return Response(status_code=204)


async def show_invitation(request: Request) -> Response:
    state = state_of(request)
    body: invitations.LookupIn = await json_body(request, invitations.LookupIn)
    invitation = await invitations.by_token(state, body.token)
    return JSONResponse(invitations.public_json(invitation), headers=NO_STORE)


async def accept_invitation(request: Request) -> Response:
    state = state_of(request)
    body: invitations.AcceptIn = await json_body(request, invitations.AcceptIn)
    agent = await invitations.accept(state, body)
    response = await signed_in(request, agent)
    response.headers.update(NO_STORE)
    return response


routes = [
    Route("/invitations", list_invitations, methods=["GET"]),
    Route("/invitations", create_invitation, methods=["POST"]),
    Route("/invitations/{id}", revoke_invitation, methods=["DELETE"]),
]

console_routes = [
    Route("/console/invitations/accept", accept_invitation, methods=["POST"]),
    Route("/console/invitations/lookup", show_invitation, methods=["POST"]),
]
