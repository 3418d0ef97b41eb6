"""Satisfaction ratings (CSAT): a visitor rates a resolved conversation 1–5, with an
optional comment.

One rating per conversation: a second ``rate`` replaces the first (the visitor
changed their mind, or rated again after the conversation was reopened and
resolved once more); the newest one counts, and ``created_at`` is its time.
The agent it counts for is the conversation's assignee at the time of rating.

The rating and its comment are the visitor's personal data: they are in the
person's export (under their conversation) and go with the conversation on
erasure and retention (ON DELETE CASCADE). Stats only ever show aggregates of
them (``chatserver.stats.summarise_csat``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from chatserver.errors import BadRequest, TooLarge
from chatserver.store.models import Rating

if TYPE_CHECKING:
    from chatserver.hub.hub import Hub

MAX_COMMENT = 1000
SCORES = (1, 2, 3, 4, 5)


def clean_comment(comment: str | None) -> str | None:
    """The comment as stored: trimmed, None when blank; ``TooLarge`` past ``MAX_COMMENT``."""
    if comment is None:
        return None
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise TooLarge(f"comment over {MAX_COMMENT} characters")
    return comment or None


async def rate(
    hub: Hub, conversation_id: str, *, visitor_id: str, score: int, comment: str | None
) -> Rating:
    """Store a visitor's rating and tell the observers (``rating.created``); its `rated`
    event line reaches agents following the conversation, and the rating every console.

    The caller has checked that the conversation is this visitor's; the store
    checks that it is resolved (``Conflict`` otherwise).
    """
    if score not in SCORES:
        raise BadRequest("score must be a whole number from 1 to 5")
    rating, replaced = await hub.store.save_rating(
        conversation_id,
        visitor_id=visitor_id,
        score=score,
        comment=clean_comment(comment),
        now=hub.clock.now_us(),
    )
    hub.publish_events(rating.events)
    hub.spawn(hub.announce_change(conversation_id))
    rating = msgspec.structs.replace(rating, events=())
    hub.emit("rating.created", {"rating": rating, "replaced": replaced})
    return rating
