"""Row shapes both stores share: the columns they select and how a row becomes a model,
and the opaque cursors of paged listings."""

from __future__ import annotations

import base64
import json
from typing import Any

from chatserver.errors import BadRequest
from chatserver.store.models import Agent, Conversation

CONVERSATION_COLUMNS = (
    "c.id, c.visitor_id, c.account_id, c.status, c.assignee_id, a.name, c.tags, c.last_seq, "
    "c.created_at, c.updated_at, c.last_message_at, c.closed_at, c.legal_hold, c.contact_email, "
    "ac.name, ac.verified_by"
)
# The joins CONVERSATION_COLUMNS needs beside ``conversations c``.
CONVERSATION_JOINS = (
    "LEFT JOIN agents a ON a.id = c.assignee_id LEFT JOIN accounts ac ON ac.id = c.account_id"
)
CONVERSATION_FROM = "conversations c " + CONVERSATION_JOINS


def _conversation(row: Any) -> Conversation:
    return Conversation(
        id=row[0],
        visitor_id=row[1],
        account_id=row[2],
        status=row[3],
        assignee_id=row[4],
        assignee_name=row[5],
        tags=json.loads(row[6]),
        last_seq=row[7],
        created_at=row[8],
        updated_at=row[9],
        last_message_at=row[10],
        closed_at=row[11],
        legal_hold=bool(row[12]),
        contact_email=row[13],
        name=row[14],
        verified_by=row[15],
    )


def _agent(row: Any) -> Agent:
    return Agent(
        id=row[0], email=row[1], name=row[2], role=row[3], active=bool(row[4]), kind=row[5]
    )


AGENT_COLUMNS = "id, email, name, role, active, kind"
# The same columns from a join where the agents table is ``a``.
AGENT_COLUMNS_A = ", ".join(f"a.{c.strip()}" for c in AGENT_COLUMNS.split(","))


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this server made") from None
    if (
        not isinstance(parts, list)
        or len(parts) != len(shape)
        or not all(
            isinstance(p, t) and not isinstance(p, bool) for p, t in zip(parts, shape, strict=True)
        )
    ):
        raise BadRequest("cursor is not one this server made")
    return parts
