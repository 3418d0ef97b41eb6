"""Event messages: the lines in a conversation's timeline that say what happened to it.

A change to a conversation (assignment, status), a visitor's rating and the link to a
verified account are stored as messages of ``kind: "event"`` by ``author_role: "system"``,
in the conversation's own ``seq`` order, in the transaction that made the change. Their
structured data (``event``, stored in ``messages.event``) is ``{"type": …, …}``:

- ``assigned {to, by}``, ``transferred {from, to, by}``, ``unassigned {from, by}``;
- ``resolved {by}``, ``reopened {by}``, ``status {status, by}`` (open and pending);
- ``rated {score, comment_given}``; ``verified {idp, name}``.

``to``, ``from`` and ``by`` are ``{id, name}`` of an agent; ``by`` is null when nobody
did it by hand (round-robin assignment, a visitor's message reopening the conversation).
The ``body`` is a plain English sentence, so exports and transcripts read without the
data. Visitors never receive event messages (like notes), they never reopen a
conversation, never move ``last_message_at`` and are never ``message.created``.

Pure functions: the stores call them inside their write transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatserver.clock import uuid7
from chatserver.store.models import NewMessage

if TYPE_CHECKING:
    from chatserver.store.models import Agent, Conversation

EventLine = tuple[dict[str, Any], str]  # (the event's data, the message body)


def event_message(conversation_id: str, line: EventLine, at: int) -> NewMessage:
    """The message that stores an event line: the system's, in the conversation's seq
    order like any message (both stores append it in the change's own transaction)."""
    event, body = line
    return NewMessage(
        message_id=uuid7(at),
        author_role="system",
        author_id=None,
        kind="event",
        body=body,
        created_at=at,
        conversation_id=conversation_id,
        event=event,
    )


# How a few identity providers' ``idp`` values read in a sentence; others as they are.
IDP_NAMES = {
    "bankid": "BankID",
    "bankid-demo": "BankID (demo)",
    "buypass": "Buypass",
    "minid": "MinID",
    "idporten": "ID-porten",
}


def _person(agent_id: str, name: str | None) -> dict[str, Any]:
    return {"id": agent_id, "name": name or ""}


def _by(actor: Agent | None) -> dict[str, Any] | None:
    return None if actor is None else _person(actor.id, actor.name)


def _by_words(actor: Agent | None) -> str:
    return f" by {actor.name}" if actor is not None else ""


def change_events(
    before: Conversation, after: Conversation, actor: Agent | None
) -> list[EventLine]:
    """The events of a change from ``before`` to ``after``, made by ``actor`` (None: by the
    server itself): the assignee's change first, then the status's. Tags make none."""
    lines: list[EventLine] = []
    by = _by(actor)
    who = _by_words(actor)
    was, now = before.assignee_id, after.assignee_id
    if was != now:
        if was is None and now is not None:
            to = _person(now, after.assignee_name)
            tail = who or " automatically"
            lines.append(
                ({"type": "assigned", "to": to, "by": by}, f"Assigned to {to['name']}{tail}")
            )
        elif was is not None and now is not None:
            old, to = _person(was, before.assignee_name), _person(now, after.assignee_name)
            lines.append(
                (
                    {"type": "transferred", "from": old, "to": to, "by": by},
                    f"Transferred from {old['name']} to {to['name']}{who}",
                )
            )
        elif was is not None:
            old = _person(was, before.assignee_name)
            lines.append(
                (
                    {"type": "unassigned", "from": old, "by": by},
                    f"Unassigned from {old['name']}{who}",
                )
            )
    if before.status != after.status:
        if after.status == "resolved":
            lines.append(({"type": "resolved", "by": by}, f"Resolved{who}"))
        elif before.status == "resolved":
            lines.append(({"type": "reopened", "by": by}, f"Reopened{who}"))
        else:
            lines.append(
                (
                    {"type": "status", "status": after.status, "by": by},
                    f"Marked {after.status}{who}",
                )
            )
    return lines


def reopened_by_visitor() -> EventLine:
    """A visitor wrote into their resolved conversation, which reopened it."""
    return {"type": "reopened", "by": None}, "Reopened by a message from the visitor"


def rated(score: int, comment: str | None) -> EventLine:
    given = comment is not None
    return (
        {"type": "rated", "score": score, "comment_given": given},
        f"Rated {score}/5" + (" with a comment" if given else ""),
    )


def verified(idp: str | None, name: str | None) -> EventLine:
    """The conversation is now linked to an account verified by ``idp``."""
    words = f" by {IDP_NAMES.get(idp.lower(), idp)}" if idp else ""
    return {"type": "verified", "idp": idp, "name": name}, f"Verified{words}"
