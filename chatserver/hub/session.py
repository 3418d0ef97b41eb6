"""One socket's conversation with the server: frames in, frames out, no I/O of its own.

The web layer creates a ``VisitorSession`` or ``AgentSession`` per socket,
passes every received text frame to ``handle`` and writes whatever the peer
queues. Everything about the protocol (the order of frames, who may do what,
bad input, flooding) is decided here, so it is tested without a socket.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from chatserver import protocol as p
from chatserver import ratings
from chatserver.auth import new_token, token_hash
from chatserver.clock import uuid7
from chatserver.config import Settings
from chatserver.errors import (
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    BadFrame,
    BadRequest,
    ChatError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    VerificationRequired,
)
from chatserver.hub.hub import Hub, error_frame
from chatserver.hub.peer import Peer
from chatserver.privacy.identity import Identity
from chatserver.ratelimit import TokenBucket
from chatserver.store.models import Account, Agent, NewMessage, SessionInfo
from chatserver.useragent import describe_async

log = logging.getLogger(__name__)


class _Session:
    __slots__ = (
        "_bucket",
        "_max_body",
        "_max_frame",
        "_max_strikes",
        "_max_unacked",
        "_room",
        "_strikes",
        "_unacked",
        "hub",
        "peer",
        "settings",
    )
    role = ""

    def __init__(self, hub: Hub, settings: Settings, *, principal_id: str, name: str | None):
        self.hub = hub
        self.settings = settings
        self.peer = Peer(
            hub,
            conn_id=uuid7(),
            role=self.role,
            principal_id=principal_id,
            name=name,
            send_queue_max=settings.send_queue_max,
        )
        self._bucket = TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst)
        self._strikes = 0
        # Read once: these are consulted on every frame.
        self._max_frame = settings.max_frame_bytes
        self._max_body = settings.max_body_chars
        self._max_strikes = settings.max_bad_frames
        # Sends waiting for their commit. Past ``max_unacked`` the socket is not
        # read until some are answered, so a client sending faster than the
        # store commits is slowed by TCP itself instead of queueing without end.
        self._unacked = 0
        self._max_unacked = settings.max_unacked
        self._room: asyncio.Event | None = None

    @property
    def author(self) -> p.Author:
        return p.Author(role=self.role, id=self.peer.principal_id, name=self.peer.name)  # type: ignore[arg-type]

    async def handle(self, text: str) -> None:
        """Act on one received frame; errors are answered on the socket, never raised."""
        if len(text) > self._max_frame:
            self._fail(TooLarge(f"frame over {self._max_frame} bytes"), None)
            self.peer.close(CLOSE_TOO_BIG, "frame too large")
            return
        if not self._bucket.take():
            self._strike(RateLimited("too many frames: slow down"), p.client_msg_id_of(text))
            return
        try:
            frame = self.parse(text)
        except BadFrame as exc:
            self._strike(exc, p.client_msg_id_of(text))
            return
        self.hub.metrics.frame(str(type(frame).__struct_config__.tag))
        if self._unacked >= self._max_unacked and isinstance(frame, p.Send):
            await self._wait_for_room()
        try:
            await self.dispatch(frame)
        except ChatError as exc:
            self._fail(exc, getattr(frame, "client_msg_id", None))
            if isinstance(exc, BadRequest):
                self._strike_only()

    async def handle_bad(self, error: ChatError) -> None:
        """A frame the web layer could not even read as text."""
        if not self._bucket.take():
            error = RateLimited("too many frames: slow down")
        self._strike(error, None)

    def parse(self, text: str) -> p.ClientFrame:
        raise NotImplementedError

    def _submit(
        self,
        frame: p.Send,
        *,
        conversation_id: str | None,
        new_conversation: bool = False,
        visitor_id: str | None = None,
        contact_email: str | None = None,
    ) -> None:
        """Store ``frame``'s message as this socket's principal, acked once committed."""
        now = self.hub.clock.now_us()
        new = NewMessage(
            message_id=uuid7(now),
            author_role=self.role,
            author_id=self.peer.principal_id,
            kind=frame.kind,
            body=frame.body,
            created_at=now,
            client_msg_id=frame.client_msg_id,
            conversation_id=conversation_id,
            new_conversation_id=uuid7(now) if new_conversation else None,
            visitor_id=visitor_id,
            account_id=self.peer.account_id,
            contact_email=contact_email,
            attachments=frame.attachments,
        )
        self._unacked += 1
        self.hub.send_message(self.peer, new, self.author, self._settled)

    def _settled(self) -> None:
        self._unacked -= 1
        if self._room is not None and self._unacked < self._max_unacked:
            self._room.set()

    async def _wait_for_room(self) -> None:
        while self._unacked >= self._max_unacked and self.peer.closing is None:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    async def dispatch(self, frame: p.ClientFrame) -> None:
        raise NotImplementedError

    def closed(self) -> None:
        """The socket is gone: forget it everywhere."""
        self.hub.unregister(self.peer)

    def _fail(self, error: ChatError, ref: str | None) -> None:
        self.hub.metrics.error(error.code)
        self.peer.send(error_frame(error, ref))

    def _strike(self, error: ChatError, ref: str | None) -> None:
        self._fail(error, ref)
        self._strike_only()

    def _strike_only(self) -> None:
        self._strikes += 1
        if self._strikes >= self._max_strikes:
            self.peer.close(CLOSE_POLICY, "too many bad or throttled frames")

    def _check_body(self, body: str, attachments: tuple[str, ...] = ()) -> None:
        # A message may be just its files; then the body may be empty.
        if (not body or body.isspace()) and not attachments:
            raise BadRequest("body is empty")
        if len(body) > self._max_body:
            raise TooLarge(f"body over {self._max_body} characters")

    async def _ping(self) -> None:
        self.peer.send(p.PONG)


class VisitorSession(_Session):
    """A visitor's socket: ``hello`` first, then only their own conversations."""

    __slots__ = ("consent_needed", "ip", "session_id", "user_agent")
    role = "visitor"

    def __init__(
        self,
        hub: Hub,
        settings: Settings,
        *,
        ip: str | None = None,
        user_agent: str = "",
    ) -> None:
        super().__init__(hub, settings, principal_id="", name=None)
        self.ip = ip
        self.user_agent = user_agent
        self.session_id: str | None = None
        # The policy version this visitor must accept before sending (P9), if any.
        self.consent_needed: str | None = None

    @property
    def ready(self) -> bool:
        return self.session_id is not None

    def parse(self, text: str) -> p.ClientFrame:
        return p.parse_visitor_frame(text)

    async def dispatch(self, frame: p.ClientFrame) -> None:
        if isinstance(frame, p.Hello):
            if self.ready:
                raise BadRequest("hello was already sent on this socket")
            await self.hello(frame)
            return
        if not self.ready:
            raise BadRequest("send hello first")
        if isinstance(frame, p.Send):
            self.send(frame)
        elif isinstance(frame, p.TypingIn):
            self._own(frame.conversation_id)
            self.hub.typing(self.peer, frame.conversation_id, frame.state, self.author)
        elif isinstance(frame, p.ReadIn):
            self._own(frame.conversation_id)
            self.hub.read(self.peer, frame.conversation_id, frame.seq, self.author)
        elif isinstance(frame, p.Resume):
            self._own(frame.conversation_id)
            await self.hub.resume(self.peer, frame.conversation_id, frame.after_seq)
        elif isinstance(frame, p.Ping):
            await self._ping()
        elif isinstance(frame, p.TranscriptIn):
            await self.transcript(frame)
        elif isinstance(frame, p.Rate):
            await self.rate(frame)

    async def rate(self, frame: p.Rate) -> None:
        """Rate a resolved conversation of this visitor (chatserver/ratings.py)."""
        self._own(frame.conversation_id)
        if self.consent_needed is not None:
            # P9: a rating and its comment are stored, so the current notice comes first.
            raise Forbidden(f"accept privacy notice version {self.consent_needed} first")
        rating = await ratings.rate(
            self.hub,
            frame.conversation_id,
            visitor_id=self.peer.principal_id,
            score=frame.score,
            comment=frame.comment,
        )
        self.peer.send(
            p.encode(p.Rated(conversation_id=rating.conversation_id, score=rating.score))
        )

    async def transcript(self, frame: p.TranscriptIn) -> None:
        """Email a conversation's transcript (chatserver/mail decides where, and when)."""
        if self.hub.mail is None:
            raise Unavailable("email is not set up on this server")
        self._own(frame.conversation_id)
        if self.consent_needed is not None:
            # P9: an address given here is new personal data, taken under the current notice.
            raise Forbidden(f"accept privacy notice version {self.consent_needed} first")
        status = await self.hub.mail.request_transcript(
            visitor_id=self.peer.principal_id,
            account_id=self.peer.account_id,
            conversation_id=frame.conversation_id,
            email=frame.email,
            locale=frame.locale,
            ip=self.ip,
        )
        self.peer.send(
            p.encode(p.TranscriptRequested(conversation_id=frame.conversation_id, status=status))
        )

    def _own(self, conversation_id: str) -> None:
        # A visitor's socket follows exactly their conversations; anything else
        # is answered as if it did not exist, so ids cannot be probed.
        if conversation_id not in self.peer.cursors:
            raise NotFound("no such conversation")

    def send(self, frame: p.Send) -> None:
        if frame.kind != "text":
            raise Forbidden("visitors send text only")
        if self.consent_needed is not None:
            # P9: the current notice is accepted before anything is stored.
            raise Forbidden(
                f"accept privacy notice version {self.consent_needed} first: "
                "say hello again with consent"
            )
        self._check_body(frame.body, frame.attachments)
        if frame.conversation_id is not None:
            self._own(frame.conversation_id)
            if frame.contact is not None:
                raise BadRequest("contact goes with the message that starts a conversation")
        self._submit(
            frame,
            conversation_id=frame.conversation_id,
            new_conversation=frame.conversation_id is None,
            visitor_id=self.peer.principal_id,
            contact_email=frame.contact.email if frame.contact else None,
        )

    async def _verify(self, frame: p.Hello) -> tuple[Identity | None, ChatError | None]:
        """The hello's identity token, verified; or why it was refused."""
        privacy = self.hub.privacy
        if frame.identity is None:
            return None, None
        if privacy is None:
            return None, Unauthorized("identity tokens are not configured on this server")
        try:
            return await privacy.verify(frame.identity), None
        except Unauthorized as exc:
            return None, exc

    async def hello(self, frame: p.Hello) -> None:
        store = self.hub.store
        now = self.hub.clock.now_us()
        identity, identity_error = await self._verify(frame)
        if identity is None and self.settings.verified_only:
            self._fail(
                VerificationRequired(
                    "this chat is for verified users: log in, then open the chat again"
                    + (f" ({identity_error.message})" if identity_error else "")
                ),
                None,
            )
            self.peer.close(CLOSE_POLICY, "verification required")
            return
        known = None
        if identity is not None:
            assert self.hub.privacy is not None
            known = await self.hub.privacy.account_for(identity)
        visitor = None
        token = frame.visitor_token
        if token is not None:
            visitor = await store.visitor_by_token_hash(token_hash(token))
        if (
            visitor is not None
            and identity is not None
            and visitor.account_id is not None
            and (known is None or visitor.account_id != known.id)
        ):
            # Someone else is logged in on this browser now: their chats must
            # not meet the previous person's, so this browser starts afresh.
            visitor = None
        if visitor is None:
            # No token, or one this server does not know (erased, or another
            # server's): a new visitor, never an error that reveals which.
            token = new_token("vt")
            visitor = await store.create_visitor(uuid7(now), token_hash(token), now)
        assert token is not None
        merged = 0
        account: Account | None = None
        if identity is not None:
            assert self.hub.privacy is not None
            account, merged = await self.hub.privacy.link(visitor, identity)
            visitor = msgspec.structs.replace(visitor, account_id=account.id)
            # Each conversation it merged has its `verified` line; consoles show who it is.
            self.hub.linked(account)
        else:
            account = await store.account(visitor.account_id) if visitor.account_id else None
        self.peer.account_id = account.id if account else None
        device = await describe_async(self.user_agent)
        page = frame.page or p.Page()
        session_id = uuid7(now)
        await store.start_session(
            SessionInfo(
                id=session_id,
                visitor_id=visitor.id,
                started_at=now,
                ip=self.ip,
                user_agent=self.user_agent[:1024] or None,
                device_class=device.device_class,
                browser=device.browser,
                os=device.os,
                page_url=page.url or None,
                page_title=page.title or None,
                referrer=page.referrer or None,
                locale=frame.locale,
            )
        )
        self.session_id = session_id
        self.peer.principal_id = visitor.id
        self.peer.name = account.name if account else None
        self.peer.verified_by = account.verified_by if account else None
        self.peer.hold()
        try:
            self.hub.register(self.peer)
            self.hub.attach(self.peer, self.hub.owner_topic(self.peer))
            # Follow first, then read where each conversation stands: an event
            # committed in between waits in the cursor instead of being missed.
            for conversation in await store.visitor_conversations(visitor.id):
                self.peer.track(conversation.id, syncing=True)
            conversations = await store.visitor_conversations(visitor.id)
            read_by_agents = await store.agent_read_positions(visitor.id) if conversations else {}
            policy = await store.current_policy()
            accepted = False
            consent_error: ChatError | None = None
            if policy is not None:
                accepted = await store.has_consent(policy.version, visitor.id, visitor.account_id)
                if frame.consent is not None and not accepted:
                    if frame.consent.version == policy.version:
                        await store.record_consent(
                            uuid7(now), policy.version, visitor.id, visitor.account_id, now
                        )
                        accepted = True
                    else:
                        consent_error = Conflict(
                            f"consent is for version {frame.consent.version}, "
                            f"the current version is {policy.version}"
                        )
            if policy is not None and not accepted:
                self.consent_needed = policy.version
            self.peer.release(
                p.encode(
                    p.Welcome(
                        visitor_id=visitor.id,
                        visitor_token=token,
                        account=p.AccountOut(
                            id=account.id, name=account.name, verified_by=account.verified_by
                        )
                        if account
                        else None,
                        conversations=[
                            p.ConversationSummary(
                                id=c.id,
                                status=c.status,
                                last_seq=c.last_seq,
                                agent_read_seq=read_by_agents.get(c.id, 0),
                            )
                            for c in conversations
                        ],
                        policy=p.Policy(
                            version=policy.version if policy else None,
                            url=(policy.url if policy and policy.url else None)
                            or self.settings.policy_url
                            or None,
                            accepted=accepted,
                        ),
                        agents_online=self.hub.agents_online,
                        open_now=self.hub.open_now,
                        session_id=session_id,
                        merged=merged,
                        email_transcripts=self.hub.mail is not None
                        and self.hub.mail.offers_transcripts(account.email if account else None),
                    )
                )
            )
        except BaseException:
            self.peer.release()  # the error that follows must reach the client
            raise
        if identity_error is not None:
            # After the welcome, so the client knows where it stands when it reads why.
            self._fail(
                Unauthorized(
                    f"identity token not accepted ({identity_error.message}): "
                    "the chat goes on as anonymous"
                ),
                None,
            )
        if consent_error is not None:
            self._fail(consent_error, None)
        for conversation in conversations:
            self.peer.settle(conversation.id, conversation.last_seq)

    def closed(self) -> None:
        super().closed()
        if self.session_id is not None:
            self.hub.store.end_session(self.session_id, self.hub.clock.now_us())


class AgentSession(_Session):
    """An agent's (or bot's) socket, authenticated before it was accepted."""

    __slots__ = ("agent",)
    role = "agent"

    def __init__(self, hub: Hub, settings: Settings, agent: Agent) -> None:
        super().__init__(hub, settings, principal_id=agent.id, name=agent.name)
        self.agent = agent
        # Bots (token-made agents) do not count as someone online for visitors.
        hub.register(self.peer, human=agent.kind == "human")

    def parse(self, text: str) -> p.ClientFrame:
        return p.parse_agent_frame(text)

    async def dispatch(self, frame: p.ClientFrame) -> None:
        hub, peer = self.hub, self.peer
        if isinstance(frame, p.Send):
            self.send(frame)
        elif isinstance(frame, p.TypingIn):
            if frame.conversation_id not in peer.cursors:
                await hub.require_conversation(frame.conversation_id)
            hub.typing(peer, frame.conversation_id, frame.state, self.author)
        elif isinstance(frame, p.ReadIn):
            hub.read(peer, frame.conversation_id, frame.seq, self.author)
        elif isinstance(frame, p.Resume):
            await hub.resume(peer, frame.conversation_id, frame.after_seq)
        elif isinstance(frame, p.Watch):
            last_seq = await hub.watch(peer, frame.conversation_id)
            peer.send(
                p.encode(p.Watching(conversation_id=frame.conversation_id, last_seq=last_seq))
            )
        elif isinstance(frame, p.Unwatch):
            peer.untrack(frame.conversation_id)
        elif isinstance(frame, p.Subscribe):
            hub.subscribe_inbox(peer, frame.inbox)
            peer.send(p.encode(p.Subscribed(inbox=frame.inbox)))
        elif isinstance(frame, p.Unsubscribe):
            hub.subscribe_inbox(peer, None)
        elif isinstance(frame, p.SetStatus):
            hub.set_away(peer, frame.status == "away")
        elif isinstance(frame, p.Hello):
            peer.send(
                p.encode(
                    p.AgentWelcome(
                        agent=p.AgentOut(
                            id=self.agent.id, name=self.agent.name, role=self.agent.role
                        )
                    )
                )
            )
        elif isinstance(frame, p.Ping):
            await self._ping()

    def send(self, frame: p.Send) -> None:
        if frame.conversation_id is None:
            raise BadRequest("conversation_id is required: agents answer existing conversations")
        if frame.contact is not None:
            raise BadRequest("contact is for visitors leaving a message")
        self._check_body(frame.body, frame.attachments)
        self._submit(frame, conversation_id=frame.conversation_id)
