"""Sending in the background: the outbox worker.

Nothing on the relay's path waits for an SMTP server. Whoever has an email to
send writes it to the outbox table and calls ``wake``; this one task takes what
is due, hands each message to the SMTP server (aiosmtplib, with a timeout) and
deletes it once accepted. A failure is retried later, the wait doubling from
``smtp_retry_seconds`` up to an hour, until ``smtp_max_attempts``; a refusal
that will not change (5xx for the recipient or the message) is given up at once.
The outbox is a table, so what waits survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiosmtplib

from chatserver.clock import Clock
from chatserver.config import Settings
from chatserver.mail.render import envelope_sender
from chatserver.mail.store import Due, MailDb

log = logging.getLogger(__name__)

BATCH = 20
MAX_BACKOFF_SECONDS = 3600.0
# The worker looks at least this often, to remove expired confirmations.
IDLE_SECONDS = 60.0
# An expired confirmation is kept, without its address, this long to say "expired".
EXPIRED_KEPT_US = 7 * 86400 * 1_000_000


def _permanent(exc: BaseException) -> bool:
    """A refusal that retrying will not change: the recipient or the message was refused
    with a 5xx. Login and connection trouble are the operator's to fix: retried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return exc.code >= 500
    return False


class Outbox:
    def __init__(self, store: MailDb, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Counters, and a condition notified after each attempt (tests and metrics).
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.attempted = asyncio.Condition()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mail outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Something was queued: look now rather than at the next due time."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store may be busy or closing: try again after a while.
                log.exception("mail outbox run failed")
                delay = float(self.settings.smtp_retry_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def run_once(self) -> float:
        """Send what is due; answers the seconds until the next message is due."""
        now = self.clock.now_us()
        await self.store.purge_expired(now, EXPIRED_KEPT_US)
        # A message being sent is not due again before its attempt has surely ended.
        lease = int(max(60.0, 4 * float(self.settings.smtp_timeout)) * 1_000_000)
        due = await self.store.claim_due(now, now + lease, BATCH)
        if due:
            await asyncio.gather(*(self._attempt(d) for d in due))
            if len(due) == BATCH:
                return 0.0
        upcoming = await self.store.next_due()
        if upcoming is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.0, (upcoming - self.clock.now_us()) / 1_000_000))

    async def _attempt(self, due: Due) -> None:
        try:
            await self._send(due)
        except Exception as exc:
            await self._failed(due, exc)
        else:
            await self.store.remove(due.id)
            self.sent += 1
            log.info("sent %s email %s", due.kind, due.id)
        async with self.attempted:
            self.attempted.notify_all()

    async def _send(self, due: Due) -> None:
        s = self.settings
        await aiosmtplib.send(
            due.message,
            sender=envelope_sender(s.mail_from),
            recipients=[due.recipient],
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_security == "tls",
            # True, not None: STARTTLS is required, never skipped when not offered.
            start_tls=s.smtp_security == "starttls",
            timeout=float(s.smtp_timeout),
        )

    async def _failed(self, due: Due, exc: Exception) -> None:
        # The log names the message and the error, never the address or the content.
        error = f"{type(exc).__name__}: {exc}".replace(due.recipient, "<recipient>")
        self.failed += 1
        if _permanent(exc) or due.attempts >= int(self.settings.smtp_max_attempts):
            self.dropped += 1
            log.error(
                "giving up on %s email %s after %d attempt(s): %s",
                due.kind,
                due.id,
                due.attempts,
                error,
            )
            await self.store.remove(due.id)
            return
        wait = min(
            MAX_BACKOFF_SECONDS, float(self.settings.smtp_retry_seconds) * 2 ** (due.attempts - 1)
        )
        log.warning(
            "%s email %s not sent (attempt %d), retrying in %.0f s: %s",
            due.kind,
            due.id,
            due.attempts,
            wait,
            error,
        )
        await self.store.retry_later(due.id, self.clock.now_us() + int(wait * 1_000_000), error)
