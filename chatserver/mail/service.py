"""What is emailed to whom, and when.

- A message left with the widget's offline form (a conversation that starts
  ``pending`` with a contact email) is announced to agents by email, with a link
  to the conversation in the console. Visitors never get an email from this.
- A visitor may ask for a conversation's transcript (the ``transcript`` frame). A
  verified visitor gets it at their account's address at once. Any other
  address first gets a link; the transcript is sent only once it is opened and
  confirmed, so nobody can have a chat mailed to someone else's address. Only
  what the visitor could see is in it: internal notes never are.

The hub tells ``observe`` of new conversations (``Hub.observers``); the visitor
session calls ``request_transcript``; ``chatserver.mail.web`` serves the link.
Every email goes through the outbox (``outbox.Outbox``): nothing here waits for
an SMTP server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from chatserver.auth import token_hash
from chatserver.clock import Clock, uuid7
from chatserver.config import Settings, SettingsError
from chatserver.errors import BadRequest, NotFound, RateLimited, Unavailable
from chatserver.mail.outbox import Outbox
from chatserver.mail.render import (
    Renderer,
    compose,
    envelope_sender,
    format_time,
    pick_locale,
    valid_address,
)
from chatserver.mail.store import Confirmation, MailDb, MailStore, OutboxRow
from chatserver.shared.base import Limiter
from chatserver.shared.memory import MemoryLimiter
from chatserver.store.models import Conversation, StoredMessage
from chatserver.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from chatserver.hub.hub import Hub
    from chatserver.store.base import Store

log = logging.getLogger(__name__)

# A transcript carries at most this many messages (the email says when it stops short).
TRANSCRIPT_MAX_MESSAGES = 2000
_PAGE = 500
# A confirmation token is ``secrets.token_urlsafe(32)``: 43 characters.
MAX_TOKEN_CHARS = 100


def mail_store_for(store: object) -> MailDb | None:
    """The outbox and confirmations on ``store``'s database; None for a store without them."""
    if isinstance(store, SQLiteStore):
        return MailStore(store)
    from chatserver.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        from chatserver.mail.pg_store import PgMailStore

        return PgMailStore(store)
    return None


class LinkRefused(Exception):
    """A confirmation link that cannot be used: ``invalid``, ``expired`` or ``used``."""

    def __init__(self, state: str, locale: str | None = None) -> None:
        super().__init__(state)
        self.state = state
        self.locale = locale


class Mail:
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        db = mail_store_for(store)
        if db is None:
            raise SettingsError("email needs the SQLite or the PostgreSQL store")
        self.store = store
        self.settings = settings
        self.clock = clock
        self.db = db
        self.renderer = Renderer()
        self.outbox = Outbox(self.db, settings, clock)
        # Per visitor and per IP; ``start`` shares it with the cluster's other nodes.
        self.limiter: Limiter = MemoryLimiter(
            int(settings.transcript_requests_per_hour), 3600 * 1_000_000
        )
        self.public_url = str(settings.public_url).rstrip("/")
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def start(cls, settings: Settings, store: Store, hub: Hub) -> Mail | None:
        """Email for this server, started and hooked into ``hub``; None when it is off."""
        if not settings.smtp_host:
            return None
        if not valid_address(envelope_sender(settings.mail_from)):
            raise SettingsError(
                "mail_from: set it to the From address of emails (smtp_host is set)"
            )
        if settings.public_url and not str(settings.public_url).startswith(("https://", "http://")):
            raise SettingsError("public_url: expected https://host[:port][/path]")
        if mail_store_for(store) is None:
            raise SettingsError("email needs the SQLite or the PostgreSQL store")
        if not settings.public_url:
            log.warning(
                "public_url is not set: emails carry no console links, and transcripts go "
                "to verified addresses only"
            )
        mail = cls(store, settings, hub.clock)
        mail.limiter = hub.shared.limiter(
            "transcript", int(settings.transcript_requests_per_hour), 3600 * 1_000_000
        )
        hub.mail = mail
        hub.observers.append(mail.observe)
        mail.outbox.start()
        return mail

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.outbox.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("mail task failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until what was handed over is in the outbox (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------ offline messages

    def observe(self, event_type: str, data: dict[str, Any]) -> None:
        """Hub observer: must not block, so the work is a task of its own."""
        if event_type != "conversation.created" or self.settings.offline_notify == "off":
            return
        message = data.get("message")
        if isinstance(message, StoredMessage) and message.conversation_status == "pending":
            self._spawn(self.notify_offline(message))

    async def notify_offline(self, message: StoredMessage) -> int:
        """Email the agents about a message left with the offline form; answers how many."""
        conversation = await self.store.conversation(message.conversation_id)
        if conversation is None or not conversation.contact_email:
            return 0
        admins_only = self.settings.offline_notify == "admins"
        agents = [
            a
            for a in await self.store.list_agents()
            if a.active
            and a.kind == "human"
            and a.email
            and (a.role == "admin" if admins_only else a.role in ("agent", "admin"))
        ]
        if not agents:
            log.warning("offline message in %s: no agent with an email to tell", conversation.id)
            return 0
        locale = str(self.settings.mail_staff_locale)
        link = f"{self.public_url}/console#/c/{quote(conversation.id)}" if self.public_url else None
        now = self.clock.now_us()
        rows = []
        for agent in agents:
            assert agent.email is not None
            rendered = self.renderer.render(
                "offline_notice",
                locale,
                agent_name=agent.name,
                contact_email=conversation.contact_email,
                body=message.body,
                received=format_time(message.created_at, locale),
                link=link,
                conversation_id=conversation.id,
            )
            rows.append(
                OutboxRow(
                    id=uuid7(now),
                    kind="offline_notice",
                    recipient=agent.email,
                    # One email per agent: no agent sees the others' addresses.
                    message=compose(
                        rendered,
                        mail_from=self.settings.mail_from,
                        to=agent.email,
                        reply_to=conversation.contact_email,
                    ),
                    created_at=now,
                    conversation_id=conversation.id,
                    visitor_id=conversation.visitor_id,
                )
            )
        await self.db.enqueue(rows)
        self.outbox.wake()
        return len(rows)

    # ------------------------------------------------------------ transcripts

    def offers_transcripts(self, account_email: str | None) -> bool:
        """Whether this visitor can get a transcript: to their verified address, or to
        one they confirm (which needs ``public_url`` for the link)."""
        return bool(account_email or self.public_url)

    async def request_transcript(
        self,
        *,
        visitor_id: str,
        account_id: str | None,
        conversation_id: str,
        email: str | None,
        locale: str | None,
        ip: str | None,
    ) -> Literal["sent", "confirmation_sent"]:
        """A visitor's ``transcript`` frame (the conversation is theirs: the session checked).

        Answers ``sent`` (queued to the verified account's address) or
        ``confirmation_sent`` (a link went to ``email``; the transcript follows once
        it is opened and confirmed).
        """
        if email is not None:
            email = email.strip()
            if not valid_address(email):
                raise BadRequest("email is not an email address (like name@example.com)")
        account = await self.store.account(account_id) if account_id else None
        to_account = (
            account.email
            if account is not None
            and account.email
            and (email is None or email.lower() == account.email.lower())
            else None
        )
        if to_account is None:
            if email is None:
                raise BadRequest(
                    "email is required"
                    + (": your account has no email address" if account is not None else "")
                )
            if not self.public_url:
                raise Unavailable(
                    "this server cannot send confirmation links (no public_url): "
                    "transcripts go only to a verified account's address"
                )
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            raise NotFound("no such conversation")
        chosen = pick_locale(locale or await self._session_locale(visitor_id))
        keys = ["v:" + visitor_id] + (["ip:" + ip] if ip else [])
        now = self.clock.now_us()
        # Checked and counted in one step: two nodes never both let the last one through.
        wait = await self.limiter.take(keys, now)
        if wait is not None:
            raise RateLimited(
                f"too many transcript requests: try again in {wait} s", retry_after=wait
            )
        if to_account is not None:
            row = await self._transcript(conversation, to_account, chosen, visitor_id, now)
            await self.db.enqueue([row])
            self.outbox.wake()
            return "sent"
        assert email is not None
        token = secrets.token_urlsafe(32)
        expires = now + int(self.settings.transcript_confirm_ttl) * 1_000_000
        rendered = self.renderer.render(
            "confirmation",
            chosen,
            link=f"{self.public_url}/mail/confirm?token={token}",
            expires=format_time(expires, chosen),
        )
        await self.db.add_confirmation(
            Confirmation(
                token_hash=token_hash(token),
                visitor_id=visitor_id,
                conversation_id=conversation_id,
                email=email,
                locale=chosen,
                created_at=now,
                expires_at=expires,
            ),
            OutboxRow(
                id=uuid7(now),
                kind="confirmation",
                recipient=email,
                message=compose(rendered, mail_from=self.settings.mail_from, to=email),
                created_at=now,
                conversation_id=conversation_id,
                visitor_id=visitor_id,
            ),
        )
        self.outbox.wake()
        return "confirmation_sent"

    async def _session_locale(self, visitor_id: str) -> str | None:
        """The locale the visitor's widget said in its latest ``hello``."""
        for session in reversed(await self.store.sessions_of(visitor_id)):
            if session.locale:
                return session.locale
        return None

    async def _transcript(
        self, conversation: Conversation, to: str, locale: str, visitor_id: str, now: int
    ) -> OutboxRow:
        messages: list[dict[str, Any]] = []
        after = 0
        truncated = False
        while True:
            page = await self.store.messages_after(
                conversation.id, after, _PAGE, include_notes=False
            )
            for m in page:
                if m.kind in ("note", "event"):  # never, whatever the store was asked
                    continue
                if len(messages) == TRANSCRIPT_MAX_MESSAGES:
                    truncated = True
                    break
                messages.append(
                    {
                        "role": m.author_role,
                        "name": m.author_name,
                        "kind": m.kind,
                        "body": m.body,
                        "time": format_time(m.created_at, locale),
                    }
                )
            if truncated or len(page) < _PAGE:
                break
            after = page[-1].seq
        # A long conversation takes a while to render: not on the event loop.
        rendered = await asyncio.to_thread(
            self.renderer.render,
            "transcript",
            locale,
            messages=messages,
            truncated=truncated,
            started=format_time(conversation.created_at, locale),
        )
        return OutboxRow(
            id=uuid7(now),
            kind="transcript",
            recipient=to,
            message=compose(rendered, mail_from=self.settings.mail_from, to=to),
            created_at=now,
            conversation_id=conversation.id,
            visitor_id=visitor_id,
        )

    # ------------------------------------------------------------ the confirmation link

    async def check_link(self, token: str) -> Confirmation:
        """The pending confirmation ``token`` stands for, or ``LinkRefused``."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise LinkRefused("invalid")
        c = await self.db.confirmation(token_hash(token))
        if c is None:
            raise LinkRefused("invalid")
        if c.used_at is not None:
            raise LinkRefused("used", c.locale)
        if c.expires_at <= self.clock.now_us() or c.email is None:
            raise LinkRefused("expired", c.locale)
        return c

    async def confirm(self, token: str) -> Confirmation:
        """The link was opened and confirmed: queue the transcript, once."""
        c = await self.check_link(token)
        assert c.email is not None
        conversation = await self.store.conversation(c.conversation_id)
        if conversation is None:
            raise LinkRefused("invalid", c.locale)
        now = self.clock.now_us()
        row = await self._transcript(conversation, c.email, c.locale, c.visitor_id, now)
        if not await self.db.consume(c.token_hash, now, row):
            # Used (or expired) between the check and now: say which.
            await self.check_link(token)
            raise LinkRefused("used", c.locale)
        self.outbox.wake()
        return c
