"""Business hours at run time: the schedule in force, the timer that announces each opening
and closing, and the automatic reply to a conversation started while closed.

The hub asks ``open_now()`` for every ``welcome`` and availability frame. A timer
is set for the schedule's next boundary (``Hours.next_change``); when it fires,
``reevaluate`` compares with what visitors were last told and, on a change,
has the hub send ``presence {agents_online, open_now}`` to this node's visitor
sockets. There is no polling: the only periodic wake-up is a cap of one hour
on the wait, so a wall clock set forward or back is noticed within the hour.

Outside hours, the first message of a new conversation gets an automatic
``system`` message saying when someone will answer (next opening, in the
visitor's language, in the schedule's time zone).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatserver import protocol as p
from chatserver.broker.base import Event
from chatserver.business_hours import ALWAYS_OPEN, Hours, Schedule, closed_reply, validate
from chatserver.clock import uuid7
from chatserver.errors import ChatError
from chatserver.store.models import NewMessage, StoredMessage

if TYPE_CHECKING:
    from chatserver.hub.hub import Hub

log = logging.getLogger(__name__)

# The longest the timer waits before looking again (see the module's docstring).
MAX_WAIT_SECONDS = 3600.0
# Fire just after the boundary, not a hair before it by the loop's clock.
SLACK_SECONDS = 0.001
SYSTEM = p.Author(role="system", id=None, name=None)


def instant(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


class OpeningHours:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.hours = Hours(ALWAYS_OPEN)
        # When the schedule was saved; None while nobody has set one.
        self.updated_at: int | None = None
        self._told: bool | None = None  # what visitors were last told: open or not
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    async def start(self) -> None:
        await self.reload()
        self.hub.observers.append(self._observe)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def now(self) -> datetime:
        return instant(self.hub.clock.now_us())

    def open_now(self) -> bool:
        return self.hours.is_open(self.now())

    @property
    def schedule(self) -> Schedule:
        return self.hours.schedule

    async def reload(self) -> None:
        """Read the schedule from the store and act on it."""
        found = await self.hub.store.business_hours()
        schedule, updated_at = found if found is not None else (ALWAYS_OPEN, None)
        try:
            hours = Hours(schedule)
        except ChatError:
            # Its time zone was valid when saved but is gone from this system's
            # time zone data: keep the desk open rather than shut it silently.
            log.error("business hours: time zone %r is unknown here", schedule.time_zone)
            hours = Hours(ALWAYS_OPEN)
        self.hours, self.updated_at = hours, updated_at
        self.reevaluate()

    async def save(self, schedule: Schedule) -> None:
        """Store a new schedule (checked), act on it here, and have the other nodes reload."""
        schedule = validate(schedule)
        now = self.hub.clock.now_us()
        await self.hub.store.save_business_hours(schedule, now)
        self.hours, self.updated_at = Hours(schedule), now
        self.reevaluate()
        self.hub.broker.publish(Event(topic="presence", kind="hours", frame=""))

    def reevaluate(self) -> None:
        """Tell visitors if open/closed changed since they were last told; set the timer for
        the next boundary. Tests with a clock of their own call this after moving it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed:
            return
        now = self.now()
        is_open = self.hours.is_open(now)
        if self._told is not None and is_open != self._told:
            self.hub.hours_changed()
        self._told = is_open
        change = self.hours.next_change(now)
        if change is not None:
            wait = min((change - now).total_seconds(), MAX_WAIT_SECONDS)
            self._timer = asyncio.get_running_loop().call_later(
                max(wait, 0.0) + SLACK_SECONDS, self.reevaluate
            )

    # ------------------------------------------------------------ the automatic reply

    def _observe(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type != "conversation.created":
            return
        message: StoredMessage = data["message"]
        if message.author_role == "visitor" and not self.hours.is_open(instant(message.created_at)):
            self.hub.spawn(self._auto_reply(message))

    async def _auto_reply(self, message: StoredMessage) -> None:
        locale = None
        if message.author_id is not None:
            sessions = await self.hub.store.sessions_of(message.author_id)
            locale = next((s.locale for s in reversed(sessions) if s.locale), None)
        now = self.hub.clock.now_us()
        body = closed_reply(self.hours, instant(message.created_at), locale)
        try:
            await self.hub.post_message(
                NewMessage(
                    message_id=uuid7(now),
                    author_role="system",
                    author_id=None,
                    kind="text",
                    body=body,
                    created_at=now,
                    conversation_id=message.conversation_id,
                ),
                SYSTEM,
            )
        except ChatError as exc:
            # Erased in the meantime, say: nobody is left to tell.
            log.info("no automatic reply in %s: %s", message.conversation_id, exc.message)
