"""The Broker carries events between the nodes of a cluster; the Store holds the truth.

An ``Event`` is published after its transaction committed, with its frame
already encoded, so every node and every socket sends the same text. A node
that misses events (a Redis restart, a network cut) notices the gap in a
conversation's ``seq`` and fills it from the store; the broker may therefore be
at-most-once, and is for speed only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec


class Event(msgspec.Struct, frozen=True):
    topic: str
    # message | typing | read | conversation | created | presence | erased | …; and
    # ``resync``, made by a broker itself after it lost and regained its connection.
    kind: str
    frame: str
    conversation_id: str | None = None
    # Per-conversation seq of a message event; 0 for events outside the sequence.
    seq: int = 0
    # Internal notes: agents only, never a visitor socket.
    agents_only: bool = False
    # The socket that caused the event; it is not sent the event back.
    origin: str | None = None
    # For inbox filtering: who the conversation is assigned to now and before.
    assignee_id: str | None = None
    prev_assignee_id: str | None = None
    visitor_id: str | None = None
    # For a ``disconnect``: whose sockets to close, on every node.
    principal_id: str | None = None
    # The same event as visitors may see it (a conversation change without the
    # agents' tags); None when ``frame`` is fit for everyone.
    visitor_frame: str | None = None
    # For an ``erased``: the person's visitor ids and conversation ids, on every node.
    visitor_ids: tuple[str, ...] = ()
    conversation_ids: tuple[str, ...] = ()


Deliver = Callable[[Event], None]


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Begin handing this node's events to ``deliver`` (called on the event loop)."""

    async def close(self) -> None: ...

    async def subscribe(self, topic: str) -> None:
        """Ask for ``topic``'s events from now on (subscriptions are counted by the caller)."""

    async def unsubscribe(self, topic: str) -> None: ...

    def publish(self, event: Event) -> None:
        """Send ``event`` to every node subscribed to its topic, this one included."""

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""
