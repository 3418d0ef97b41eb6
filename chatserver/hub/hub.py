"""The relay core: who may send where, sequence and delivery, typing, read state, presence.

The Hub owns this node's sockets (``Peer``) and the topics they follow. Every
write goes to the Store first; only after its transaction committed is the ack
sent and the event published to the Broker, with its frame encoded once. Events
coming back from the Broker are handed to the local peers that follow the topic.

Topics: ``c:<conversation id>`` (messages, typing, read), ``v:<visitor id>``
(a visitor's new conversations, for their other tabs), ``inbox`` (conversation
changes for agents) and ``presence``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver import protocol as p
from chatserver.broker.base import Broker, Event
from chatserver.clock import Clock, format_ts
from chatserver.errors import CLOSE_GOING_AWAY, CLOSE_POLICY, BadRequest, ChatError, NotFound
from chatserver.hub.peer import Cursor, Peer
from chatserver.metrics import Metrics
from chatserver.origins import AllowedOrigins
from chatserver.shared.base import SharedState
from chatserver.shared.memory import MemoryState
from chatserver.shared.presence import Change, ClusterPresence
from chatserver.store.base import Store
from chatserver.store.models import Account, Agent, Conversation, NewMessage, StoredMessage

if TYPE_CHECKING:
    from chatserver.mail.service import Mail
    from chatserver.opening_hours import OpeningHours
    from chatserver.privacy.service import Privacy

log = logging.getLogger(__name__)

REPLAY_PAGE = 500

# Kinds of message only agents ever receive: internal notes, and the timeline's event
# lines (chatserver/timeline.py).
AGENTS_ONLY_KINDS = frozenset({"note", "event"})

# An observer of business events: ``conversation.created``, ``message.created``,
# ``conversation.resolved``, ``subject.erased``, ``rating.created`` …, with their data.
Observer = Callable[[str, dict[str, Any]], None]


def author_of(message: StoredMessage) -> p.Author:
    return p.Author(
        role=message.author_role,  # type: ignore[arg-type]
        id=message.author_id,
        name=message.author_name,
    )


def message_frame(message: StoredMessage, author: p.Author | None = None) -> str:
    return p.encode(
        p.MessageOut(
            conversation_id=message.conversation_id,
            message_id=message.id,
            seq=message.seq,
            ts=format_ts(message.created_at),
            author=author or author_of(message),
            body=message.body,
            kind=message.kind,  # type: ignore[arg-type]
            attachments=[
                p.AttachmentOut(id=a.id, name=a.name, size=a.size, type=a.type)
                for a in message.attachments
            ],
            event=msgspec.UNSET if message.event is None else message.event,
        )
    )


def ack_frame(message: StoredMessage) -> str:
    return p.encode(
        p.Ack(
            client_msg_id=message.client_msg_id or "",
            conversation_id=message.conversation_id,
            message_id=message.id,
            seq=message.seq,
            ts=format_ts(message.created_at),
        )
    )


def conversation_frame(
    conversation: Conversation, *, for_visitor: bool = False, rating: int | None = None
) -> str:
    """A conversation change. Agents' copy says who the verified visitor is and the
    conversation's ``rating`` (its score); visitors' copy leaves that and the tags out."""
    assignee = None
    if conversation.assignee_id is not None:
        assignee = p.Assignee(id=conversation.assignee_id, name=conversation.assignee_name or "")
    agents: dict[str, Any] = {}
    if not for_visitor:
        agents = {
            "tags": conversation.tags,
            "name": conversation.name,
            "verified_by": conversation.verified_by,
            "rating": None if rating is None else p.RatingOut(score=rating),
        }
    return p.encode(
        p.ConversationOut(
            id=conversation.id,
            status=conversation.status,
            assignee=assignee,
            last_seq=conversation.last_seq,
            **agents,
        )
    )


def as_chat_error(exc: BaseException) -> ChatError:
    """What to tell the client: the error itself if it is ours, else a bare `internal`."""
    if not isinstance(exc, ChatError):
        log.error("unexpected error", exc_info=exc)
        return ChatError()
    return exc


def error_frame(error: ChatError, ref: str | None = None) -> str:
    return p.encode(p.ErrorOut(code=error.code, message=error.message, ref=ref))


def erased_event(visitor_ids: tuple[str, ...], conversation_ids: tuple[str, ...]) -> Event:
    """What every node hears of an erasure: whose sockets to close, what agents forget."""
    return Event(
        topic="presence",
        kind="erased",
        frame=p.encode(p.ErasedOut(conversation_ids=list(conversation_ids))),
        visitor_ids=visitor_ids,
        conversation_ids=conversation_ids,
    )


class Hub:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        assign_capacity: int | None = None,
        origins: AllowedOrigins | None = None,
        shared: SharedState | None = None,
    ) -> None:
        """``assign_capacity``: auto-assign new conversations to agents holding fewer than
        this many open ones; None leaves them in Unassigned. ``shared``: state shared with
        the cluster's other nodes (presence, the round-robin turn); in memory without it."""
        self.store = store
        self.broker = broker
        self.clock = clock or Clock()
        self.metrics = metrics or Metrics()
        self._topics: dict[str, set[Peer]] = {}
        self._inbox: set[Peer] = set()
        self._agents: set[Peer] = set()
        self._visitors: set[Peer] = set()
        self.shared: SharedState = shared or MemoryState()
        # Agents of the whole cluster; changes are told to this node's sockets.
        self.presence = ClusterPresence(
            self.shared,
            publish=broker.publish,
            on_change=self._presence_changed,
            clock=self.clock,
        )
        self.origins = origins or AllowedOrigins(frozenset())
        self._assign_capacity = assign_capacity
        self._tasks: set[asyncio.Task[Any]] = set()
        self._peers: set[Peer] = set()
        # Identity verification and account linking, when the server has them.
        self.privacy: Privacy | None = None
        # Email (offline notices, transcripts), when an SMTP server is configured.
        self.mail: Mail | None = None
        # Business hours (chatserver/opening_hours.py); without them, always open.
        self.hours: OpeningHours | None = None
        # Told of what happened, once, on the node where it happened (webhooks and the
        # like): ``(event type, data)``; they must not block.
        self.observers: list[Observer] = []
        # Heads of followed conversations as the store had them at the last catch-up.
        self._heads_seen: dict[str, int] = {}

    async def start(self) -> None:
        await self.origins.reload(self.store)
        await self.broker.start(self.on_event)
        for topic in ("inbox", "presence"):
            await self.broker.subscribe(topic)
        await self.shared.start()
        await self.presence.start()

    async def close(self) -> None:
        if self.hours is not None:
            self.hours.close()
        for peer in list(self._peers):
            peer.close(CLOSE_GOING_AWAY, "server shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.presence.close()
        await self.broker.close()
        await self.shared.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def background_done(self) -> None:
        """Wait for the gap fills and subscriptions running now (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # ------------------------------------------------------------ peers and topics

    def register(self, peer: Peer, *, human: bool = False) -> None:
        """Count a socket in; an agent's ``human`` says whether it can answer visitors."""
        if peer in self._peers:
            return  # a hello retried after a failed one
        self._peers.add(peer)
        self.metrics.sockets[peer.role] += 1
        if peer.is_visitor:
            # Frames for it wait until its welcome is written (``Peer.hold``).
            self._visitors.add(peer)
            return
        self._agents.add(peer)
        self.presence.join(peer.principal_id, peer.name or "", human=human)
        # A new socket hears who was here already; later changes come as they happen.
        for agent_id, name, status in self.presence.everyone():
            if agent_id != peer.principal_id:
                peer.send(
                    p.encode(
                        p.PresenceAgent(
                            agent=p.Assignee(id=agent_id, name=name),
                            status=status,  # type: ignore[arg-type]
                        )
                    )
                )

    def unregister(self, peer: Peer) -> None:
        if peer not in self._peers:
            return
        self._peers.discard(peer)
        self.metrics.sockets[peer.role] -= 1
        for cid in list(peer.cursors):
            peer.untrack(cid)
        if peer.is_visitor:
            self.detach(peer, self.owner_topic(peer))
            self._visitors.discard(peer)
            return
        self._inbox.discard(peer)
        self._agents.discard(peer)
        self.presence.leave(peer.principal_id)

    def set_away(self, peer: Peer, away: bool) -> None:
        """An agent says they are away (or back): other agents and visitors hear of it."""
        self.presence.set_away(peer.principal_id, away)

    def _presence_changed(self, changes: list[Change], answering_changed: bool) -> None:
        """The cluster's presence changed (here or on another node, which tells its own
        sockets itself): this node's agents hear each status, its visitors availability."""
        for agent_id, name, status in changes:
            frame = p.encode(
                p.PresenceAgent(
                    agent=p.Assignee(id=agent_id, name=name),
                    status=status,  # type: ignore[arg-type]
                )
            )
            for peer in tuple(self._agents):
                peer.send(frame)
        if answering_changed:
            frame = self.availability_frame()
            for peer in tuple(self._visitors):
                peer.send(frame)

    @staticmethod
    def owner_topic(peer: Peer) -> str:
        """Where a visitor socket hears of new conversations: all devices of a verified
        person, else the tabs of one browser."""
        return "a:" + peer.account_id if peer.account_id else "v:" + peer.principal_id

    def erased(self, visitor_ids: tuple[str, ...], conversation_ids: tuple[str, ...]) -> None:
        """A person was erased: on every node, close their sockets and tell agents to forget
        their conversations, so nothing queued or cached brings the data back."""
        self.broker.publish(erased_event(visitor_ids, conversation_ids))

    def _on_erased(self, event: Event) -> None:
        gone = set(event.visitor_ids)
        conversations = set(event.conversation_ids)
        for peer in tuple(self._visitors):
            if peer.principal_id in gone:
                peer.close(CLOSE_POLICY, "erased", drop_pending=True)
        for peer in tuple(self._agents):
            followed = conversations.intersection(peer.cursors)
            for cid in followed:
                peer.untrack(cid)
            if followed or peer.inbox is not None:
                peer.send(event.frame)

    def attach(self, peer: Peer, topic: str) -> None:
        peers = self._topics.get(topic)
        if peers is None:
            peers = self._topics[topic] = set()
            self.spawn(self.broker.subscribe(topic))
        peers.add(peer)

    def detach(self, peer: Peer, topic: str) -> None:
        peers = self._topics.get(topic)
        if peers is None:
            return
        peers.discard(peer)
        if not peers:
            del self._topics[topic]
            self.spawn(self.broker.unsubscribe(topic))

    def online_agents(self) -> list[str]:
        return self.presence.agent_ids()

    @property
    def agents_online(self) -> bool:
        """Whether a human agent who is not away has a socket open on any node."""
        return self.presence.anyone_answering

    @property
    def open_now(self) -> bool:
        """Whether it is within business hours now (always, when none are set)."""
        return self.hours is None or self.hours.open_now()

    def availability_frame(self) -> str:
        return p.encode(p.Availability(agents_online=self.agents_online, open_now=self.open_now))

    def hours_changed(self) -> None:
        """Business hours opened or closed. Every node's own timer sees it at the same
        moment, so each tells only its own visitors."""
        frame = self.availability_frame()
        for peer in tuple(self._visitors):
            peer.send(frame)

    def disconnect_agent(self, agent_id: str, error: ChatError) -> None:
        """Close every socket of this agent, on every node, telling them why."""
        self.broker.publish(
            Event(
                topic="presence",
                kind="disconnect",
                frame=error_frame(error),
                principal_id=agent_id,
            )
        )

    def origins_changed(self) -> None:
        """The admins' origins changed in the store: every node reloads them."""
        self.broker.publish(Event(topic="presence", kind="origins", frame=""))

    # ------------------------------------------------------------ events from the broker

    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind == "conversation":
            self._deliver_conversation(event)
        elif kind == "created":
            for peer in tuple(self._topics.get(event.topic, ())):
                assert event.conversation_id is not None
                peer.track(event.conversation_id, syncing=False)
                peer.send(event.frame)
        elif kind == "here":
            self.presence.apply(event.frame)
        elif kind == "disconnect":
            for peer in tuple(self._agents):
                if peer.principal_id == event.principal_id:
                    peer.send(event.frame)
                    peer.close(CLOSE_POLICY, "agent deactivated")
        elif kind == "erased":
            self._on_erased(event)
        elif kind == "origins":
            self.spawn(self.origins.reload(self.store))
        elif kind == "hours":
            # An admin saved a new schedule: every node reads it again.
            if self.hours is not None:
                self.spawn(self.hours.reload())
        elif kind == "resync":
            self._resync()
        else:
            for peer in tuple(self._topics.get(event.topic, ())):
                peer.deliver(event)

    async def catch_up_forever(self, interval: float) -> None:
        """Every ``interval`` seconds, ``catch_up``: the safety net under an at-most-once broker."""
        while True:
            await asyncio.sleep(interval)  # a timer: the work is periodic by design
            try:
                await self.catch_up()
            except ChatError as exc:
                log.warning("catch-up skipped: %s", exc.message)

    async def catch_up(self) -> int:
        """Send sockets what they missed: messages the store had at the previous check
        that have still not reached them (their event was lost with a dead node, or
        while this node's broker connection was cut). Answers how many replays began.

        Comparing with the previous check's heads, not the current ones, leaves
        alone messages whose events are merely in flight.
        """
        followed = {cid for peer in self._peers for cid in peer.cursors}
        seen, self._heads_seen = self._heads_seen, await self.store.last_seqs(sorted(followed))
        started = self._refill(lambda cid, cursor: cursor.seq < seen.get(cid, 0))
        self.metrics.caught_up += started
        return started

    def _resync(self) -> None:
        """The broker was cut off: whatever was published meanwhile never came. Every
        socket is brought up to date from the store, the truth, in seq order."""
        self.metrics.resyncs += 1
        self.presence.refresh_soon()
        self._refill(lambda cid, cursor: True)

    def _refill(self, behind: Callable[[str, Cursor], bool]) -> int:
        """Replay from the store, to every socket, each followed conversation ``behind``
        says it lacks; answers how many replays began. A cursor already syncing is left
        alone: the replay running now reads the store anyway."""
        started = 0
        for peer in tuple(self._peers):
            for conversation_id, cursor in tuple(peer.cursors.items()):
                if not cursor.syncing and behind(conversation_id, cursor):
                    self.spawn(peer.replay(conversation_id, cursor.seq, announce=False))
                    started += 1
        return started

    def _deliver_conversation(self, event: Event) -> None:
        targets = set(self._topics.get("c:" + (event.conversation_id or ""), ()))
        if event.agents_only:
            targets = {peer for peer in targets if not peer.is_visitor}
        for peer in self._inbox:
            inbox = peer.inbox
            if (
                inbox == "all"
                or (
                    inbox == "unassigned"
                    and (event.assignee_id is None or event.prev_assignee_id is None)
                )
                or (
                    inbox == "mine"
                    and peer.principal_id in (event.assignee_id, event.prev_assignee_id)
                )
            ):
                targets.add(peer)
        visitor_frame = event.visitor_frame or event.frame
        for peer in targets:
            peer.send(visitor_frame if peer.is_visitor else event.frame)

    # ------------------------------------------------------------ messages

    def send_message(
        self,
        peer: Peer,
        new: NewMessage,
        author: p.Author,
        settled: Callable[[], None] | None = None,
    ) -> None:
        """Store a message from a socket; ack and fan out after commit, or answer an error.

        ``settled`` is called once the store has answered, either way.
        """
        self.metrics.messages_received += 1

        def done(result: StoredMessage | BaseException) -> None:
            if settled is not None:
                settled()
            if isinstance(result, BaseException):
                error = as_chat_error(result)
                self.metrics.error(error.code)
                peer.send(error_frame(error, new.client_msg_id))
                return
            peer.send(ack_frame(result))
            if not result.duplicate:
                self.metrics.messages_stored += 1
                self._fan_out(result, author, origin=peer)
                peer.acked(result.conversation_id, result.seq)
            else:
                # A retry of a message already stored, maybe by a node that died before
                # its event left: publish it again; sockets that have it drop it by seq.
                self._publish_message(result, author, origin=peer)

        self.store.submit_message(new, done)

    async def post_message(self, new: NewMessage, author: p.Author) -> StoredMessage:
        """Store a message from the HTTP API and fan it out; answers the stored message."""
        message = await self.store.append_message(new)
        if not message.duplicate:
            self.metrics.messages_stored += 1
            self._fan_out(message, author, origin=None)
        return message

    def _fan_out(self, message: StoredMessage, author: p.Author, origin: Peer | None) -> None:
        cid = message.conversation_id
        if message.created_conversation:
            self.emit("conversation.created", {"message": message})
            if origin is not None:
                origin.track(cid, syncing=False)
            self._announce_new_conversation(message, origin)
            if self._assign_capacity is not None:
                self.spawn(self.auto_assign(cid))
        elif message.reopened:
            self.spawn(self.announce_change(cid, agents_only=False))
        self.emit("message.created", {"message": message})
        self._publish_message(message, author, origin)
        # The reopening it caused, recorded right after it.
        self.publish_events(message.events)

    def publish_events(self, events: Iterable[StoredMessage]) -> None:
        """Fan out event messages (chatserver/timeline.py) the store committed: to agents
        following their conversation, like notes; never ``message.created``."""
        for event in events:
            self._publish_message(event, author_of(event), None)

    def _publish_message(
        self, message: StoredMessage, author: p.Author, origin: Peer | None
    ) -> None:
        cid = message.conversation_id
        self.broker.publish(
            Event(
                topic="c:" + cid,
                kind="message",
                frame=message_frame(message, author),
                conversation_id=cid,
                seq=message.seq,
                agents_only=message.kind in AGENTS_ONLY_KINDS,
                origin=origin.conn_id if origin is not None else None,
            )
        )

    async def auto_assign(self, conversation_id: str) -> str | None:
        """Give a new conversation to the next agent in turn who is online and under capacity.

        Answers the agent's id, or None when nobody can take it (it stays in
        Unassigned). One assignment at a time in the whole cluster (the shared
        turn), so two new conversations never both see the same agent as under
        capacity, and turns rotate across the agents of every node.
        """
        if self._assign_capacity is None:
            return None
        async with self.shared.assignment_turn() as turn:
            candidates = self.presence.answering()
            if not candidates:
                return None
            load = await self.store.assigned_load(candidates)
            # Round-robin: start after the agent who got the last one.
            start = next((i for i, a in enumerate(candidates) if a > turn.last), 0)
            for agent_id in candidates[start:] + candidates[:start]:
                if load.get(agent_id, 0) < self._assign_capacity:
                    try:
                        await self.update_conversation(conversation_id, assignee_id=agent_id)
                    except ChatError:
                        continue  # deactivated meanwhile: try the next
                    turn.last = agent_id
                    return agent_id
            return None

    async def _rating_score(self, conversation_id: str) -> int | None:
        rating = await self.store.rating(conversation_id)
        return rating.score if rating else None

    async def announce_change(self, conversation_id: str, *, agents_only: bool = True) -> None:
        """Tell inboxes and followers of the conversation as it is now: after a change
        outside its row (its rating, its verified account: agents only), or a reopening."""
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return
        rating = await self._rating_score(conversation_id)
        self._publish_change(conversation, conversation, rating, agents_only=agents_only)

    def linked(self, account: Account) -> None:
        """A visitor was linked to a verified account: the conversations it merged have
        their `verified` event lines, and every console shows who the visitor is."""
        self.publish_events(account.events)
        for event in account.events:
            self.spawn(self.announce_change(event.conversation_id))

    def _announce_new_conversation(self, message: StoredMessage, origin: Peer | None) -> None:
        conversation = Conversation(
            id=message.conversation_id,
            visitor_id=message.author_id,
            account_id=None,
            status=message.conversation_status,
            assignee_id=None,
            assignee_name=None,
            tags=[],
            last_seq=message.seq,
            created_at=message.created_at,
            updated_at=message.created_at,
            last_message_at=None,
            closed_at=None,
            legal_hold=False,
        )
        if origin is not None and origin.account_id:
            # Started by a verified visitor: the conversation is their account's.
            conversation = msgspec.structs.replace(
                conversation,
                account_id=origin.account_id,
                name=origin.name,
                verified_by=origin.verified_by,
            )
        visitor_frame = conversation_frame(conversation, for_visitor=True)
        # Tabs that connected before the visitor was verified still follow the
        # browser's topic; a socket follows one of the two, so none hears it twice.
        topics = ["v:" + (message.author_id or "")]
        if origin is not None and origin.account_id:
            topics.append("a:" + origin.account_id)
        for topic in topics:
            self.broker.publish(
                Event(
                    topic=topic,
                    kind="created",
                    frame=visitor_frame,
                    conversation_id=message.conversation_id,
                )
            )
        # The visitor's own sockets heard of it on their topic just above.
        self.broker.publish(
            Event(
                topic="inbox",
                kind="conversation",
                frame=conversation_frame(conversation),
                conversation_id=message.conversation_id,
                agents_only=True,
            )
        )

    # ------------------------------------------------------------ typing, read, resume

    def _publish_unsequenced(
        self, kind: str, frame: p.ServerFrame, conversation_id: str, origin: Peer
    ) -> None:
        """An event outside the seq order (typing, read) to everyone in the conversation but
        the socket it came from."""
        self.broker.publish(
            Event(
                topic="c:" + conversation_id,
                kind=kind,
                frame=p.encode(frame),
                conversation_id=conversation_id,
                origin=origin.conn_id,
            )
        )

    def typing(self, peer: Peer, conversation_id: str, state: bool, author: p.Author) -> None:
        frame = p.TypingOut(conversation_id=conversation_id, state=state, author=author)
        self._publish_unsequenced("typing", frame, conversation_id, peer)

    def read(self, peer: Peer, conversation_id: str, seq: int, author: p.Author) -> None:
        def done(result: int | BaseException) -> None:
            if isinstance(result, BaseException):
                peer.send(error_frame(as_chat_error(result)))
                return
            frame = p.ReadOut(conversation_id=conversation_id, seq=seq, author=author)
            self._publish_unsequenced("read", frame, conversation_id, peer)

        self.store.submit_read(
            conversation_id, peer.role, peer.principal_id, seq, self.clock.now_us(), done
        )

    async def resume(self, peer: Peer, conversation_id: str, after_seq: int) -> None:
        """Replay what ``peer`` missed after ``after_seq``, then send ``resumed``."""
        conversation = await self.require_conversation(conversation_id)
        if after_seq > conversation.last_seq:
            raise BadRequest(
                f"after_seq {after_seq} is past the conversation's last seq {conversation.last_seq}"
            )
        if conversation_id not in peer.cursors:
            # An agent resuming a conversation it does not watch starts watching it.
            peer.track(conversation_id, syncing=True)
            peer.settle(conversation_id, after_seq)
        await peer.replay(conversation_id, after_seq, announce=True)

    async def replay_into(
        self, peer: Peer, conversation_id: str, cursor: Cursor, after_seq: int
    ) -> None:
        if after_seq > cursor.seq:
            cursor.seq = after_seq  # the client has these already
        start = after_seq
        # A page never fills more than half the send queue, and the next waits
        # until the client has taken it: a slow reader slows its replay down
        # instead of being cut off for it.
        page = max(1, min(REPLAY_PAGE, peer.send_queue_max // 2))
        while True:
            await peer.wait_writable()
            messages = await self.store.messages_after(conversation_id, start, page)
            for message in messages:
                if cursor.floor < message.seq <= cursor.seq:
                    continue
                if peer.cursors.get(conversation_id) is not cursor:
                    return
                if message.seq > cursor.seq:
                    cursor.seq = message.seq
                if message.kind in AGENTS_ONLY_KINDS and peer.is_visitor:
                    continue
                peer.send(message_frame(message))
            if len(messages) < page:
                break
            start = messages[-1].seq
        cursor.floor = min(cursor.floor, after_seq)

    def resumed_frame(self, conversation_id: str, last_seq: int) -> str:
        return p.encode(p.Resumed(conversation_id=conversation_id, last_seq=last_seq))

    async def watch(self, peer: Peer, conversation_id: str) -> int:
        """Follow a conversation from its current last seq; answers that seq."""
        if conversation_id in peer.cursors:
            return peer.cursors[conversation_id].seq
        peer.track(conversation_id, syncing=True)
        try:
            conversation = await self.require_conversation(conversation_id)
        except BaseException:
            peer.untrack(conversation_id)
            raise
        peer.settle(conversation_id, conversation.last_seq)
        return conversation.last_seq

    def subscribe_inbox(self, peer: Peer, inbox: str | None) -> None:
        peer.inbox = inbox
        if inbox is None:
            self._inbox.discard(peer)
        else:
            self._inbox.add(peer)

    async def require_conversation(self, conversation_id: str) -> Conversation:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            raise NotFound("no such conversation")
        return conversation

    # ------------------------------------------------------------ conversation changes

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        status: str | None = None,
        assignee_id: str | None = None,
        unassign: bool = False,
        tags: list[str] | None = None,
        actor: Agent | None = None,
    ) -> Conversation:
        """Change a conversation as ``actor`` (None: the server itself, as auto-assignment
        does); its event lines and the change reach agents, the change the visitor too."""
        before, after = await self.store.update_conversation(
            conversation_id,
            now=self.clock.now_us(),
            status=status,
            assignee_id=assignee_id,
            unassign=unassign,
            tags=tags,
            actor=actor,
        )
        self.publish_events(after.events)
        self._publish_change(before, after, await self._rating_score(conversation_id))
        if after.status == "resolved" and before.status != "resolved":
            self.emit("conversation.resolved", {"conversation": after})
        return after

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Tell the observers; one that fails is logged and never stops the others."""
        for observer in self.observers:
            try:
                observer(event_type, data)
            except Exception:
                log.exception("observer of %s failed", event_type)

    def _publish_change(
        self,
        before: Conversation,
        after: Conversation,
        rating: int | None,
        *,
        agents_only: bool = False,
    ) -> None:
        """A conversation's status, assignee or tags changed (or, ``agents_only``, what only
        agents are shown of it): inboxes and followers hear it."""
        self.broker.publish(
            Event(
                topic="inbox",
                kind="conversation",
                frame=conversation_frame(after, rating=rating),
                visitor_frame=None if agents_only else conversation_frame(after, for_visitor=True),
                conversation_id=after.id,
                assignee_id=after.assignee_id,
                prev_assignee_id=before.assignee_id,
                agents_only=agents_only,
            )
        )
