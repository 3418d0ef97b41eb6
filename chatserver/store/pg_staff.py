"""Staff in the PostgreSQL store (migration 14): the counterpart of ``sqlite_staff``,
with the same methods and answers.

Mixed into ``PostgresStore``, which provides ``writer`` (a ``PgWriter``) and ``_rows``.
Accepting an invitation locks its row until the commit, so two nodes accepting the
same link at once take turns, and the second finds it used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from chatserver.errors import Conflict, NotFound
from chatserver.store.models import Agent, Invitation
from chatserver.store.pg_attachments import affected
from chatserver.store.pg_privacy import numbered
from chatserver.store.sqlite_staff import (
    DROP_UNSENT,
    INSERT_INVITATION,
    INVITATION_COLUMNS,
    PENDING,
    StaffReads,
    email_taken,
    invitation_params,
)

if TYPE_CHECKING:
    import asyncpg

    from chatserver.mail.store import OutboxRow
    from chatserver.store.pg_writer import PgTx, PgWriter


class PgStaff(StaffReads):
    writer: PgWriter

    async def add_invitation(
        self, invitation: Invitation, token_hash: str, email: OutboxRow
    ) -> Invitation:
        """Store an invitation and queue its email (see ``SQLiteStaff.add_invitation``)."""
        # Here, not at the top: chatserver.mail.pg_store imports the store package.
        from chatserver.mail.pg_store import _insert

        inv = invitation

        async def op(conn: asyncpg.Connection, tx: PgTx) -> Invitation:
            if await conn.fetchval("SELECT 1 FROM agents WHERE email = $1", inv.email):
                raise email_taken(inv.email)
            await conn.execute(
                numbered(
                    f"UPDATE agent_invitations SET revoked_at = ? WHERE email = ? AND {PENDING}"
                ),
                inv.created_at,
                inv.email,
                inv.created_at,
            )
            await conn.execute(numbered(DROP_UNSENT), email.recipient)
            await conn.execute(numbered(INSERT_INVITATION), *invitation_params(inv, token_hash))
            await _insert(conn, [email])
            return inv

        return await self.writer.run(op)

    async def revoke_invitation(self, invitation_id: str, now: int) -> Invitation:
        """Revoke an invitation (see ``SQLiteStaff.revoke_invitation``)."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> Invitation:
            row = await conn.fetchrow(
                f"SELECT {INVITATION_COLUMNS} FROM agent_invitations WHERE id = $1 FOR UPDATE",
                invitation_id,
            )
            if row is None:
                raise NotFound("no such invitation")
            found = Invitation(*row)
            if found.used_at is not None:
                raise Conflict("this invitation was accepted: deactivate the agent instead")
            if found.revoked_at is not None:
                return found
            await conn.execute(
                "UPDATE agent_invitations SET revoked_at = $1 WHERE id = $2", now, invitation_id
            )
            if found.expires_at > now:
                await conn.execute(numbered(DROP_UNSENT), found.email)
            return msgspec.structs.replace(found, revoked_at=now)

        return await self.writer.run(op)

    async def accept_invitation(
        self, token_hash: str, *, agent_id: str, name: str, password_hash: str, now: int
    ) -> tuple[Agent, Invitation]:
        """Use an invitation once (see ``SQLiteStaff.accept_invitation``)."""

        async def op(conn: asyncpg.Connection, tx: PgTx) -> tuple[Agent, Invitation]:
            row = await conn.fetchrow(
                numbered(
                    f"SELECT {INVITATION_COLUMNS} FROM agent_invitations "
                    f"WHERE token_hash = ? AND {PENDING} FOR UPDATE"
                ),
                token_hash,
                now,
            )
            if row is None:
                raise NotFound("no such invitation, or it was used, revoked or has expired")
            inv = Invitation(*row)
            if await conn.fetchval("SELECT 1 FROM agents WHERE email = $1", inv.email):
                raise email_taken(inv.email)
            await conn.execute(
                "INSERT INTO agents (id, email, name, role, kind, password_hash, created_at) "
                "VALUES ($1, $2, $3, $4, 'human', $5, $6)",
                agent_id,
                inv.email,
                name,
                inv.role,
                password_hash,
                now,
            )
            await conn.execute(
                "UPDATE agent_invitations SET used_at = $1 WHERE id = $2", now, inv.id
            )
            agent = Agent(id=agent_id, email=inv.email, name=name, role=inv.role, active=True)
            return agent, msgspec.structs.replace(inv, used_at=now)

        return await self.writer.run(op)

    async def save_agent_preferences(self, agent_id: str, preferences: str) -> None:
        async def op(conn: asyncpg.Connection, tx: PgTx) -> None:
            status = await conn.execute(
                "UPDATE agents SET preferences = $1 WHERE id = $2", preferences, agent_id
            )
            if not affected(status):
                raise NotFound("no such agent")

        await self.writer.run(op)
