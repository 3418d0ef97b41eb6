"""Staff in the SQLite store (migration 14): invitations of new agents, and each agent's
console preferences.

Mixed into ``SQLiteStore``, which provides ``writer`` and ``_rows``. An invitation
is staff data (the invitee's email and name): it is not part of a subject's export
or erasure, and a row that ended (used, revoked or expired) is deleted by the
``invitations`` retention category. Its email goes through the mail outbox in the
same transaction that stores it, so an invitation is never without its email, nor
an email without its invitation.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver.errors import Conflict, NotFound
from chatserver.store.models import Agent, Invitation
from chatserver.store.writer import Tx

if TYPE_CHECKING:
    from chatserver.mail.store import OutboxRow
    from chatserver.store.writer import GroupCommitWriter

INVITATION_COLUMNS = (
    "id, email, name, role, invited_by, created_at, expires_at, used_at, revoked_at"
)
# An invitation whose link still works at ``?`` (now).
PENDING = "used_at IS NULL AND revoked_at IS NULL AND expires_at > ?"
INSERT_INVITATION = (
    f"INSERT INTO agent_invitations ({INVITATION_COLUMNS}, token_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def invitation_params(inv: Invitation, token_hash: str) -> tuple[Any, ...]:
    """The values for ``INSERT_INVITATION``, in its column order (only the hash is kept)."""
    return (*msgspec.structs.astuple(inv), token_hash)


# Unsent invitation emails to an address (revoked or replaced: the link no longer works).
DROP_UNSENT = "DELETE FROM mail_outbox WHERE kind = 'invitation' AND recipient = ?"


def email_taken(email: str) -> Conflict:
    return Conflict(f"an agent with email {email} exists", field="email")


class StaffReads:
    """Invitation and preference reads both stores answer with the same SQL."""

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    async def invitation(self, invitation_id: str) -> Invitation | None:
        rows = await self._rows(
            f"SELECT {INVITATION_COLUMNS} FROM agent_invitations WHERE id = ?", (invitation_id,)
        )
        return Invitation(*rows[0]) if rows else None

    async def invitation_by_token(self, token_hash: str, now: int) -> Invitation | None:
        """The invitation whose link has this token, if it still works at ``now``."""
        rows = await self._rows(
            f"SELECT {INVITATION_COLUMNS} FROM agent_invitations "
            f"WHERE token_hash = ? AND {PENDING}",
            (token_hash, now),
        )
        return Invitation(*rows[0]) if rows else None

    async def pending_invitations(self, now: int) -> list[Invitation]:
        """Invitations whose links still work at ``now``, newest first."""
        rows = await self._rows(
            f"SELECT {INVITATION_COLUMNS} FROM agent_invitations WHERE {PENDING} "
            "ORDER BY created_at DESC, id DESC",
            (now,),
        )
        return [Invitation(*r) for r in rows]

    async def agent_preferences(self, agent_id: str) -> str | None:
        """The agent's stored preferences (JSON), or None for the defaults."""
        rows = await self._rows("SELECT preferences FROM agents WHERE id = ?", (agent_id,))
        return rows[0][0] if rows else None


class SQLiteStaff(StaffReads):
    writer: GroupCommitWriter

    async def add_invitation(
        self, invitation: Invitation, token_hash: str, email: OutboxRow
    ) -> Invitation:
        """Store an invitation and queue its email. ``Conflict`` (field ``email``) when an
        agent has that email; an earlier pending invitation of it is revoked, and its
        email, if not sent yet, dropped: only the newest link works."""
        # Here, not at the top: chatserver.mail.store imports the store package.
        from chatserver.mail.store import _insert

        inv = invitation

        def op(conn: sqlite3.Connection, tx: Tx) -> Invitation:
            if conn.execute("SELECT 1 FROM agents WHERE email = ?", (inv.email,)).fetchone():
                raise email_taken(inv.email)
            conn.execute(
                f"UPDATE agent_invitations SET revoked_at = ? WHERE email = ? AND {PENDING}",
                (inv.created_at, inv.email, inv.created_at),
            )
            conn.execute(DROP_UNSENT, (email.recipient,))
            conn.execute(INSERT_INVITATION, invitation_params(inv, token_hash))
            _insert(conn, [email])
            return inv

        return await self.writer.run(op)

    async def revoke_invitation(self, invitation_id: str, now: int) -> Invitation:
        """Revoke an invitation (again is fine); its unsent email is dropped. ``NotFound``
        for an unknown one, ``Conflict`` for one that was accepted."""

        def op(conn: sqlite3.Connection, tx: Tx) -> Invitation:
            row = conn.execute(
                f"SELECT {INVITATION_COLUMNS} FROM agent_invitations WHERE id = ?",
                (invitation_id,),
            ).fetchone()
            if row is None:
                raise NotFound("no such invitation")
            found = Invitation(*row)
            if found.used_at is not None:
                raise Conflict("this invitation was accepted: deactivate the agent instead")
            if found.revoked_at is not None:
                return found
            conn.execute(
                "UPDATE agent_invitations SET revoked_at = ? WHERE id = ?", (now, invitation_id)
            )
            if found.expires_at > now:  # the pending one of its address: its email goes too
                conn.execute(DROP_UNSENT, (found.email,))
            return msgspec.structs.replace(found, revoked_at=now)

        return await self.writer.run(op)

    async def accept_invitation(
        self, token_hash: str, *, agent_id: str, name: str, password_hash: str, now: int
    ) -> tuple[Agent, Invitation]:
        """Use an invitation once: the agent it invites, with this name and password.

        ``NotFound`` when the token is unknown, used, revoked or expired (one answer
        for all four); ``Conflict`` (field ``email``) when an agent took the email
        meanwhile. One transaction: a second use finds it used.
        """

        def op(conn: sqlite3.Connection, tx: Tx) -> tuple[Agent, Invitation]:
            row = conn.execute(
                f"SELECT {INVITATION_COLUMNS} FROM agent_invitations "
                f"WHERE token_hash = ? AND {PENDING}",
                (token_hash, now),
            ).fetchone()
            if row is None:
                raise NotFound("no such invitation, or it was used, revoked or has expired")
            inv = Invitation(*row)
            if conn.execute("SELECT 1 FROM agents WHERE email = ?", (inv.email,)).fetchone():
                raise email_taken(inv.email)
            conn.execute(
                "INSERT INTO agents (id, email, name, role, kind, password_hash, created_at) "
                "VALUES (?, ?, ?, ?, 'human', ?, ?)",
                (agent_id, inv.email, name, inv.role, password_hash, now),
            )
            conn.execute("UPDATE agent_invitations SET used_at = ? WHERE id = ?", (now, inv.id))
            agent = Agent(id=agent_id, email=inv.email, name=name, role=inv.role, active=True)
            return agent, msgspec.structs.replace(inv, used_at=now)

        return await self.writer.run(op)

    async def save_agent_preferences(self, agent_id: str, preferences: str) -> None:
        """Store an agent's preferences (JSON, checked by the caller)."""

        def op(conn: sqlite3.Connection, tx: Tx) -> None:
            changed = conn.execute(
                "UPDATE agents SET preferences = ? WHERE id = ?", (preferences, agent_id)
            ).rowcount
            if not changed:
                raise NotFound("no such agent")

        await self.writer.run(op)
