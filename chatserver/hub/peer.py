"""One socket as the relay core sees it: who is there, what it hears, what waits to go out.

A ``Peer`` knows nothing of Starlette: the web layer connects a ``Transport``
and the peer writes its queued frames there, then the close when ``closing``
is set.

Delivery rule, per conversation (``Cursor``): a socket hears each message once,
in ``seq`` order. Live events wait while a store read (``resume`` or a gap fill)
is running and are then sent if still new; an event whose seq jumps ahead of
what this socket has seen means the broker lost something, and the gap is read
from the store before the event is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chatserver.broker.base import Event
from chatserver.errors import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN

if TYPE_CHECKING:
    from chatserver.hub.hub import Hub


@dataclass(slots=True)
class Cursor:
    # Highest seq this socket has seen (sent, or skipped as a note it may not see).
    seq: int = 0
    # Every seq in (floor, seq] has been seen.
    floor: int = 0
    # Store reads in flight; while > 0 live events wait in ``pending``.
    syncing: int = 0
    pending: list[Event] = field(default_factory=list)


class Transport(Protocol):
    """Where a peer's frames go: the web layer's socket, or nothing in socket-free tests."""

    async def send_frames(self, frames: list[str]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Peer:
    __slots__ = (
        "_drained",
        "_held",
        "_outbox",
        "_transport",
        "_writer",
        "account_id",
        "closing",
        "conn_id",
        "cursors",
        "hub",
        "inbox",
        "name",
        "principal_id",
        "role",
        "send_queue_max",
        "verified_by",
    )

    def __init__(
        self,
        hub: Hub,
        *,
        conn_id: str,
        role: str,
        principal_id: str,
        name: str | None,
        send_queue_max: int = 1000,
    ) -> None:
        self.hub = hub
        self.conn_id = conn_id
        self.role = role  # "visitor" or "agent"
        self.principal_id = principal_id
        self.name = name
        self.cursors: dict[str, Cursor] = {}
        self.inbox: str | None = None
        # A verified visitor's account: new conversations reach all of its devices.
        self.account_id: str | None = None
        # And who verified it (the account's identity provider), for agents' inboxes.
        self.verified_by: str | None = None
        self.closing: tuple[int, str] | None = None
        self.send_queue_max = send_queue_max
        # A list, not a deque: an empty deque holds a 64-slot block, and most
        # sockets are idle most of the time.
        self._outbox: list[str] = []
        self._held: list[str] | None = None
        self._transport: Transport | None = None
        # The writer task exists only while frames wait: an idle socket costs no task.
        self._writer: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None

    @property
    def is_visitor(self) -> bool:
        return self.role == "visitor"

    # ------------------------------------------------------------ outgoing

    def connect(self, transport: Transport) -> None:
        """Start writing queued and future frames to ``transport``."""
        self._transport = transport
        self._kick()

    def hold(self) -> None:
        """Keep frames back until ``release``: nothing may reach a visitor before its
        ``welcome``, though the socket follows its topics (typing, a new conversation on
        another device) from before the welcome is written, so that nothing is missed."""
        if self._held is None:
            self._held = []

    def release(self, first: str | None = None) -> None:
        """Send ``first`` (the welcome), then what was held, in order."""
        held, self._held = self._held, None
        if first is not None:
            self.send(first)
        for text in held or ():
            self.send(text)

    def send(self, text: str) -> None:
        if self.closing is not None:
            return
        if self._held is not None:
            self._held.append(text)
            if len(self._held) >= self.send_queue_max:
                self.release()  # the queue's own limit then applies
            return
        if len(self._outbox) >= self.send_queue_max:
            # A client that does not read would hold memory without bound; it
            # reconnects and resumes instead.
            self.close(
                CLOSE_TRY_AGAIN, "too many frames waiting: reconnect and resume", drop_pending=True
            )
            return
        self._outbox.append(text)
        self._kick()

    def close(self, code: int, reason: str, *, drop_pending: bool = False) -> None:
        """Close after the frames already queued (an error saying why goes out first)."""
        if self.closing is None:
            self.closing = (code, reason)
            if drop_pending:
                self._outbox.clear()
            self._kick()

    async def finished(self) -> None:
        """Wait until everything queued, and the close, has been written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def _kick(self) -> None:
        if self._drained is not None and not self._outbox:
            self._drained.set()
        if self._transport is not None and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain(self._transport))

    async def _drain(self, transport: Transport) -> None:
        try:
            while self._outbox:
                frames, self._outbox = self._outbox, []
                if self._drained is not None:
                    self._drained.set()
                await transport.send_frames(frames)
            if self.closing is not None:
                await transport.close(*self.closing)
                self._transport = None
        except Exception:
            # The socket is gone: nothing more can be written to it.
            self._transport = None
            self._outbox.clear()
            if self.closing is None:
                self.closing = (CLOSE_GOING_AWAY, "connection lost")
        finally:
            self._writer = None
            if self._drained is not None:
                self._drained.set()

    async def wait_writable(self) -> None:
        """Wait until at most half the send queue is in use (a replay's back-pressure)."""
        while len(self._outbox) > self.send_queue_max // 2 and self.closing is None:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    def take_frames(self) -> list[str]:
        """Frames queued right now, without waiting (for socket-free drivers and tests)."""
        frames, self._outbox = self._outbox, []
        if self._drained is not None:
            self._drained.set()
        return frames

    # ------------------------------------------------------------ conversations

    def track(self, conversation_id: str, *, syncing: bool) -> Cursor:
        """Follow a conversation; with ``syncing`` live events wait for ``settle``."""
        cursor = self.cursors.get(conversation_id)
        if cursor is None:
            cursor = self.cursors[conversation_id] = Cursor()
            self.hub.attach(self, "c:" + conversation_id)
        if syncing:
            cursor.syncing += 1
        return cursor

    def settle(self, conversation_id: str, last_seq: int) -> None:
        """End a ``track(syncing=True)``: the socket is up to date with ``last_seq``."""
        cursor = self.cursors.get(conversation_id)
        if cursor is None:
            return
        if cursor.seq < last_seq:
            cursor.seq = cursor.floor = last_seq
        self._end_sync(conversation_id, cursor)

    def acked(self, conversation_id: str, seq: int) -> None:
        """This socket sent message ``seq`` and had its ack: it has it.

        Its own event, coming back through the broker, would only move the cursor;
        if that event is lost (a subscription not yet confirmed, a broker cut), the
        next one would look like a gap, and the refill would send the socket its
        own message a second time.
        """
        cursor = self.cursors.get(conversation_id)
        if cursor is not None and not cursor.syncing and seq == cursor.seq + 1:
            cursor.seq = seq

    def untrack(self, conversation_id: str) -> None:
        if self.cursors.pop(conversation_id, None) is not None:
            self.hub.detach(self, "c:" + conversation_id)

    def deliver(self, event: Event) -> None:
        """Hand one live event to this socket, applying the delivery rule."""
        if event.seq == 0:
            if event.origin == self.conn_id or (event.agents_only and self.is_visitor):
                return
            self.send(event.frame)
            return
        cid = event.conversation_id
        assert cid is not None
        cursor = self.cursors.get(cid)
        if cursor is None:
            return
        if cursor.syncing:
            cursor.pending.append(event)
        elif event.seq <= cursor.seq:
            return
        elif event.seq == cursor.seq + 1:
            self._emit(cursor, event.seq, event.frame, event.origin, event.agents_only)
        else:
            cursor.pending.append(event)
            cursor.syncing += 1
            self.hub.spawn(self.replay(cid, cursor.seq, announce=False, already_syncing=True))

    def _emit(
        self, cursor: Cursor, seq: int, frame: str, origin: str | None, agents_only: bool
    ) -> None:
        if seq > cursor.seq:
            cursor.seq = seq
        if origin == self.conn_id or (agents_only and self.is_visitor):
            return  # the sender had its ack; visitors never see notes (only the seq moves)
        self.send(frame)

    async def replay(
        self,
        conversation_id: str,
        after_seq: int,
        *,
        announce: bool,
        already_syncing: bool = False,
    ) -> None:
        """Send what this socket has not seen after ``after_seq``, from the store, in order."""
        cursor = self.cursors.get(conversation_id)
        if cursor is None:
            return
        if not already_syncing:
            cursor.syncing += 1
        try:
            await self.hub.replay_into(self, conversation_id, cursor, after_seq)
        finally:
            if self.cursors.get(conversation_id) is cursor:
                self._end_sync(conversation_id, cursor)
        if announce:
            self.send(self.hub.resumed_frame(conversation_id, cursor.seq))

    def _end_sync(self, conversation_id: str, cursor: Cursor) -> None:
        cursor.syncing -= 1
        if cursor.syncing or not cursor.pending:
            return
        pending = sorted(cursor.pending, key=lambda e: e.seq)
        cursor.pending = []
        for event in pending:
            self.deliver(event)
