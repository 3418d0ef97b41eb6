"""Invitations: an admin invites a new staff member by email, name and role; the person
opens the link in the email, chooses a password, and is signed in to the console.

- ``POST /api/v1/invitations`` (admin) stores the invitation and queues its email
  through the mail outbox, in one transaction (``Store.add_invitation``). The link
  is ``<public_url>/console#/invite/<token>``: the token is in the fragment, so it
  is not sent to the server (nor to its logs) when the page is opened. Only the
  token's SHA-256 is stored.
- The link works once, for ``INVITATION_HOURS``. Unknown, used, revoked and expired
  tokens all get the same 404: nobody can tell them apart.
- Inviting an email that is an agent's is 409 (field ``email``). Inviting an email
  that has a pending invitation replaces it: the earlier link stops working and its
  email, if not sent yet, is not sent.
- Accepting checks the password (``chatserver.passwords``), hashes it with argon2
  off the event loop, and creates the agent and marks the invitation used in one
  transaction, so a link used twice at once makes one agent.

Invitations need email: without ``smtp_host`` and ``public_url`` creating one is 503.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from chatserver import passwords
from chatserver.auth import hash_password, token_hash
from chatserver.clock import format_ts, uuid7
from chatserver.errors import BadRequest, NotFound, Unavailable
from chatserver.mail.render import compose, format_time, valid_address
from chatserver.mail.store import OutboxRow
from chatserver.store.models import Agent, Invitation

if TYPE_CHECKING:
    from chatserver.web.state import AppState

INVITATION_HOURS = 72
INVITATION_US = INVITATION_HOURS * 3600 * 1_000_000
# A token is ``secrets.token_urlsafe(32)``: 43 characters.
MAX_TOKEN_CHARS = 100

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Role = Literal["agent", "admin", "compliance"]


class InvitationIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Name
    role: Role = "agent"


class LookupIn(msgspec.Struct, forbid_unknown_fields=True):
    # In a body, never the path: a proxy's access log must not hold a usable token.
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]


class AcceptIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]
    # The invitee's name as they want it shown; the invitation's when left out.
    name: Name | msgspec.UnsetType = msgspec.UNSET


def invitation_json(i: Invitation) -> dict[str, Any]:
    return {
        "id": i.id,
        "email": i.email,
        "name": i.name,
        "role": i.role,
        "invited_by": i.invited_by,
        "created_at": format_ts(i.created_at),
        "expires_at": format_ts(i.expires_at),
    }


def public_json(i: Invitation) -> dict[str, Any]:
    """What the link's page may show, to whoever holds the token."""
    return {"email": i.email, "name": i.name, "role": i.role, "expires_at": format_ts(i.expires_at)}


def _name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise BadRequest("name must not be empty", field="name", reason="too_short")
    return name


async def invite(state: AppState, admin: Agent, body: InvitationIn) -> Invitation:
    """Store the invitation and queue its email; answers the invitation."""
    mail = state.hub.mail
    if mail is None or not mail.public_url:
        raise Unavailable(
            "invitations are sent by email: this server needs smtp_host, mail_from and "
            "public_url for them"
        )
    email = body.email.strip().lower()
    if not valid_address(email):
        raise BadRequest(
            "email: expected an email address, like name@example.com",
            field="email",
            reason="pattern",
        )
    now = state.hub.clock.now_us()
    invitation = Invitation(
        id=uuid7(now),
        email=email,
        name=_name(body.name),
        role=body.role,
        invited_by=admin.id,
        created_at=now,
        expires_at=now + INVITATION_US,
    )
    token = secrets.token_urlsafe(32)
    locale = str(state.settings.mail_staff_locale)
    rendered = mail.renderer.render(
        "invitation",
        locale,
        invitee=invitation.name,
        inviter=admin.name,
        role=invitation.role,
        email=email,
        link=f"{mail.public_url}/console#/invite/{token}",
        expires=format_time(invitation.expires_at, locale),
        hours=INVITATION_HOURS,
    )
    row = OutboxRow(
        id=uuid7(now),
        kind="invitation",
        recipient=email,
        message=compose(rendered, mail_from=state.settings.mail_from, to=email),
        created_at=now,
    )
    stored = await state.store.add_invitation(invitation, token_hash(token), row)
    mail.outbox.wake()
    return stored


async def pending(state: AppState) -> list[Invitation]:
    return await state.store.pending_invitations(state.hub.clock.now_us())


async def revoke(state: AppState, invitation_id: str) -> Invitation:
    return await state.store.revoke_invitation(invitation_id, state.hub.clock.now_us())


_GONE = "no such invitation, or it was used, revoked or has expired"


async def by_token(state: AppState, token: str) -> Invitation:
    """The invitation whose link still works, or ``NotFound`` (the same for every reason)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise NotFound(_GONE)
    found = await state.store.invitation_by_token(token_hash(token), state.hub.clock.now_us())
    if found is None:
        raise NotFound(_GONE)
    return found


async def accept(state: AppState, body: AcceptIn) -> Agent:
    """Create the invited agent with this password; answers the agent."""
    invitation = await by_token(state, body.token)
    name = invitation.name if body.name is msgspec.UNSET else _name(body.name)
    await passwords.check_async(body.password, email=invitation.email, name=name)
    password_hash = await hash_password(body.password)
    now = state.hub.clock.now_us()
    agent, _ = await state.store.accept_invitation(
        token_hash(body.token),
        agent_id=uuid7(now),
        name=name,
        password_hash=password_hash,
        now=now,
    )
    return agent
