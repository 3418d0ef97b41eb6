"""Webhooks as the rest of the server sees them: an observer of the hub's events, the
admin operations, and the dispatcher's lifetime.

The observer runs on the event loop inside the hub's commit callbacks, so it
must not block: it shapes one payload per subscribed endpoint and hands the
rows to the store's writer without awaiting. Endpoints are read from the
store at start, after each change made here, and every ``ENDPOINTS_REFRESH``
seconds (a change made through another node of the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from chatserver.clock import Clock, format_ts, uuid7
from chatserver.config import Settings
from chatserver.errors import Conflict, NotFound
from chatserver.store.models import AuditRecord
from chatserver.store.sqlite import SQLiteStore
from chatserver.webhooks.dispatcher import Dispatcher
from chatserver.webhooks.events import TEST_EVENT, shape
from chatserver.webhooks.store import (
    Delivery,
    Endpoint,
    NewDelivery,
    WebhookOutbox,
    WebhookStore,
)
from chatserver.webhooks.urls import check_url

if TYPE_CHECKING:
    from chatserver.hub.hub import Hub

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
# Seconds between reads of the endpoints, for changes made through another node.
ENDPOINTS_REFRESH = 10.0


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def envelope(delivery_id: str, event_type: str, created_at: int, data: dict[str, Any]) -> bytes:
    """The exact body sent: ``{id, type, created_at, data}``."""
    return msgspec.json.encode(
        {"id": delivery_id, "type": event_type, "created_at": format_ts(created_at), "data": data}
    )


def webhook_store_for(store: object) -> WebhookOutbox | None:
    """The endpoints and the outbox on ``store``'s database; None for a store without them."""
    if isinstance(store, SQLiteStore):
        return WebhookStore(store)
    from chatserver.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        from chatserver.webhooks.pg_store import PgWebhookStore

        return PgWebhookStore(store)
    return None


class Webhooks:
    def __init__(self, outbox: WebhookOutbox, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.outbox = outbox
        self.dispatcher = Dispatcher(self.outbox, settings, clock)
        self._endpoints: list[Endpoint] = []
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._hub: Hub | None = None

    @classmethod
    async def start_for(cls, store: object, settings: Settings, hub: Hub) -> Webhooks | None:
        """Webhooks observing ``hub``, with the dispatcher running; None for a store that
        keeps no outbox (the outbox lives in the SQLite or PostgreSQL store)."""
        outbox = webhook_store_for(store)
        if outbox is None:
            return None
        webhooks = cls(outbox, settings, hub.clock)
        await webhooks.start(hub)
        return webhooks

    async def start(self, hub: Hub | None = None) -> None:
        await self.reload()
        self._task = asyncio.create_task(self.dispatcher.run(), name="webhook dispatcher")
        self._refresh = asyncio.create_task(self._refresh_endpoints(), name="webhook endpoints")
        if hub is not None:
            hub.observers.append(self.on_event)
            self._hub = hub

    async def close(self) -> None:
        if self._hub is not None:
            self._hub.observers.remove(self.on_event)
            self._hub = None
        for task in (self._refresh, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresh = None
        await self.dispatcher.close()

    async def reload(self) -> None:
        self._endpoints = await self.outbox.endpoints()
        self.dispatcher.wake()

    async def _refresh_endpoints(self) -> None:
        while True:
            await asyncio.sleep(ENDPOINTS_REFRESH)
            try:
                endpoints = await self.outbox.endpoints()
            except Exception as exc:  # the store may be busy: next time
                log.warning("webhook endpoints not reread: %s", exc)
                continue
            if endpoints != self._endpoints:
                self._endpoints = endpoints
                self.dispatcher.wake()

    # ------------------------------------------------------------ events

    def on_event(self, event_type: str, data: Mapping[str, Any]) -> None:
        """The hub's observer: one outbox row per endpoint subscribed to ``event_type``."""
        targets = [e for e in self._endpoints if e.active and event_type in e.events]
        if not targets:
            return  # the common case, on every message: nothing to do
        now = self.clock.now_us()
        rows = []
        for endpoint in targets:
            shaped = shape(
                event_type,
                data,
                include_body=endpoint.include_message_body,
                include_notes=endpoint.include_notes,
            )
            if shaped is None:
                continue
            delivery_id = uuid7(now)
            rows.append(
                NewDelivery(
                    id=delivery_id,
                    webhook_id=endpoint.id,
                    event_type=event_type,
                    conversation_id=shaped.conversation_id,
                    payload=envelope(delivery_id, event_type, now, shaped.data),
                    created_at=now,
                )
            )
        if rows:
            self.outbox.enqueue(rows, self._enqueued)

    def _audit(
        self, action: str, actor: tuple[str, str | None], endpoint_id: str, **details: Any
    ) -> AuditRecord:
        """Where personal data is sent is on the record (P14), as ids and flags only."""
        now = self.clock.now_us()
        return AuditRecord(
            id=uuid7(now),
            at=now,
            action=action,
            actor_role=actor[0],
            actor_id=actor[1],
            details={"webhook": endpoint_id, **details},
        )

    def _enqueued(self, result: object) -> None:
        if isinstance(result, BaseException):
            log.warning("webhook deliveries not written: %s", result)
            return
        self.dispatcher.wake()

    # ------------------------------------------------------------ admin operations

    async def endpoints(self) -> list[Endpoint]:
        return await self.outbox.endpoints()

    async def endpoint(self, webhook_id: str) -> Endpoint:
        found = await self.outbox.endpoint(webhook_id)
        if found is None:
            raise NotFound("no such webhook")
        return found

    async def create(
        self,
        *,
        url: str,
        events: list[str],
        description: str,
        include_message_body: bool,
        include_notes: bool,
        active: bool,
        actor: tuple[str, str | None],
    ) -> Endpoint:
        """A new endpoint with a fresh secret (the caller shows it once)."""
        now = self.clock.now_us()
        endpoint_id = uuid7(now)
        unique = tuple(dict.fromkeys(events))
        endpoint = await self.outbox.add_endpoint(
            Endpoint(
                id=endpoint_id,
                url=check_url(url, allow_private=bool(self.settings.webhook_allow_private)),
                secret=new_secret(),
                events=unique,
                description=description,
                include_message_body=include_message_body,
                include_notes=include_notes,
                active=active,
                created_by=actor[1],
                created_at=now,
                updated_at=now,
            ),
            self._audit(
                "webhook.create",
                actor,
                endpoint_id,
                events=list(unique),
                include_message_body=include_message_body,
                include_notes=include_notes,
                active=active,
            ),
        )
        await self.reload()
        return endpoint

    async def change(
        self,
        webhook_id: str,
        changes: dict[str, Any],
        *,
        actor: tuple[str, str | None],
        rotate_secret: bool = False,
    ) -> Endpoint:
        changes = dict(changes)
        if "url" in changes:
            changes["url"] = check_url(
                changes["url"], allow_private=bool(self.settings.webhook_allow_private)
            )
        if "events" in changes:
            changes["events"] = list(dict.fromkeys(changes["events"]))
        # The entry names what changed, and the new flags; never the URL or secret.
        shown = {k: v for k, v in changes.items() if k not in ("url", "description")}
        audit = self._audit(
            "webhook.change",
            actor,
            webhook_id,
            changed=sorted([*changes, *(["secret"] if rotate_secret else [])]),
            **shown,
        )
        if rotate_secret:
            changes["secret"] = new_secret()
        changes["updated_at"] = self.clock.now_us()
        endpoint = await self.outbox.change_endpoint(webhook_id, changes, audit)
        await self.reload()
        return endpoint

    async def delete(self, webhook_id: str, *, actor: tuple[str, str | None]) -> None:
        await self.outbox.delete_endpoint(
            webhook_id, self._audit("webhook.delete", actor, webhook_id)
        )
        await self.reload()

    async def send_test(self, webhook_id: str) -> str:
        """Queue a ``webhook.test`` delivery to this endpoint; answers its id."""
        endpoint = await self.endpoint(webhook_id)
        if not endpoint.active:
            raise Conflict("this webhook is not active: activate it first")
        now = self.clock.now_us()
        delivery_id = uuid7(now)
        await self.outbox.add_deliveries(
            [
                NewDelivery(
                    id=delivery_id,
                    webhook_id=endpoint.id,
                    event_type=TEST_EVENT,
                    conversation_id=None,
                    payload=envelope(delivery_id, TEST_EVENT, now, {"webhook_id": endpoint.id}),
                    created_at=now,
                )
            ]
        )
        self.dispatcher.wake()
        return delivery_id

    async def deliveries(
        self, webhook_id: str, *, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Delivery], str | None]:
        await self.endpoint(webhook_id)
        return await self.outbox.deliveries(webhook_id, status=status, cursor=cursor, limit=limit)
