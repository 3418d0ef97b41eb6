"""What each event sends: its ``data``, shaped per endpoint, and nothing more.

A payload carries ids, states, sequence numbers, kinds and times: enough for a
connected system to act or to call the API back, never names, emails, IP
addresses or page data. Message bodies go out only to endpoints registered
with ``include_message_body``; internal notes only to those with
``include_notes``. See ``docs/webhooks.md`` for every event's fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from chatserver.clock import format_ts
from chatserver.store.models import Conversation, StoredMessage

EVENT_TYPES = (
    "conversation.created",
    "message.created",
    "conversation.resolved",
    "subject.erased",
    "rating.created",
)
# Sent by ``POST /api/v1/webhooks/{id}/test`` whatever the endpoint subscribed to.
TEST_EVENT = "webhook.test"

# Fields an event of a kind this module has no shaper for may carry (``rating.created``
# and whatever is added later): ids, states and numbers only. Free text goes only to
# endpoints that asked for message bodies.
_GENERIC_KEYS = frozenset(
    {
        "id",
        "conversation_id",
        "message_id",
        "status",
        "seq",
        "kind",
        "score",
        "replaced",
        "created_at",
    }
)
_TEXT_KEYS = frozenset({"comment", "body"})


class Shaped(msgspec.Struct, frozen=True):
    data: dict[str, Any]
    # The conversation the payload is about: a pending delivery goes with it (erasure).
    conversation_id: str | None


def _message(m: StoredMessage, include_body: bool) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "kind": m.kind,
        "author": {"role": m.author_role, "id": m.author_id},
        "created_at": format_ts(m.created_at),
    }
    if include_body:
        shaped["body"] = m.body
    return shaped


def _generic(value: Any, include_text: bool, depth: int = 0) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                continue
            if key in _TEXT_KEYS:
                if include_text and (item is None or isinstance(item, str)):
                    out[key] = item
            elif key in _GENERIC_KEYS:
                if key.endswith("_at") and isinstance(item, int) and not isinstance(item, bool):
                    out[key] = format_ts(item)
                elif item is None or isinstance(item, str | int | float | bool):
                    out[key] = item
            elif depth < 2 and isinstance(item, Mapping):
                out[key] = _generic(item, include_text, depth + 1)
        return out
    return {}


def _conversation_of(data: Mapping[str, Any]) -> str | None:
    found = data.get("conversation_id")
    if isinstance(found, str):
        return found
    for item in data.values():
        if isinstance(item, Mapping) and isinstance(item.get("conversation_id"), str):
            return str(item["conversation_id"])
    return None


def shape(
    event_type: str, data: Mapping[str, Any], *, include_body: bool, include_notes: bool
) -> Shaped | None:
    """The ``data`` of ``event_type`` for one endpoint, or None when it gets nothing."""
    if event_type == "message.created":
        message: StoredMessage = data["message"]
        if message.kind == "note" and not include_notes:
            return None
        return Shaped({"message": _message(message, include_body)}, message.conversation_id)
    if event_type == "conversation.created":
        first: StoredMessage = data["message"]
        return Shaped(
            {
                "conversation": {
                    "id": first.conversation_id,
                    "status": first.conversation_status,
                    "created_at": format_ts(first.created_at),
                }
            },
            first.conversation_id,
        )
    if event_type == "conversation.resolved":
        c: Conversation = data["conversation"]
        return Shaped(
            {
                "conversation": {
                    "id": c.id,
                    "status": c.status,
                    "assignee_id": c.assignee_id,
                    "last_seq": c.last_seq,
                    "resolved_at": format_ts(c.closed_at or c.updated_at),
                }
            },
            c.id,
        )
    if event_type == "subject.erased":
        tombstone = data["tombstone"]
        return Shaped(
            {
                "subject": {
                    "id": data["subject_id"],
                    "kind": data.get("kind"),
                    # The platform's own id for the person, when they had been verified:
                    # what a connected system most likely knows them by.
                    "account_id": data.get("account_id"),
                    "visitor_ids": list(data.get("visitor_ids", ())),
                    "conversation_ids": list(data.get("conversation_ids", ())),
                },
                "erased_at": format_ts(tombstone.erased_at),
            },
            # Never tied to a conversation: it must outlive the erasure it announces.
            None,
        )
    plain = msgspec.to_builtins(dict(data))
    if not isinstance(plain, Mapping):
        return None
    return Shaped(_generic(plain, include_body), _conversation_of(plain))
