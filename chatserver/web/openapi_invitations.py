"""The invitations part of the OpenAPI document (``chatserver.web.api_invitations``).

``PATHS`` and ``SCHEMAS`` are merged into ``chatserver.web.openapi.DOCUMENT``. Every
operation needs the admin role. The invitee's two routes are the console's
(``/console/invitations/...``, docs/protocol.md), outside ``/api/v1``.
"""

from __future__ import annotations

from typing import Any

from chatserver.invitations import INVITATION_HOURS
from chatserver.web.openapi_common import AUTH, ID, errors, json_answer, page, ref, request_body

_ROLE = {"type": "string", "enum": ["agent", "admin", "compliance"]}
_DATE_TIME = {"type": "string", "format": "date-time"}

PATHS: dict[str, Any] = {
    "/invitations": {
        "get": {
            "operationId": "listInvitations",
            "summary": "Invitations whose links still work, newest first (admin).",
            "responses": {
                "200": json_answer(ref("InvitationPage"), "The pending invitations."),
                **errors(*AUTH),
            },
        },
        "post": {
            "operationId": "createInvitation",
            "summary": "Invite a new staff member: an email with a link that works once, "
            f"for {INVITATION_HOURS} hours, goes through the mail outbox. Inviting an "
            "email that has a pending invitation replaces it (admin).",
            "requestBody": request_body(ref("InvitationIn")),
            "responses": {
                "201": json_answer(ref("Invitation"), "Invited; the email is on its way."),
                **errors(
                    400,
                    409,
                    413,
                    *AUTH,
                    why={
                        409: "An agent has this email (`field`: `email`)",
                        503: "The store cannot be reached, or this server sends no email "
                        "(no `smtp_host` or `public_url`)",
                    },
                ),
            },
        },
    },
    "/invitations/{id}": {
        "parameters": [ID],
        "delete": {
            "operationId": "revokeInvitation",
            "summary": "Revoke an invitation: its link stops working, and its email is not "
            "sent if it has not been yet. Revoking twice is fine (admin).",
            "responses": {
                "204": {"description": "Revoked."},
                **errors(
                    404,
                    409,
                    *AUTH,
                    why={404: "No such invitation", 409: "It was accepted already"},
                ),
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "InvitationIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["email", "name"],
        "properties": {
            "email": {"type": "string", "minLength": 3, "maxLength": 254, "format": "email"},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "role": {**_ROLE, "default": "agent"},
        },
    },
    "Invitation": {
        "type": "object",
        "required": ["id", "email", "name", "role", "invited_by", "created_at", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string"},
            "name": {"type": "string"},
            "role": _ROLE,
            "invited_by": {
                "type": ["string", "null"],
                "description": "The inviting admin's agent id.",
            },
            "created_at": _DATE_TIME,
            "expires_at": _DATE_TIME,
        },
    },
    "InvitationPage": page(ref("Invitation"), paged=False),
}
